"""The file formats a user's texts come in, and which column holds what.

`FILE_FORMATS` is the one table of CSV, TSV, JSON, JSON Lines and Parquet files: `load.py` reads labelled
splits through it with `datasets`, and `read_texts` streams predict's texts through it with the csv module,
json and pyarrow, so predict starts without `datasets`, torch or scikit-learn. `detect_column` finds a
column either way. Any other file is plain text, one text per line. `shorten` puts a text on one line for
display (predict's output, a report's examples).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

from ..errors import ConfigError, DataError

TEXT_CANDIDATES = ("text", "sentence", "review", "content")
LABEL_CANDIDATES = ("label", "labels", "sentiment")
# suffix -> the `datasets` builder that reads it and its options (the csv module takes the same delimiter)
FILE_FORMATS = {
    ".csv": ("csv", {}),
    ".tsv": ("csv", {"delimiter": "\t"}),
    ".json": ("json", {}),
    ".jsonl": ("json", {}),
    ".parquet": ("parquet", {}),
}


def existing_file(path: str, flag: str) -> Path:
    """`path` as a Path, or a DataError naming the option `flag` that gave it when there is no such file."""
    file = Path(path)
    if not file.is_file():
        raise DataError(f"{flag} {path}: no such file.")
    return file


def detect_column(columns: list[str], explicit: str | None, candidates: tuple[str, ...], kind: str, where: str) -> str:
    """The column named by the user, or the first known name present (case-insensitive)."""
    flag = f"--{kind}-column"
    if explicit is not None:
        if explicit not in columns:
            raise DataError(f"Column '{explicit}' ({flag}) not found in {where}; its columns are: {', '.join(columns)}.")
        return explicit
    lowered = {c.lower(): c for c in columns}
    for name in candidates:
        if name in lowered:
            return lowered[name]
    raise DataError(
        f"No {kind} column found in {where} (looked for {', '.join(candidates)}); "
        f"its columns are: {', '.join(columns)}. Pass {flag} NAME."
    )


def read_texts(path: str, text_column: str | None, flag: str = "--file") -> Iterator[str]:
    """Texts of a file, lazily: one column of a table in FILE_FORMATS, or plain lines; '-' reads lines from stdin."""
    if path == "-":
        return (line.rstrip("\r\n") for line in sys.stdin)
    file = existing_file(path, flag)
    where = f"{flag} {path}"
    builder, options = FILE_FORMATS.get(file.suffix.lower(), (None, {}))
    if builder == "csv":
        import csv

        handle = open(file, newline="", encoding="utf-8")
        reader = csv.DictReader(handle, delimiter=options.get("delimiter", ","))
        column = detect_column(reader.fieldnames or [], text_column, TEXT_CANDIDATES, "text", where)
        return (row[column] or "" for row in reader)
    if builder == "json":
        return _json_texts(file, text_column, flag)
    if builder == "parquet":
        import pyarrow.parquet as pq

        table = pq.ParquetFile(file)
        column = detect_column(table.schema_arrow.names, text_column, TEXT_CANDIDATES, "text", where)
        return (t or "" for batch in table.iter_batches(columns=[column]) for t in batch.column(0).to_pylist())
    if text_column is not None:
        raise ConfigError(f"--text-column needs a table file ({', '.join(FILE_FORMATS)}); {path} is read as plain lines.")
    return (line.rstrip("\r\n") for line in open(file, encoding="utf-8", errors="replace"))


def _json_texts(file: Path, text_column: str | None, flag: str) -> Iterator[str]:
    """The text column of a JSON array of objects or of JSON Lines, one record at a time."""
    with open(file, encoding="utf-8") as handle:
        first = handle.read(1)
        handle.seek(0)
        try:
            rows = json.load(handle) if first == "[" else (json.loads(line) for line in handle if line.strip())
            column = None
            for number, row in enumerate(rows, start=1):
                if not isinstance(row, dict):
                    raise DataError(f"{flag} {file}: record {number} is not a JSON object.")
                if column is None:
                    column = detect_column(list(row), text_column, TEXT_CANDIDATES, "text", f"{flag} {file}")
                value = row.get(column)
                yield value if isinstance(value, str) else ""
        except json.JSONDecodeError as exc:
            raise DataError(f"{flag} {file}: not valid JSON ({exc}).") from None


def shorten(text: str, width: int) -> str:
    """`text` on one line (each run of whitespace one space), cut to `width` characters ending in "..." when longer."""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 3] + "..."
