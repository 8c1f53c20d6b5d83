"""Prediction on raw text: `SentimentClassifier`, the package's Python API.

    >>> from sentiment_gru import SentimentClassifier
    >>> clf = SentimentClassifier.from_pretrained("artifacts")
    >>> clf("what a wonderful film")
    [{'label': 'positive', 'score': 0.98...}]

A model folder with `model.onnx` runs on onnxruntime (`backend="onnx"`, the default when the
folder has the graph and onnxruntime is installed); otherwise on torch (`inference.backends`). Importing this module,
and the whole onnxruntime path, imports neither torch nor datasets, scikit-learn or matplotlib,
so a prediction starts in a fraction of the time `import torch` takes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ArtifactsError, ConfigError, command
from ..evaluate.calibration import softmax
from ..text.tokenizer import encode, encode_with_offsets
from .backends import Backend, check_backend_name, choose_backend
from .folder import ModelFolder, rewrite_folder

EMPTY_TEXT_ERROR = "empty text"
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class SentimentClassifier:
    """A trained sentiment model: calibrated label probabilities for raw texts, and the words that decided them.

    Build one with `from_pretrained` (a model folder or a Hugging Face hub id). Calling it returns results in the
    shape of a Hugging Face text-classification pipeline: `[{"label": ..., "score": ...}]`.
    """

    def __init__(self, backend: Backend, tokenizer: Any, label_names: list[str], temperature: float = 1.0,
                 tail_tokens: int = 0, folder: ModelFolder | None = None) -> None:
        self.backend = backend
        self.tokenizer = tokenizer
        self.label_names = list(label_names)
        self.temperature = float(temperature)
        self.tail_tokens = tail_tokens  # of a long text, tokens read from its end (TokenizerConfig.tail_tokens)
        self.folder = folder  # the model folder it was loaded from, if any

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, backend: str = "auto", device: str = "cpu", revision: str | None = None,
                        threads: int | None = None) -> SentimentClassifier:
        """Load a model folder, or a model repository on the Hugging Face hub (`owner/name`, downloaded once and cached).

        backend: "onnx" (onnxruntime; needs `model.onnx` in the folder), "torch", or "auto": onnx when the folder has
        the graph and onnxruntime is installed, else torch. `threads` caps the backend's threads per forward pass
        (onnxruntime's for this model; torch's for the whole process).
        """
        check_backend_name(backend)
        path = _locate(name_or_path, revision)
        runner, folder = choose_backend(backend, path).load(path, threads=threads, device=device)
        return cls(runner, folder.tokenizer, folder.label_names, folder.temperature,
                   tail_tokens=folder.config.tokenizer.tail_tokens, folder=folder)

    def save_pretrained(self, directory: str | Path) -> None:
        """Write this model's folder to `directory` (whole or not at all), ready to load or upload to the hub as it is."""
        if self.folder is None:
            raise ArtifactsError(f"This classifier was not loaded from a model folder; train one with {command('train')} --output-dir DIR.")
        rewrite_folder(self.folder.path, directory)

    @property
    def backend_name(self) -> str:
        return self.backend.name

    # ------------------------------------------------------------ predictions

    def __call__(self, inputs: str | list[str], top_k: int | None = 1, batch_size: int = 256) -> list:
        """Labels and calibrated scores, as a Hugging Face text-classification pipeline gives them.

        One text: `[{"label", "score"}]` (top_k labels, best first; `top_k=None` for every label). A list of texts:
        one such result per text, except that with `top_k=1` each is the single dict. An empty text gets
        `{"label": None, "score": None, "error": "empty text"}`.
        """
        single = isinstance(inputs, str)
        texts = [inputs] if single else list(inputs)
        if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
            raise ConfigError(f"top_k must be a positive int or None. Got {top_k!r}.")
        ranked = []
        for row in self.predict_proba(texts, batch_size=batch_size):
            if np.isnan(row).any():
                ranked.append([{"label": None, "score": None, "error": EMPTY_TEXT_ERROR}])
            else:
                ranked.append([{"label": self.label_names[i], "score": float(row[i])} for i in np.argsort(-row, kind="stable")])
        return top_k_results(ranked, single, top_k)

    def predict_proba(self, texts: str | list[str], batch_size: int = 256) -> np.ndarray:
        """Calibrated class probabilities [len(texts), num_classes], columns in `label_names` order; NaN rows for empty texts."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        out = np.full((len(texts), len(self.label_names)), np.nan)
        usable = [i for i, t in enumerate(texts) if t.strip()]
        if usable:
            logits = self.backend.logits(self.encode([texts[i] for i in usable]), batch_size)
            out[usable] = softmax(logits, self.temperature)
        return out

    def encode(self, texts: list[str]) -> list[list[int]]:
        """Token ids as the model reads them: truncated as it was trained."""
        return encode(self.tokenizer, texts, self.tail_tokens)

    def predict(self, texts: list[str], batch_size: int = 256) -> list[dict[str, Any]]:
        """One result per text: `label`, `probability` and all `probabilities`, or `error` for an empty text."""
        results = []
        for row in self.predict_proba(texts, batch_size=batch_size):
            if np.isnan(row).any():
                results.append({"label": None, "error": EMPTY_TEXT_ERROR})
                continue
            best = int(row.argmax())
            results.append({"label": self.label_names[best], "probability": float(row[best]),
                            "probabilities": dict(zip(self.label_names, row.tolist()))})
        return results

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

    # ------------------------------------------------------------ explanations

    def explain(self, text: str) -> list[tuple[str, float]]:
        """(token, score) for each token the model reads: how much the predicted label's probability drops when the
        token is taken out (occlusion). Positive scores push towards the predicted label. Empty for an empty text."""
        return [(t["token"], t["score"]) for t in self.explain_details(text)["explanation"]]

    def explain_details(self, text: str, mode: str = "drop") -> dict[str, Any]:
        """The prediction for `text` with its explanation: {"label", "probability", "probabilities", "explanation":
        [{"token", "score", "start", "end"}]} (character offsets into `text`), or {"label": None, "error", "explanation": []}."""
        from .explain import occlusion

        ids, offsets = encode_with_offsets(self.tokenizer, [text], self.tail_tokens)[0]
        if not text.strip() or not ids:
            return {"label": None, "error": EMPTY_TEXT_ERROR, "explanation": []}
        probabilities, drops = occlusion(self.probabilities_of_ids, ids, mode)
        best = int(probabilities.argmax())
        return {
            "label": self.label_names[best],
            "probability": float(probabilities[best]),
            "probabilities": dict(zip(self.label_names, probabilities.tolist())),
            "explanation": [
                {"token": text[start:end], "score": float(drop[best]), "start": start, "end": end}
                for (start, end), drop in zip(offsets, drops)
            ],
        }

    def probabilities_of_ids(self, sequences: list[list[int]], batch_size: int = 256) -> np.ndarray:
        """Calibrated probabilities of token id sequences (each non-empty): [len(sequences), num_classes]."""
        return softmax(self.backend.logits(sequences, batch_size), self.temperature)


def top_k_results(ranked: list[list[dict[str, Any]]], single: bool, top_k: int | None) -> list:
    """Every label of each text, best first, cut to what `SentimentClassifier.__call__(inputs, top_k)` returns: for
    one text (`single`), its top_k labels; for a list, one such list per text, or each text's best label with top_k 1."""
    cut = [labels[:top_k] for labels in ranked]
    if single:
        return cut[0]
    return [labels[0] for labels in cut] if top_k == 1 else cut


def _locate(name_or_path: str | Path, revision: str | None) -> Path:
    """The local folder of a model: `name_or_path` itself, or a hub repository's files downloaded into the cache."""
    path = Path(name_or_path)
    if path.exists() or not HUB_ID.match(str(name_or_path)):
        return path  # a local folder; read_folder says what is wrong with it, if anything
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise ArtifactsError(f"No model folder {path}/, and loading {name_or_path!r} from the Hugging Face hub needs "
                             "huggingface_hub: pip install huggingface_hub.") from None
    try:
        return Path(snapshot_download(repo_id=str(name_or_path), revision=revision))
    except Exception as exc:  # offline, no such repository, no access: huggingface_hub raises several types
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise ArtifactsError(
            f"No model folder {path}/, and the Hugging Face hub model {name_or_path!r} could not be downloaded ({reason}). "
            "Check the id and your connection, or pass a local model folder."
        ) from None

