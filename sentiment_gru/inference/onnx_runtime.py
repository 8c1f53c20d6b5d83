"""Run an exported classifier (`sentiment_gru.inference.export`) with onnxruntime, without torch.

Imports only numpy and onnxruntime, so a predict path built on it starts without
torch, datasets, scikit-learn or matplotlib.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ArtifactsError, ConfigError, command

ONNX_INSTALL_HINT = "pip install 'sentiment-gru[onnx]'"


def onnxruntime_installed() -> bool:
    """Whether onnxruntime can be imported, said without importing it."""
    return importlib.util.find_spec("onnxruntime") is not None


class OnnxModel:
    """An ONNX classifier on onnxruntime's CPU provider: `logits(ids, lengths)` as the torch model gives them."""

    def __init__(self, path: str | Path, intra_op_threads: int | None = None) -> None:
        """Load `path`; `intra_op_threads` caps onnxruntime's threads per operator (None: its default)."""
        try:
            import onnxruntime
        except ImportError:
            raise ConfigError(f"Running an ONNX model needs the onnxruntime package: {ONNX_INSTALL_HINT}") from None
        path = Path(path)
        if not path.is_file():
            raise ArtifactsError(f"No ONNX model at {path}. Write one with sentiment_gru.inference.export.export_onnx(model, path).")
        options = onnxruntime.SessionOptions()
        if intra_op_threads is not None:
            options.intra_op_num_threads = intra_op_threads
        try:
            self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own types for a damaged or foreign graph
            raise ArtifactsError(f"{path}: onnxruntime cannot load it ({_first_line(exc)}). {_export_hint(path)}") from None
        outputs = self.session.get_outputs()
        shape = outputs[0].shape if outputs else []
        if len(shape) != 2 or not isinstance(shape[1], int) or shape[1] < 2:
            raise ArtifactsError(f"{path}: its output is not logits [batch, classes] (shape {shape}). {_export_hint(path)}")
        self.num_classes: int = shape[1]
        # the exporting model's ModelConfig fields
        try:
            self.config: dict[str, Any] = json.loads(self.session.get_modelmeta().custom_metadata_map["config"])
        except (KeyError, ValueError):
            raise ArtifactsError(f"{path}: has no model configuration in its metadata (\"config\"), so it cannot be checked "
                                 f"against config.json. {_export_hint(path)}") from None
        if not isinstance(self.config, dict):
            raise ArtifactsError(f"{path}: its metadata \"config\" is not a JSON object. {_export_hint(path)}")

    def logits(self, ids: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """ids: [batch, seq] token ids padded with 0, lengths: [batch] (each in 1..seq) -> [batch, num_classes] float32."""
        ids = np.asarray(ids, dtype=np.int64)
        lengths = np.asarray(lengths, dtype=np.int64)
        if ids.ndim != 2 or lengths.shape != ids.shape[:1] or lengths.min(initial=1) < 1 or lengths.max(initial=1) > ids.shape[1]:
            raise ValueError(
                f"OnnxModel.logits needs ids [batch, seq] and one length per text, each in 1..seq. "
                f"Got ids of shape {ids.shape} and lengths {lengths.tolist()}."
            )
        (logits,) = self.session.run(["logits"], {"ids": ids, "lengths": lengths})
        return logits


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__


def _export_hint(path: Path) -> str:
    return f"Write it again: {command('export')} --artifacts {path.parent}"
