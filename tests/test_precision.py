"""Training precision: fp32 by default on every device, bf16 autocast on request, recorded with the model."""

import json
import sys
from pathlib import Path

import pytest
import torch

from conftest import TINY_MODEL_ARGS
from sentiment_gru.config import TrainConfig
from sentiment_gru.errors import ConfigError
from sentiment_gru.train.precision import resolve_precision

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
import train as train_script  # noqa: E402


def test_auto_is_fp32_on_every_device_and_explicit_choices_stand():
    assert resolve_precision("auto", "cpu") == "fp32"
    assert resolve_precision("auto", torch.device("cuda")) == "fp32"  # bf16 measured slower on an H200 too
    assert resolve_precision("bf16", "cpu") == "bf16"
    assert resolve_precision("fp32", torch.device("cuda")) == "fp32"
    assert resolve_precision("bf16", torch.device("cuda")) == "bf16"
    with pytest.raises(ValueError, match="precision must be one of auto, fp32, bf16. Got 'fp16'"):
        resolve_precision("fp16", "cpu")
    with pytest.raises(ConfigError, match="precision"):
        TrainConfig(precision="half")


def test_bf16_training_writes_a_float32_model_that_predicts(tiny_files, tmp_path):
    out = tmp_path / "model"
    argv = [f"--{s}-file={p}" for s, p in tiny_files.items()] + ["--output-dir", str(out), "--precision", "bf16", *TINY_MODEL_ARGS]
    assert train_script.main(argv) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["precision"] == "bf16" and config["train"]["precision"] == "bf16"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["accuracy"] > 0.8  # the tiny corpus is easy; bf16 projections still learn it
    from safetensors.torch import load_file

    assert {t.dtype for t in load_file(out / "model.safetensors").values()} == {torch.float32}
