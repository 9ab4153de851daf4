"""Pickles that travel with a pulled LoRA — as sidecars or under their own names — stay out."""

from __future__ import annotations

import json
import pickle
import zipfile

import pytest

from tests.hubserver import lora_bytes, new_library, run, tree


class _Planted:
    def __reduce__(self):
        return (print, ("pickle ran",))


PICKLED = pickle.dumps(_Planted(), protocol=4)


@pytest.fixture
def library(tmp_path):
    return new_library(tmp_path)


def _downloads(tmp_path):
    folder = tmp_path / "downloads"
    folder.mkdir()
    (folder / "ink.safetensors").write_bytes(lora_bytes(seed=4))
    (folder / "ink.json").write_bytes(PICKLED)  # a pickle renamed as the A1111 sidecar
    (folder / "ink.civitai.info").write_bytes(pickle.dumps({"trainedWords": ["x"]}, protocol=2))
    (folder / "ink.metadata.json").write_bytes(b"PK\x03\x04torch-zip")
    (folder / "ink.cm-info.json").write_text(json.dumps({"TrainedWords": ["inkwash"]}), "utf-8")
    for name in ("ink.pkl", "ink.pt", "ink.bin", "ink.ckpt"):
        (folder / name).write_bytes(PICKLED)
    return folder


def _check(library, result):
    placed = [p for p in tree(library) if p.startswith("style/ink/")]
    assert "style/ink/ink.safetensors" in placed
    assert "style/ink/ink.cm-info.json" in placed  # a real sidecar still travels
    for bad in ("ink.json", "ink.civitai.info", "ink.metadata.json", "ink.pkl", "ink.pt", "ink.bin",
                "ink.ckpt"):
        assert f"style/ink/{bad}" not in placed
    refused = [line for line in result.output.splitlines() if line.startswith("refused: ")]
    for bad in ("ink.json", "ink.civitai.info", "ink.metadata.json", "ink.pkl", "ink.pt"):
        assert any(bad + ":" in line for line in refused), (bad, refused)


def test_pickled_sidecars_in_a_folder_are_refused(library, tmp_path):
    folder = _downloads(tmp_path)
    result = run(library, "pull", str(folder / "ink.safetensors"), "--category", "style", "--theme", "ink")
    _check(library, result)


def test_pickled_sidecars_in_a_zip_are_refused(library, tmp_path):
    folder = _downloads(tmp_path)
    archive = tmp_path / "ink.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(folder.iterdir()):
            zf.write(path, path.name)
    result = run(library, "pull", str(archive), "--category", "style", "--theme", "ink")
    _check(library, result)
