"""The artifacts folder: written whole or not at all, validated on every load.

A model folder holds `model.safetensors`, `config.json`, `tokenizer.json`,
reports, and `MANIFEST.json` with the sha256 of every file. It is built in a
hidden sibling folder and swapped in with one rename, so a crash or Ctrl-C
while saving leaves the previous model complete and usable.

A folder is read as untrusted input (it may come from anyone, like a hub
repository): every file it names must be a regular file that resolves inside
it, listed in the manifest with its checksum; config.json is read into the
typed `SavedConfig` and checked field by field; the tokenizer may use no
regular expression that training does not write.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime
import errno
import json
import os
import re
import shutil
import stat
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from ..config import CONFIG_FORMAT_VERSION, MAX_SEQUENCE_LENGTH, DataConfig, ModelConfig, SavedConfig
from ..errors import ArtifactsError, ConfigError, command, train_hint
from ..files import CONFIG_FILE, MANIFEST_FILE, MODEL_FILE, TOKENIZER_FILE, sha256_file, write_json
from ..text.normalize import PATTERNS as WEB_TEXT_PATTERNS
from ..text.tokenizer import HTML_TAG

REQUIRED_FILES = (MODEL_FILE, CONFIG_FILE, TOKENIZER_FILE, MANIFEST_FILE)
# Files a fresh or emptied output folder may hold that are not ours to keep.
HARMLESS_FILES = {".gitignore", ".gitkeep", ".DS_Store"}
# The most bytes of each JSON file read whole: far above what training writes (a 1,000,000-token vocabulary is
# about 40 MB of tokenizer.json), far below what would exhaust memory.
JSON_SIZE_LIMITS = {CONFIG_FILE: 1 << 20, MANIFEST_FILE: 1 << 20, TOKENIZER_FILE: 256 << 20}
# The regular expressions a tokenizer.json may hold: those training writes. Any other could backtrack for ever
# (or make the tokenizers library panic) on a text a client sends.
TOKENIZER_PATTERNS = frozenset({HTML_TAG, *WEB_TEXT_PATTERNS})
SHA256 = re.compile(r"^[0-9a-f]{64}$")
NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


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


def save_atomically(target: Path, write: Callable[[Path], None], again: str = "run again") -> None:
    """Call `write(folder)` on a fresh hidden folder, add the manifest, then swap it in for `target`.

    A full disk is an ArtifactsError that says so and what to do then ("Free some space and {again}."); the previous
    folder, if any, is left as it was.
    """
    target = Path(target)
    check_output_dir(target)
    staging = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.new-", dir=target.parent))
        write(staging)
        (staging / ".gitignore").write_text("*\n")  # trained contents stay out of version control
        files = sorted(p for p in staging.rglob("*") if p.is_file() and p.name not in (MANIFEST_FILE, ".gitignore"))
        write_json(staging / MANIFEST_FILE, {"files": {p.relative_to(staging).as_posix(): sha256_file(p) for p in files}})
        _set_default_permissions(staging)
        _swap_in(staging, target)
    except BaseException as exc:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        if isinstance(exc, OSError) and exc.errno in NO_SPACE:
            kept = f"the previous {target}/ is unchanged" if target.exists() else f"nothing was written to {target}/"
            raise ArtifactsError(f"No space left on the disk of {target.parent}/ while writing {target.name}/ "
                                 f"({exc.strerror}); {kept}. Free some space and {again}.") from None
        raise


@contextlib.contextmanager
def output_lock(target: Path) -> Iterator[None]:
    """Hold a lock on `target` while a run writes it: `.NAME.lock` beside it, holding who took it. A second run into the
    same folder fails at once with an ArtifactsError that names the first. The lock goes with the process that held it."""
    try:
        import fcntl
    except ImportError:  # not a POSIX system: no lock
        yield
        return
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    path = target.parent / f".{target.name}.lock"
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 4096).decode("utf-8", "replace").strip() or "a process that has not said which"
            os.close(fd)
            raise ArtifactsError(f"{target}/ is being written by another run ({holder}). Wait for it to finish, or choose "
                                 "another --output-dir.") from None
        with contextlib.suppress(FileNotFoundError):
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                break  # else the last holder removed the file between our open and our lock: take the new one
        os.close(fd)
    try:
        started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()}, started {started}: {' '.join(sys.argv)}".encode())
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
        os.close(fd)


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


def write_model_files(folder: Path, model: Any, tokenizer: Any, config: SavedConfig | dict[str, Any]) -> None:
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
    write_json(folder / CONFIG_FILE, config.to_dict() if isinstance(config, SavedConfig) else config)


@dataclass
class ModelFolder:
    """A checked model folder without its weights loaded: what every backend reads first (no torch needed)."""

    path: Path
    config: SavedConfig  # config.json, checked
    tokenizer: Any  # tokenizers.Tokenizer
    manifest: dict[str, str]  # MANIFEST.json: each file's path inside the folder -> its sha256

    @property
    def label_names(self) -> list[str]:
        return list(self.config.label_names)

    @property
    def model_config(self) -> ModelConfig:
        return self.config.model

    @property
    def temperature(self) -> float:
        """The temperature fitted after training (1.0 for a model saved without one)."""
        return float(self.config.calibration.temperature)

    def data_config(self) -> DataConfig:
        """The data configuration the model was trained with, as config.json records it."""
        return self.config.data

    def checked_file(self, name: str) -> Path | None:
        """The folder's file `name` if the manifest lists it and it matches its checksum (after the checks every listed
        file had on reading); None otherwise."""
        if name not in self.manifest:
            return None
        path = _listed_file(self.path, name, _roots(self.path))
        return path if sha256_file(path) == self.manifest[name] else None


@dataclass
class LoadedModel(ModelFolder):
    model: Any  # GRUClassifier or EnsembleClassifier, in eval mode


def read_folder(path: str | Path, verify: tuple[str, ...] | None = None) -> ModelFolder:
    """Check a model folder and read its config and tokenizer.

    Every file MANIFEST.json lists must be a regular file inside the folder; the files in `verify` (all of them when
    None) must also match their sha256. The required files must be listed; config.json and tokenizer.json are always
    verified.
    """
    folder = Path(path)
    if not folder.is_dir() or not is_model_folder(folder):
        raise ArtifactsError(f"No trained model in {folder}/. {train_hint()}")
    missing = [name for name in REQUIRED_FILES if not (folder / name).exists()]
    if missing:
        raise ArtifactsError(f"{folder}/ is incomplete: {', '.join(missing)} missing. {train_hint()}")
    roots = _roots(folder)
    _listed_file(folder, MANIFEST_FILE, roots)
    manifest = _read_json(folder / MANIFEST_FILE).get("files")
    if not isinstance(manifest, dict) or not all(isinstance(v, str) and SHA256.match(v) for v in manifest.values()):
        raise ArtifactsError(f"{folder / MANIFEST_FILE}: \"files\" must map each file's path to its sha256 (64 hex digits). "
                             f"Write the folder again. {train_hint()}")
    for name in (*REQUIRED_FILES[:-1], *(verify or ())):
        if name not in manifest:
            again = train_hint() if name in REQUIRED_FILES else f"Write it again (e.g. {command('export')} --artifacts {folder})."
            raise ArtifactsError(f"{folder / name}: not listed in {MANIFEST_FILE}, so it cannot be checked. {again}")
    for name, expected in manifest.items():
        file = _listed_file(folder, name, roots)
        if (verify is None or name in verify or name in (CONFIG_FILE, TOKENIZER_FILE)) and sha256_file(file) != expected:
            raise ArtifactsError(f"{folder / name}: checksum does not match {MANIFEST_FILE}; the file was changed or damaged. {train_hint()}")

    values = _read_json(folder / CONFIG_FILE)
    if values.get("format_version") != CONFIG_FORMAT_VERSION:
        raise ArtifactsError(
            f"{folder / CONFIG_FILE}: format_version {values.get('format_version')!r} is not {CONFIG_FORMAT_VERSION}; "
            "this model was written by another version of sentiment-gru."
        )
    try:
        config = SavedConfig.from_dict(values)
    except ConfigError as exc:
        raise ArtifactsError(f"{folder / CONFIG_FILE}: {exc}") from None
    tokenizer = _read_tokenizer(folder / TOKENIZER_FILE, config, cut_as_recorded="tokenizer" in values)
    return ModelFolder(path=folder, config=config, tokenizer=tokenizer, manifest=manifest)


def _roots(folder: Path) -> tuple[Path, ...]:
    """Where the files of `folder` may resolve: inside it, and for a hub download (`.../models--owner--name/snapshots/
    REVISION/`, whose files link to the repository's `blobs/`), inside that repository's blobs too."""
    real = folder.resolve()
    blobs = real.parent.parent / "blobs"
    if real.parent.name == "snapshots" and real.parent.parent.name.startswith("models--") and blobs.is_dir():
        return real, blobs.resolve()
    return (real,)


def _listed_file(folder: Path, name: Any, roots: tuple[Path, ...]) -> Path:
    """`folder / name`, resolved, once it is shown to be a regular file inside `roots`: a path from a manifest is never
    absolute, never leaves the folder through `..` or a link, and never names a device, a pipe or a folder."""
    parts = PurePosixPath(name).parts if isinstance(name, str) else ()
    if (not parts or parts[0] == "/" or ".." in parts or str(PurePosixPath(name)) != name or "\\" in name or "\0" in name
            or re.match(r"^[A-Za-z]:", name)):  # only the plain relative form that saving writes
        raise ArtifactsError(f"{folder / MANIFEST_FILE}: {name!r} is not a path inside the folder; the folder is not safe to "
                             f"read. {train_hint()}")
    resolved = (folder / name).resolve()
    if not any(resolved.is_relative_to(root) for root in roots):
        raise ArtifactsError(f"{folder / name}: links outside the model folder; the folder is not safe to read. {train_hint()}")
    try:
        mode = resolved.stat().st_mode
    except OSError:
        raise ArtifactsError(f"{folder / name}: listed in {MANIFEST_FILE} but missing. {train_hint()}") from None
    if not stat.S_ISREG(mode):
        raise ArtifactsError(f"{folder / name}: not a regular file; the folder is not safe to read. {train_hint()}")
    return resolved


def _read_tokenizer(path: Path, config: SavedConfig, cut_as_recorded: bool) -> Any:
    """tokenizer.json as a Tokenizer, once it is shown to hold only the regular expressions training writes and to cut
    texts within MAX_SEQUENCE_LENGTH tokens, where config.json says when it has a tokenizer section (`cut_as_recorded`)."""
    from tokenizers import Tokenizer

    text = _read_text(path)
    try:
        patterns = sorted(set(_patterns(json.loads(text))) - TOKENIZER_PATTERNS)
    except json.JSONDecodeError as exc:
        raise ArtifactsError(f"{path}: not valid JSON ({exc}).") from None
    if patterns:
        raise ArtifactsError(f"{path}: holds the regular expression {patterns[0]!r}, which sentiment-gru does not write; "
                             f"a tokenizer is refused unless its only expressions are the ones training writes. {train_hint()}")
    try:
        tokenizer = Tokenizer.from_str(text)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # the tokenizers library raises Exception, or a PanicException (a BaseException)
        raise ArtifactsError(f"{path}: not a valid tokenizer ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}).") from None
    if tokenizer.get_vocab_size() != config.model.vocab_size:
        raise ArtifactsError(
            f"{path}: vocabulary of {tokenizer.get_vocab_size()} tokens, but the model's embedding has {config.model.vocab_size} rows."
        )
    cut = (tokenizer.truncation or {}).get("max_length")
    if cut_as_recorded and cut != config.tokenizer.read_length:
        raise ArtifactsError(f"{path}: cuts texts at {cut} tokens, but config.json says {config.tokenizer.read_length} "
                             f"(tokenizer.max_length, or predict_length when set). {train_hint()}")
    if not isinstance(cut, int) or not 1 <= cut <= MAX_SEQUENCE_LENGTH:
        raise ArtifactsError(f"{path}: cuts texts at {cut} tokens; a model reads at most {MAX_SEQUENCE_LENGTH:,}. {train_hint()}")
    return tokenizer


def _patterns(value: Any) -> Iterator[Any]:
    """Every regular expression in a tokenizer.json value: the `{"Regex": ...}` of its normalizers and pre-tokenizers."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "Regex":
                yield item if isinstance(item, str) else repr(item)
            else:
                yield from _patterns(item)
    elif isinstance(value, list):
        for item in value:
            yield from _patterns(item)


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
    adding or replacing files; the result is swapped in whole, with a new manifest, or not at all.

    A copy holds the files the manifest lists, each checked and verified, as regular files. Updated in place, the folder
    also keeps its other regular files (e.g. `evaluation/`); links and special files are dropped.
    """
    folder = read_folder(source)
    roots = _roots(folder.path)
    in_place = folder.path.resolve() == Path(target).resolve()

    def build(staging: Path) -> None:
        files = {name: _listed_file(folder.path, name, roots) for name in folder.manifest}
        if in_place:
            files.update({name: path for name, path in _own_files(folder.path) if name not in files})
        for name, path in sorted(files.items()):
            (staging / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, staging / name)
        if write is not None:
            write(staging)

    save_atomically(Path(target), build)


def _own_files(folder: Path) -> Iterator[tuple[str, Path]]:
    """(path inside `folder`, path) of each regular file in it that is not a link, nor under a link, nor a manifest."""
    for parent, dirs, names in os.walk(folder):  # does not follow links to folders
        for name in names:
            path = Path(parent) / name
            if name not in (MANIFEST_FILE, ".gitignore") and stat.S_ISREG(path.lstat().st_mode):
                yield path.relative_to(folder).as_posix(), path


def _read_text(path: Path) -> str:
    """A JSON file of a model folder, read whole once it is shown to be within its size limit."""
    limit = JSON_SIZE_LIMITS.get(path.name, 1 << 20)
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise ArtifactsError(f"{path}: cannot be read ({exc.strerror or exc}).") from None
    if len(data) > limit:
        raise ArtifactsError(f"{path}: over {limit:,} bytes, far more than training writes; the folder is not a model of ours.")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ArtifactsError(f"{path}: not valid JSON ({exc}).") from None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(_read_text(path))
    except json.JSONDecodeError as exc:
        raise ArtifactsError(f"{path}: not valid JSON ({exc}).") from None
    if not isinstance(value, dict):
        raise ArtifactsError(f"{path}: expected a JSON object.")
    return value
