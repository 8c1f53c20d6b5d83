"""The artifacts folder: written whole or not at all, validated on every load.

A model folder holds `model.safetensors`, `config.json`, `tokenizer.json`,
reports, and `MANIFEST.json` with the sha256 of every file. It is built in a
hidden sibling folder and swapped in with one rename, so a crash or Ctrl-C
while saving leaves the previous model complete and usable.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import CONFIG_FORMAT_VERSION, DataConfig, ModelConfig, from_dict
from ..errors import ArtifactsError, command, train_hint
from ..files import CONFIG_FILE, MANIFEST_FILE, MODEL_FILE, TOKENIZER_FILE, sha256_file, write_json

REQUIRED_FILES = (MODEL_FILE, CONFIG_FILE, TOKENIZER_FILE, MANIFEST_FILE)
# Files a fresh or emptied output folder may hold that are not ours to keep.
HARMLESS_FILES = {".gitignore", ".gitkeep", ".DS_Store"}


def is_model_folder(path: Path) -> bool:
    return (path / MANIFEST_FILE).is_file() or (path / CONFIG_FILE).is_file()


def check_output_dir(target: Path) -> None:
    """Refuse to replace a folder that holds anything other than a model of ours."""
    if target.exists() and not target.is_dir():
        raise ArtifactsError(f"--output-dir {target} is a file, not a folder. Choose a folder.")
    if target.is_dir() and not is_model_folder(target):
        foreign = sorted(p.name for p in target.iterdir() if p.name not in HARMLESS_FILES)
        if foreign:
            raise ArtifactsError(
                f"--output-dir {target} holds other files ({', '.join(foreign[:3])}) and no model; "
                "choose a new or empty folder, so nothing of yours is replaced."
            )


def save_atomically(target: Path, write: Callable[[Path], None]) -> None:
    """Call `write(folder)` on a fresh hidden folder, add the manifest, then swap it in for `target`."""
    target = Path(target)
    check_output_dir(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.new-", dir=target.parent))
    try:
        write(staging)
        (staging / ".gitignore").write_text("*\n")  # trained contents stay out of version control
        files = sorted(p for p in staging.rglob("*") if p.is_file() and p.name not in (MANIFEST_FILE, ".gitignore"))
        write_json(staging / MANIFEST_FILE, {"files": {str(p.relative_to(staging)): sha256_file(p) for p in files}})
        _set_default_permissions(staging)
        _swap_in(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _set_default_permissions(folder: Path) -> None:
    """mkdtemp makes a private folder; give the model folder the user's usual permissions."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(folder, 0o777 & ~umask)
    for path in folder.rglob("*"):
        os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~umask)


