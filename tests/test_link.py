"""``lutnav link``: the library in a WebUI's models/Lora and in ComfyUI's extra_model_paths.yaml."""

from __future__ import annotations

import os

import yaml

import pytest

from tests.hubserver import lora_bytes, new_library, png_bytes, run


@pytest.fixture
def library(tmp_path):
    return new_library(tmp_path)

COMFY_YAML = """\
# ComfyUI extra model paths — my setup
a111:
    base_path: /opt/stable-diffusion-webui/   # the old WebUI

    checkpoints: models/Stable-diffusion
    loras: |
         models/Lora
         models/LyCORIS
#comfyui:
#     base_path: path/to/comfyui/
other_ui:
    base_path: ~/other   # keep me
    embeddings: embeddings
"""


def populated(root):
    ink = root / "style" / "ink"
    ink.mkdir(parents=True)
    (ink / "ink_wash.safetensors").write_bytes(lora_bytes(seed=1))
    (ink / "ink_wash.preview.png").write_bytes(png_bytes(1))
    (ink / "ink_wash.toml").write_text('strength = 0.7\n', "utf-8")
    (root / "style" / "cat.safetensors").write_bytes(lora_bytes(seed=2))
    run(root, "scan")
    return root


def webui(tmp_path):
    folder = tmp_path / "stable-diffusion-webui"
    (folder / "models" / "Lora").mkdir(parents=True)
    (folder / "webui.py").write_text("# the WebUI\n")
    return folder


def comfy_paths(path):
    """Where ComfyUI's own loader (utils/extra_config.py) will look for LoRAs."""
    found = []
    for conf in (yaml.safe_load(path.read_text("utf-8")) or {}).values():
        base = os.path.expanduser(conf.get("base_path", ""))
        if not os.path.isabs(base):
            base = os.path.abspath(os.path.join(path.parent, base))
        for line in str(conf.get("loras", "")).split("\n"):
            if line.strip():
                found.append(os.path.normpath(os.path.join(base, line.strip())))
    return found


# --- WebUI -------------------------------------------------------------------------------


def test_webui_link_is_a_symlink_idempotent_and_undoable(library, tmp_path):
    populated(library)
    ui = webui(tmp_path)
    target = ui / "models" / "Lora" / "lutnav"
    dry = run(library, "link", "--webui", str(ui), "--dry-run")
    assert f"link {target} -> {library.resolve()}" in dry.output and not target.exists()
    run(library, "link", "--webui", str(ui))
    assert target.is_symlink() and (target / "style" / "ink" / "ink_wash.safetensors").is_file()
    again = run(library, "link", "--webui", str(ui))
    assert "nothing to do" in again.output
    run(library, "link", "--webui", str(ui), "--undo")
    assert not target.exists() and not target.is_symlink()
    assert (library / "style" / "cat.safetensors").is_file()  # the library itself is untouched


def test_webui_link_refuses_to_clobber(library, tmp_path):
    ui = webui(tmp_path)
    (ui / "models" / "Lora" / "lutnav").mkdir()
    (ui / "models" / "Lora" / "lutnav" / "mine.safetensors").write_bytes(b"user file")
    result = run(library, "link", "--webui", str(ui), ok=False)
    assert result.exit_code == 1 and "already exists" in result.output
    assert (ui / "models" / "Lora" / "lutnav" / "mine.safetensors").read_bytes() == b"user file"
    undo = run(library, "link", "--webui", str(ui), "--undo", ok=False)
    assert undo.exit_code == 1 and "not made by lutnav" in undo.output
    not_ui = run(library, "link", "--webui", str(tmp_path / "nowhere"), ok=False)
    assert not_ui.exit_code == 1 and "does not look like" in not_ui.output


