"""Files a training run reads that are not what they claim: a FIFO where the config, a data
file or a base model's file should be (which a blocking open would wait on forever), and base
weights that are only a pickle.  Each is one line; nothing hangs and nothing is unpickled."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest

from trainers.config import load_config
from trainers.errors import ConfigError, ModelLoadError
from trainers.local_models import locate

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX")


def test_a_config_that_is_a_fifo_is_a_problem_not_a_wait(tmp_path):
    os.mkfifo(tmp_path / "cfg.toml")
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "cfg.toml")
    assert "not a regular file (a FIFO, socket or device)" in str(caught.value)


@pytest.mark.parametrize("name", ["config.json", "unet/diffusion_pytorch_model.safetensors", "linked.json"])
def test_a_base_model_folder_holding_a_fifo_is_refused_before_loading(tmp_path, name):
    model = tmp_path / "model"
    (model / "unet").mkdir(parents=True)
    (model / "tokenizer.json").write_text("{}")
    if name == "linked.json":  # through a link too, as in the Hugging Face cache
        os.mkfifo(tmp_path / "fifo")
        os.symlink(tmp_path / "fifo", model / name)
    else:
        os.mkfifo(model / name)
    with pytest.raises(ModelLoadError) as caught:
        locate(str(model))
    assert str(caught.value).startswith(f"{model / name}: the base model holds a FIFO")
    assert "\n" not in str(caught.value)


class _Plant:
    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.slow
def test_base_weights_that_are_only_a_pickle_are_never_loaded(tmp_path):
    pytest.importorskip("torch")
    from trainers.text.model import load_base_model
    from trainers.text.tiny import write_tiny_llama

    model = tmp_path / "tiny-llama"
    write_tiny_llama(model)
    for weights in model.glob("*.safetensors"):
        weights.unlink()
    marker = tmp_path / "pwned"
    (model / "pytorch_model.bin").write_bytes(pickle.dumps(_Plant(marker)))
    with pytest.raises(ModelLoadError, match="no file named model.safetensors") as caught:
        load_base_model(str(model))
    assert "\n" not in str(caught.value) and not marker.exists()
