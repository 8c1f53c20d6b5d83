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
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ArtifactsError, ConfigError, command, train_hint
from ..evaluate.calibration import softmax
from ..text.tokenizer import TextEncoder
from .backends import Backend, check_backend_name, choose_backend
from .folder import ModelFolder, rewrite_folder

EMPTY_TEXT_ERROR = "empty text"
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
# What `truncation=` takes, as in transformers: True and its strategies cut a long text as the model was trained; False
# and "do_not_truncate" read it whole (a GRU reads any length; the model never saw texts that long in training).
TRUNCATION = {True: True, "longest_first": True, "only_first": True, False: False, "do_not_truncate": False}
FUNCTIONS = ("softmax", "sigmoid", "none")  # function_to_apply=, as in transformers; each on the calibrated logits
CALL_KEYWORDS = "top_k, truncation, function_to_apply, return_all_scores (deprecated: top_k) and batch_size"


class TruncationWarning(UserWarning):
    """Texts longer than the model reads were cut, and the caller did not say `truncation=`."""


class SentimentClassifier:
    """A trained sentiment model: calibrated label probabilities for raw texts, and the words that decided them.

    Build one with `from_pretrained` (a model folder or a Hugging Face hub id). Calling it returns results in the
    shape of a Hugging Face text-classification pipeline: `[{"label": ..., "score": ...}]`; the result of a text
    longer than the model reads, which it cut, also says `"truncated": True`.
    """

    def __init__(self, backend: Backend, encoder: TextEncoder, label_names: list[str], temperature: float = 1.0,
                 folder: ModelFolder | None = None) -> None:
        self.backend = backend
        self.encoder = encoder  # the tokenizer with its cut rule: texts -> the token ids the model reads
        self.label_names = list(label_names)
        self.temperature = float(temperature)
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
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise ConfigError(f"threads must be a positive int, or None for the backend's own choice. Got {threads!r}.")
        path = _locate(name_or_path, revision)
        runner, folder = choose_backend(backend, path).load(path, threads=threads, device=device)
        encoder = TextEncoder(folder.tokenizer, tail_tokens=folder.config.tokenizer.tail_tokens)
        return cls(runner, encoder, folder.label_names, folder.temperature, folder=folder)

    def save_pretrained(self, directory: str | Path) -> None:
        """Write this model's folder to `directory` (whole or not at all), ready to load or upload to the hub as it is."""
        if self.folder is None:
            raise ArtifactsError(f"This classifier was not loaded from a model folder; train one with {command('train')} --output-dir DIR.")
        rewrite_folder(self.folder.path, directory)

    @property
    def backend_name(self) -> str:
        return self.backend.name

    @property
    def tokenizer(self) -> Any:
        """The `tokenizers.Tokenizer` (its cut rule is `encoder`'s)."""
        return self.encoder.tokenizer

    # ------------------------------------------------------------ predictions

    def __call__(self, inputs: str | list[str], top_k: int | None | str = "", batch_size: int = 256, truncation: bool | str | None = None,
                 function_to_apply: str | None = None, return_all_scores: bool | None = None, **unknown: Any) -> list:
        """Labels and calibrated scores, as a Hugging Face text-classification pipeline gives them.

        One text: `[{"label", "score"}]` (top_k labels, best first, 1 when not given, as transformers marks it with "";
        `top_k=None` for every label). A list of texts: one such result per text, except that with `top_k=1` each is
        the single dict. An empty text gets `{"label": None, "score": None, "error": "empty text"}`.

        A text longer than the model reads is cut as the model was trained, and each of its results says
        `"truncated": True`; a `TruncationWarning` says so too unless `truncation=True` asked for the cut.
        `truncation=False` reads such texts whole. `function_to_apply`: "softmax" (the default: calibrated
        probabilities), "sigmoid" or "none" (the calibrated logits), as in transformers. `return_all_scores` is
        transformers' deprecated form of `top_k=None` (every label, in label order).
        """
        if unknown:
            raise TypeError(f"SentimentClassifier() got an unexpected keyword argument {next(iter(unknown))!r}. "
                            f"It takes {CALL_KEYWORDS}, as a Hugging Face text-classification pipeline does.")
        legacy = top_k == ""  # top_k not given: return_all_scores may decide it, as in transformers
        if legacy:
            top_k = 1
            if return_all_scores is not None:
                warnings.warn("`return_all_scores` is deprecated, as in transformers: use top_k=None instead of return_all_scores=True, "
                              "or top_k=1 instead of return_all_scores=False.", UserWarning, stacklevel=2)
                top_k = None if return_all_scores else 1
        if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
            raise ConfigError(f"top_k must be a positive int or None. Got {top_k!r}.")
        single = isinstance(inputs, str)
        texts = _texts(inputs)
        logits, cut = self._logits(texts, batch_size, _reads_whole(truncation))
        scores = _apply(function_to_apply, logits, self.temperature)
        if truncation is None and cut.any():
            warnings.warn(self._cut_warning(int(cut.sum()), len(texts)), TruncationWarning, stacklevel=2)
        ranked = []
        for row, was_cut in zip(scores, cut):
            if np.isnan(row).any():
                ranked.append([{"label": None, "score": None, "error": EMPTY_TEXT_ERROR}])
                continue
            order = range(len(row)) if legacy and top_k is None else np.argsort(-row, kind="stable")
            mark = {"truncated": True} if was_cut else {}
            ranked.append([{"label": self.label_names[i], "score": float(row[i]), **mark} for i in order])
        if legacy and top_k is None:  # transformers' old shape: every label of each text, even of one text
            return [ranked[0]] if single else ranked
        return top_k_results(ranked, single, top_k)

    def predict_proba(self, texts: str | list[str], batch_size: int = 256, truncation: bool | str = True,
                      return_truncated: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Calibrated class probabilities [len(texts), num_classes], columns in `label_names` order; NaN rows for empty texts.

        With `return_truncated`, also a bool array [len(texts)]: which texts were longer than the model reads, and cut.
        """
        texts = _texts(texts)
        logits, cut = self._logits(texts, batch_size, _reads_whole(truncation))
        probabilities = softmax(logits, self.temperature)
        return (probabilities, cut) if return_truncated else probabilities

    def _logits(self, texts: list[str], batch_size: int, whole: bool) -> tuple[np.ndarray, np.ndarray]:
        """Logits [len(texts), num_classes] (NaN rows for empty texts) and which texts were cut."""
        out = np.full((len(texts), len(self.label_names)), np.nan)
        cut = np.zeros(len(texts), dtype=bool)
        usable = [i for i, t in enumerate(texts) if t.strip()]
        if usable:
            encoded = (self.encoder.whole() if whole else self.encoder).encode([texts[i] for i in usable])
            out[usable] = self.backend.logits(encoded.ids, batch_size)
            cut[usable] = encoded.truncated
        return out, cut

    def _cut_warning(self, cut: int, total: int) -> str:
        length, tail = self.encoder.read_length, self.encoder.tail_tokens
        kept = f"its first {length - tail} and last {tail} tokens" if tail else f"its first {length} tokens"
        which = "The text was" if total == 1 else f"{cut} of {total} texts were"
        return (f"{which} longer than the model reads ({length} tokens): of each, only {kept} were read, and its results say "
                "\"truncated\": True. Pass truncation=True to cut without this warning, or truncation=False to read texts whole.")

    def encode(self, texts: list[str]) -> list[list[int]]:
        """Token ids as the model reads them: cut as it was trained."""
        return self.encoder.encode(texts).ids

    def predict(self, texts: list[str], batch_size: int = 256, truncation: bool | str = True) -> list[dict[str, Any]]:
        """One result per text: `label`, `score` and every label's `probabilities` (plus `"truncated": True` for a text that
        was cut), or `error` for an empty text. `probability`, the old name of `score`, is kept until the next release."""
        probabilities, cut = self.predict_proba(texts, batch_size, truncation, return_truncated=True)
        return [self._result(row, was_cut) for row, was_cut in zip(probabilities, cut)]

    def _result(self, probabilities: np.ndarray, cut: bool) -> dict[str, Any]:
        """One text's result from its class probabilities (NaN for an empty text) and whether it was cut."""
        if np.isnan(probabilities).any():
            return {"label": None, "error": EMPTY_TEXT_ERROR}
        best = int(probabilities.argmax())
        score = float(probabilities[best])
        return {"label": self.label_names[best], "score": score, "probability": score,
                "probabilities": dict(zip(self.label_names, probabilities.tolist())), **({"truncated": True} if cut else {})}

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

    def explain(self, texts: str | list[str]) -> list:
        """(token, score) for each token the model reads: how much the predicted label's probability drops when the
        token is taken out (occlusion). Positive scores push towards the predicted label. Empty for an empty text.
        A list of texts gives one such list per text."""
        if not isinstance(texts, str):
            return [self.explain(text) for text in _texts(texts)]
        return [(t["token"], t["score"]) for t in self.explain_details(texts)["explanation"]]

    def explain_details(self, text: str, mode: str = "drop") -> dict[str, Any]:
        """The prediction for `text` with its explanation: {"label", "score", "probabilities", "explanation":
        [{"token", "score", "start", "end"}]} (character offsets into `text`; `"truncated": True` when the text was cut,
        and `probability`, the old name of `score`), or {"label": None, "error", "explanation": []}."""
        from .explain import occlusion

        encoded = self.encoder.encode_with_offsets([text])
        ids, offsets = encoded.ids[0], encoded.offsets[0]
        if not text.strip() or not ids:
            return {"label": None, "error": EMPTY_TEXT_ERROR, "explanation": []}
        probabilities, drops = occlusion(self.probabilities_of_ids, ids, mode)
        best = int(probabilities.argmax())
        return {
            **self._result(probabilities, encoded.truncated[0]),
            "explanation": [
                {"token": text[start:end], "score": float(drop[best]), "start": start, "end": end}
                for (start, end), drop in zip(offsets, drops)
            ],
        }

    def probabilities_of_ids(self, sequences: list[list[int]], batch_size: int = 256) -> np.ndarray:
        """Calibrated probabilities of token id sequences (each non-empty): [len(sequences), num_classes]."""
        return softmax(self.backend.logits(sequences, batch_size), self.temperature)