def _swap_in(staging: Path, target: Path) -> None:
    if not target.exists():
        os.rename(staging, target)
        return
    if _exchange(staging, target):  # one atomic step: staging now holds the old folder
        shutil.rmtree(staging, ignore_errors=True)
        return
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    os.rename(target, old)
    os.rename(staging, target)
    shutil.rmtree(old, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically with Linux's renameat2(RENAME_EXCHANGE); False where unsupported."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def write_model_files(folder: Path, model: Any, tokenizer: Any, config: dict[str, Any]) -> None:
    """Write the weights (safetensors: no pickle), the tokenizer and config.json into `folder`."""
    import torch
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise ArtifactsError(
            f"Refusing to save non-finite weights ({', '.join(bad[:3])}): training diverged. Retrain with a lower --learning-rate."
        )
    save_file(state, str(folder / MODEL_FILE), metadata={"format": "pt"})
    tokenizer.save(str(folder / TOKENIZER_FILE))
    write_json(folder / CONFIG_FILE, config)


@dataclass
class ModelFolder:
    """A checked model folder without its weights loaded: what every backend reads first (no torch needed)."""

    path: Path
    config: dict[str, Any]  # the whole config.json
    tokenizer: Any  # tokenizers.Tokenizer
    label_names: list[str]
    model_config: ModelConfig

    @property
    def temperature(self) -> float:
        """The temperature fitted after training (1.0 for a model saved without one)."""
        return float(self.config.get("calibration", {}).get("temperature", 1.0))

    def data_config(self) -> DataConfig:
        """The data configuration the model was trained with, as config.json records it."""
        return from_dict(DataConfig, {k: v for k, v in self.config["data"].items() if k not in ("source", "notes")})


@dataclass
class LoadedModel(ModelFolder):
    model: Any  # GRUClassifier or EnsembleClassifier, in eval mode


def read_folder(path: str | Path, verify: tuple[str, ...] | None = None) -> ModelFolder:
    """Check a model folder and read its config and tokenizer.

    Every file MANIFEST.json lists must be there; the files in `verify` (all of them when None) must also match
    their sha256. config.json and tokenizer.json are always verified.
    """
    from tokenizers import Tokenizer

    folder = Path(path)
    if not folder.is_dir() or not is_model_folder(folder):
        raise ArtifactsError(f"No trained model in {folder}/. {train_hint()}")
    missing = [name for name in REQUIRED_FILES if not (folder / name).is_file()]
    if missing:
        raise ArtifactsError(f"{folder}/ is incomplete: {', '.join(missing)} missing. {train_hint()}")
    manifest = _read_json(folder / MANIFEST_FILE).get("files", {})
    for name, expected in manifest.items():
        file = folder / name
        if not file.is_file():
            raise ArtifactsError(f"{file}: listed in {MANIFEST_FILE} but missing. {train_hint()}")
        if (verify is None or name in verify or name in (CONFIG_FILE, TOKENIZER_FILE)) and sha256_file(file) != expected:
            raise ArtifactsError(f"{file}: checksum does not match {MANIFEST_FILE}; the file was changed or damaged. {train_hint()}")
    unlisted = [name for name in verify or () if name not in manifest]
    if unlisted:
        raise ArtifactsError(f"{folder / unlisted[0]}: not listed in {MANIFEST_FILE}, so it cannot be checked. "
                             f"Write it again (e.g. {command('export')} --artifacts {folder}).")

    config = _read_json(folder / CONFIG_FILE)
    if config.get("format_version") != CONFIG_FORMAT_VERSION:
        raise ArtifactsError(
            f"{folder / CONFIG_FILE}: format_version {config.get('format_version')!r} is not {CONFIG_FORMAT_VERSION}; "
            "this model was written by another version of sentiment-gru."
        )
    try:
        model_config = from_dict(ModelConfig, config["model"])
        label_names = list(config["label_names"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ArtifactsError(f"{folder / CONFIG_FILE}: invalid ({exc}).") from None
    if len(label_names) != model_config.num_classes:
        raise ArtifactsError(f"{folder / CONFIG_FILE}: {len(label_names)} label names for {model_config.num_classes} classes.")

    try:
        tokenizer = Tokenizer.from_file(str(folder / TOKENIZER_FILE))
    except Exception as exc:
        raise ArtifactsError(f"{folder / TOKENIZER_FILE}: not a valid tokenizer ({exc}).") from None
    if tokenizer.get_vocab_size() != model_config.vocab_size:
        raise ArtifactsError(
            f"{folder / TOKENIZER_FILE}: vocabulary of {tokenizer.get_vocab_size()} tokens, "
            f"but the model's embedding has {model_config.vocab_size} rows."
        )
    return ModelFolder(path=folder, config=config, tokenizer=tokenizer, label_names=label_names, model_config=model_config)


def load_model(path: str | Path, device: str = "cpu") -> LoadedModel:
    """Load and validate a trained model folder with its torch weights: the one loader every torch path shares."""
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from ..model.classifier import build_model

    folder = read_folder(path)
    model = build_model(folder.model_config)
    try:
        state = load_file(str(folder.path / MODEL_FILE))
        model.load_state_dict(state)
    except (SafetensorError, RuntimeError, OSError) as exc:
        raise ArtifactsError(f"{folder.path / MODEL_FILE}: cannot be loaded into the model ({str(exc).splitlines()[0]}).") from None
    model.to(torch.device(device)).eval()
    return LoadedModel(**folder.__dict__, model=model)


def rewrite_folder(source: str | Path, target: str | Path, write: Callable[[Path], None] | None = None) -> None:
    """Copy the checked model folder `source` to `target` (the same folder to update it in place), with `write(staging)`
    adding or replacing files; the result is swapped in whole, with a new manifest, or not at all."""
    folder = read_folder(source)

    def build(staging: Path) -> None:
        for file in sorted(folder.path.rglob("*")):
            relative = file.relative_to(folder.path)
            if file.is_file() and relative.name not in (MANIFEST_FILE, ".gitignore"):
                (staging / relative).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(file, staging / relative)
        if write is not None:
            write(staging)

    save_atomically(Path(target), build)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactsError(f"{path}: not valid JSON ({exc}).") from None
    if not isinstance(value, dict):
        raise ArtifactsError(f"{path}: expected a JSON object.")
    return value