def test_webui_copy_of_selected_entries(library, tmp_path):
    populated(library)
    ui = webui(tmp_path)
    target = ui / "models" / "Lora" / "lutnav"
    run(library, "link", "--webui", str(ui), "--copy", "ink_wash")
    copied = sorted(p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file())
    assert copied == [".lutnav-copies.json", "style/ink/ink_wash.preview.png",
                      "style/ink/ink_wash.safetensors",
                      "style/ink/ink_wash.toml"]
    assert (target / "style/ink/ink_wash.safetensors").read_bytes() == lora_bytes(seed=1)
    assert "up to date" in run(library, "link", "--webui", str(ui), "--copy", "ink_wash").output
    (target / "style" / "cat.safetensors").write_bytes(b"someone else's")
    clash = run(library, "link", "--webui", str(ui), "--copy", "cat", ok=False)
    assert clash.exit_code == 1 and "refusing to replace" in clash.output
    (target / "style" / "cat.safetensors").unlink()
    (target / "style" / "ink" / "ink_wash.toml").write_text("strength = 0.9\n")  # edited by the user
    result = run(library, "link", "--webui", str(ui), "--undo")
    assert "keep" in result.output
    left = sorted(p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file())
    assert left == ["style/ink/ink_wash.toml"]


# --- ComfyUI -----------------------------------------------------------------------------


def test_comfyui_entry_is_merged_keeping_entries_and_comments(library, tmp_path):
    comfy = tmp_path / "ComfyUI"
    comfy.mkdir()
    (comfy / "main.py").write_text("")
    path = comfy / "extra_model_paths.yaml"
    path.write_text(COMFY_YAML, "utf-8")
    shown = run(library, "link", "--comfyui", str(comfy), "--dry-run")
    assert "+lutnav:" in shown.output and path.read_text("utf-8") == COMFY_YAML
    run(library, "link", "--comfyui", str(comfy))
    text = path.read_text("utf-8")
    assert text.startswith(COMFY_YAML)  # every line and comment of the user's file, unchanged
    data = yaml.safe_load(text)
    assert data["a111"] == yaml.safe_load(COMFY_YAML)["a111"]
    assert str(library.resolve()) in comfy_paths(path)
    assert "nothing to do" in run(library, "link", "--comfyui", str(comfy)).output
    assert path.read_text("utf-8") == text
    run(library, "link", "--comfyui", str(comfy), "--undo")
    assert path.read_text("utf-8") == COMFY_YAML


def test_comfyui_without_a_yaml_gets_one_and_undo_removes_it(library, tmp_path):
    comfy = tmp_path / "ComfyUI"
    (comfy / "models").mkdir(parents=True)
    run(library, "link", "--comfyui", str(comfy))
    assert comfy_paths(comfy / "extra_model_paths.yaml") == [str(library.resolve())]
    run(library, "link", "--comfyui", str(comfy), "--undo")
    assert not (comfy / "extra_model_paths.yaml").exists()


def test_comfyui_block_follows_a_moved_library(library, tmp_path):
    comfy = tmp_path / "ComfyUI"
    (comfy / "models").mkdir(parents=True)
    run(library, "link", "--comfyui", str(comfy))
    moved = tmp_path / "new_home"
    moved.mkdir()
    result = run(moved, "link", "--comfyui", str(comfy))
    assert f"+    base_path: \"{moved.resolve()}\"" in result.output
    assert comfy_paths(comfy / "extra_model_paths.yaml") == [str(moved.resolve())]


def test_comfyui_refuses_a_foreign_lutnav_entry_and_broken_yaml(library, tmp_path):
    comfy = tmp_path / "ComfyUI"
    (comfy / "models").mkdir(parents=True)
    path = comfy / "extra_model_paths.yaml"
    mine = "lutnav:\n    base_path: /somewhere/else\n    loras: loras\n"
    path.write_text(mine, "utf-8")
    result = run(library, "link", "--comfyui", str(comfy), ok=False)
    assert result.exit_code == 1 and "did not write" in result.output
    assert path.read_text("utf-8") == mine
    path.write_text("a111: [unclosed\n", "utf-8")
    result = run(library, "link", "--comfyui", str(comfy), ok=False)
    assert result.exit_code == 1 and "not valid YAML" in result.output
    assert path.read_text("utf-8") == "a111: [unclosed\n"
