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

from ..errors import ArtifactsError, ConfigError

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
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.num_classes: int = self.session.get_outputs()[0].shape[1]
        # the exporting model's ModelConfig fields
        self.config: dict[str, Any] = json.loads(self.session.get_modelmeta().custom_metadata_map["config"])

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
