"""Prediction on raw text with a trained model folder.

Imports only torch, tokenizers and safetensors, so the predict command starts
about as fast as `import torch, tokenizers`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import torch

from .batching import batched_logits
from .tokenization import encode

EMPTY_TEXT_ERROR = "empty text"


class Predictor:
    """Labels and probabilities for raw texts."""

    def __init__(self, model: torch.nn.Module, tokenizer: Any, label_names: list[str], temperature: float = 1.0, device: str = "cpu"):
        self.model = model
        self.tokenizer = tokenizer
        self.label_names = label_names
        self.temperature = temperature
        self.device = device

    @classmethod
    def from_artifacts(cls, path: str | Path, device: str = "cpu") -> "Predictor":
        from .artifacts import load_model

        loaded = load_model(path, device=device)
        temperature = float(loaded.config.get("calibration", {}).get("temperature", 1.0))
        return cls(loaded.model, loaded.tokenizer, loaded.label_names, temperature=temperature, device=device)

    def probabilities(self, texts: list[str], batch_size: int = 256) -> torch.Tensor:
        """Class probabilities: [len(texts), num_classes]."""
        logits = batched_logits(self.model, encode(self.tokenizer, texts), batch_size, self.device)
        return torch.softmax(logits / self.temperature, dim=-1)

    def predict(self, texts: list[str], batch_size: int = 256) -> list[dict[str, Any]]:
        """One result per text: `label`, `probability` and all `probabilities`, or `error` for an empty text."""
        results: list[dict[str, Any] | None] = [None] * len(texts)
        usable = [i for i, t in enumerate(texts) if t.strip()]
        if usable:
            probs = self.probabilities([texts[i] for i in usable], batch_size)
            for i, row in zip(usable, probs.tolist()):
                best = max(range(len(row)), key=row.__getitem__)
                results[i] = {
                    "label": self.label_names[best],
                    "probability": row[best],
                    "probabilities": dict(zip(self.label_names, row)),
                }
        return [r if r is not None else {"label": None, "error": EMPTY_TEXT_ERROR} for r in results]

    def predict_stream(self, texts: Iterable[str], batch_size: int = 256) -> Iterator[tuple[str, dict[str, Any]]]:
        """Predict an iterable of texts lazily, `batch_size` at a time, so memory stays flat."""
        chunk: list[str] = []
        for text in texts:
            chunk.append(text)
            if len(chunk) == batch_size:
                yield from zip(chunk, self.predict(chunk, batch_size))
                chunk = []
        if chunk:
            yield from zip(chunk, self.predict(chunk, batch_size))
