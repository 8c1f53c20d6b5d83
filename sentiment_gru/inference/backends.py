"""The backends a trained model runs on: one small interface, implemented once per runtime, chosen in one place.

A backend loads a checked model folder and gives the model's logits for token id sequences. `BACKENDS` registers
each by name; `choose_backend` turns `--backend` (or `backend=`) into one of them, "auto" by one rule: the first
registered backend other than torch that can run the folder, else torch, which runs every folder.

A new runtime is one class with `Backend`'s members, in its own module (which need not import this one: the
interface is structural), imported here and added to the tuple `BACKENDS` is built from; `--backend`'s choices and
help, the serve setting and the service's /info schema follow from the registry. Importing this module imports
neither torch nor onnxruntime: each backend imports its runtime when it loads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np

from ..config import ModelConfig, from_dict
from ..errors import ArtifactsError, ConfigError, UserError, command
from ..files import CONFIG_FILE, ONNX_FILE
from ..text.tokenizer import PAD_ID
from .folder import ModelFolder, read_folder
from .onnx_runtime import ONNX_INSTALL_HINT, onnxruntime_installed


class Backend(Protocol):
    """What runs a trained model."""

    name: ClassVar[str]  # its --backend choice
    runs: ClassVar[str]  # what it runs, for --backend's help
    needs: ClassVar[str]  # what it needs of a folder and the machine, for --backend's help ("" when nothing)

    @classmethod
    def missing(cls, path: Path) -> UserError | None:
        """Why it cannot run the model folder at `path`, as the error that says what to do; None when it can."""

    @classmethod
    def load(cls, path: Path, threads: int | None = None, device: str = "cpu") -> tuple[Backend, ModelFolder]:
        """Itself on the model folder at `path`, and that folder read and checked; `threads`: threads per forward pass."""

    def logits(self, sequences: list[list[int]], batch_size: int) -> np.ndarray:
        """Logits [len(sequences), num_classes] of token id sequences (each non-empty), `batch_size` at a time."""


class TorchBackend:
    """Logits from a torch model (a GRUClassifier or an ensemble of them)."""

    name = "torch"
    runs = "the PyTorch weights"
    needs = ""

    def __init__(self, model: Any, device: str = "cpu") -> None:
        self.model, self.device = model, device

    @classmethod
    def missing(cls, path: Path) -> UserError | None:
        return None  # the weights are in every model folder, and torch is a dependency

    @classmethod
    def load(cls, path: Path, threads: int | None = None, device: str = "cpu") -> tuple[TorchBackend, ModelFolder]:
        from .folder import load_model

        folder = load_model(path, device=device)
        if threads is not None:
            import torch

            torch.set_num_threads(threads)  # torch's threads are the process's
        return cls(folder.model, device=device), folder

    def logits(self, sequences: list[list[int]], batch_size: int) -> np.ndarray:
        from ..data.batching import batched_logits

        return batched_logits(self.model, sequences, batch_size=batch_size, device=self.device, pad_id=PAD_ID).numpy()


class OnnxBackend:
    """Logits from the exported graph `model.onnx`, on onnxruntime."""

    name = "onnx"
    runs = f"onnxruntime on the folder's {ONNX_FILE}, without torch"
    needs = f"the folder has {ONNX_FILE} and onnxruntime is installed"

    def __init__(self, path: Path, threads: int | None = None) -> None:
        from .onnx_runtime import OnnxModel

        self.model = OnnxModel(path, intra_op_threads=threads)

    @classmethod
    def missing(cls, path: Path) -> UserError | None:
        if not (path / ONNX_FILE).is_file():
            return ArtifactsError(f"{path}/ has no {ONNX_FILE}. Write it with: {command('export')} --artifacts {path} "
                                  f"(or use --backend {FALLBACK}).")
        if not onnxruntime_installed():
            return ConfigError(f"Running an ONNX model needs the onnxruntime package: {ONNX_INSTALL_HINT}")
        return None

    @classmethod
    def load(cls, path: Path, threads: int | None = None, device: str = "cpu") -> tuple[OnnxBackend, ModelFolder]:
        folder = read_folder(path, verify=(ONNX_FILE,))  # the weights are not read: their checksum can wait
        backend = cls(path / ONNX_FILE, threads=threads)
        try:
            exported = from_dict(ModelConfig, backend.model.config)
        except ConfigError as exc:
            raise ArtifactsError(f"{path / ONNX_FILE}: its metadata is not a model configuration ({exc}). "
                                 f"Write it again: {command('export')} --artifacts {path}") from None
        if exported != folder.model_config:
            differ = [name for name, value in vars(exported).items() if getattr(folder.model_config, name) != value]
            raise ArtifactsError(f"{path / ONNX_FILE}: exported from another model than {CONFIG_FILE} describes "
                                 f"({', '.join(differ)} differ). Write it again: {command('export')} --artifacts {path}")
        return backend, folder

    def logits(self, sequences: list[list[int]], batch_size: int) -> np.ndarray:
        out = np.empty((len(sequences), self.model.num_classes), dtype=np.float32)
        lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
        order = np.argsort(lengths, kind="stable")  # similar lengths together: little padding
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            ids = np.full((len(rows), int(lengths[rows].max())), PAD_ID, dtype=np.int64)
            for i, row in enumerate(rows):
                ids[i, :lengths[row]] = sequences[row]
            out[rows] = self.model.logits(ids, lengths[rows])
        return out


# ---------------------------------------------------------------- the registry and the choice

# Every backend, by name, in the order --backend lists them.
BACKENDS: dict[str, type[Backend]] = {backend.name: backend for backend in (TorchBackend, OnnxBackend)}
FALLBACK = TorchBackend.name  # what "auto" runs when no other backend can: it runs every model folder
BACKEND_CHOICES = ("auto", *BACKENDS)
BACKEND_HELP = "; ".join(
    [f"{name}: {backend.runs}" for name, backend in BACKENDS.items()]
    + ["auto: " + ", else ".join([f"{name} when {backend.needs}" for name, backend in BACKENDS.items() if name != FALLBACK]
                                 + [FALLBACK])]
)


def check_backend_name(name: str) -> None:
    """A ConfigError unless `name` is one of BACKEND_CHOICES."""
    if name not in BACKEND_CHOICES:
        raise ConfigError(f"--backend must be one of {', '.join(BACKEND_CHOICES)}. Got {name!r}.")


def choose_backend(name: str, path: Path) -> type[Backend]:
    """The backend `name` names, "auto" resolved for the model folder at `path`; a UserError when it cannot run it."""
    check_backend_name(name)
    if name == "auto":
        return next((backend for other, backend in BACKENDS.items() if other != FALLBACK and backend.missing(path) is None),
                    BACKENDS[FALLBACK])
    backend = BACKENDS[name]
    error = backend.missing(path)
    if error is not None:
        raise error
    return backend