def _texts(inputs: str | Iterable[str]) -> list[str]:
    """`inputs` as a list of texts: one str, or an iterable of them; a TypeError says what else was given."""
    if isinstance(inputs, str):
        return [inputs]
    if isinstance(inputs, (bytes, dict)) or not isinstance(inputs, Iterable):
        raise TypeError(f"Give a text (str) or a list of texts. Got {type(inputs).__name__} instead.")
    texts = list(inputs)
    bad = next((i for i, text in enumerate(texts) if not isinstance(text, str)), None)
    if bad is not None:
        raise TypeError(f"Text {bad} is {type(texts[bad]).__name__} ({texts[bad]!r:.40}), not str: give every text as a "
                        f"string (decode bytes; drop or fill missing values, e.g. pandas' NaN or None).")
    return texts


def _reads_whole(truncation: bool | str | None) -> bool:
    """Whether `truncation=` asks to read long texts whole; a ConfigError for a value transformers does not take."""
    if truncation is None:
        return False
    if isinstance(truncation, (bool, str)) and truncation in TRUNCATION:
        return not TRUNCATION[truncation]
    raise ConfigError(f"truncation must be True, False or one of {', '.join(repr(k) for k in TRUNCATION if isinstance(k, str))}. "
                      f"Got {truncation!r}.")


def _apply(function: str | None, logits: np.ndarray, temperature: float) -> np.ndarray:
    """Scores from logits [n, classes] by transformers' `function_to_apply`, on the calibrated logits (logits / temperature)."""
    name = "softmax" if function is None or function == "default" else str(function).lower()
    if name not in FUNCTIONS:
        raise ConfigError(f"function_to_apply must be one of {', '.join(FUNCTIONS)}. Got {function!r}.")
    if name == "softmax":
        return softmax(logits, temperature)
    scaled = logits / temperature
    return 1.0 / (1.0 + np.exp(-scaled)) if name == "sigmoid" else scaled


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
    if not path.exists() and len(path.parts) == 1 and not HUB_ID.match(str(name_or_path)):
        raise ArtifactsError(f"No trained model in {path}/ (no such folder). {train_hint()}. "
                             f"A model on the Hugging Face hub is named with its owner: owner/name.")
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

