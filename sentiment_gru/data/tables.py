"""The file formats a user's texts come in and predictions go out in, and which column holds what.

`FILE_FORMATS` is the one table of CSV, TSV, JSON, JSON Lines and Parquet files: `load.py` reads labelled
splits through it with `datasets`, and `read_rows` streams predict's rows through it with the csv module,
json and pyarrow, so predict starts without `datasets`, torch or scikit-learn. `detect_column` finds a
column either way. Any other file is plain text, one text per line. `TableWriter` writes predict's rows back
out, every input column kept (`OUTPUT_FORMATS`). `shorten` puts a text on one line for display (predict's
output, a report's examples).
"""

from __future__ import annotations

import csv
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

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
OUTPUT_FORMATS = (".csv", ".tsv", ".jsonl", ".parquet")  # what predict --output writes, by the file's suffix
CHUNK_ROWS = 8192  # rows read at a time: memory stays flat, and a chunk's texts sort into batches of similar length


def existing_file(path: str, flag: str) -> Path:
    """`path` as a Path, or a DataError naming the option `flag` that gave it when it is not a file."""
    file = Path(path)
    if file.is_dir():
        raise DataError(f"{flag} {path}: is a folder; give a file in it.")
    if not file.is_file():
        raise DataError(f"{flag} {path}: no such file.")
    return file


def detect_column(columns: list[str], explicit: str | None, candidates: tuple[str, ...], kind: str, where: str) -> str:
    """The column named by the user, or the first known name present (case-insensitive)."""
    flag = f"--{kind}-column"
    if not columns:
        raise DataError(f"{where} has no columns: it is empty, or its first line is. "
                        f"A table starts with a header line that names its columns, e.g. {kind}.")
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


def not_utf8_error(path: Path, flag: str) -> DataError | None:
    """The error naming the lines of a text file that are not UTF-8, with the fix; None when every line is."""
    bad = []
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                bad.append(number)
    if not bad:
        return None
    shown = ", ".join(map(str, bad[:5])) + (", ..." if len(bad) > 5 else "")
    return DataError(f"{flag} {path}: {len(bad)} line(s) are not valid UTF-8 (lines {shown}). "
                     "Save the file as UTF-8, e.g. iconv -f latin1 -t utf-8.")


# ---------------------------------------------------------------- reading predict's rows


class Chunk(NamedTuple):
    """Rows read together: their texts and the rows themselves."""

    texts: list[str]  # the text column; a missing or non-text value is ""
    rows: Any  # a pyarrow RecordBatch (Parquet), else a list of dicts, column -> value
    done: float | None  # the share of the input read so far, when it is known


@dataclass
class Rows:
    """A file's rows in chunks, read lazily: its column names, the one that holds the texts, and the chunks."""

    columns: list[str]
    text_column: str
    chunks: Iterator[Chunk]
    schema: Any = None  # the pyarrow schema of Parquet rows, else None
    total: int | None = None  # rows in the input, when known without reading it


def read_texts(path: str, text_column: str | None, flag: str = "--file") -> Iterator[str]:
    """Texts of a file, lazily: one column of a table in FILE_FORMATS, or plain lines; '-' reads lines from stdin."""
    rows = read_rows(path, text_column, flag, keep_columns=False)
    return (text for chunk in rows.chunks for text in chunk.texts)


def _lines_have_no_columns(text_column: str | None, why: str) -> None:
    """A ConfigError when --text-column names a column of plain lines, which have none; `why` says what is read so."""
    if text_column is not None:
        raise ConfigError(f"--text-column needs a table file ({', '.join(FILE_FORMATS)}); {why}")


def read_rows(path: str, text_column: str | None, flag: str = "--file", keep_columns: bool = True,
              chunk_rows: int = CHUNK_ROWS) -> Rows:
    """The rows of a file in chunks: a table in FILE_FORMATS, or plain lines (a column "text"); '-' reads lines from stdin.

    Errors that the start of the file shows (no such file, no text column) are raised here, the rest while reading.
    `keep_columns=False` reads only the texts where that is cheaper (Parquet).
    """
    if path == "-":
        _lines_have_no_columns(text_column, f"{flag} - reads plain lines from stdin. Give the file's path, or drop --text-column.")
        return rows_of_texts(line.rstrip("\r\n") for line in sys.stdin)
    file = existing_file(path, flag)
    where = f"{flag} {path}"
    builder, options = FILE_FORMATS.get(file.suffix.lower(), (None, {}))
    if builder == "parquet":
        return _parquet_rows(file, text_column, where, keep_columns, chunk_rows)
    if builder is None:
        _lines_have_no_columns(text_column, f"{path} is read as plain lines.")
    handle = open(file, newline="" if builder == "csv" else None, encoding="utf-8")
    size = max(1, file.stat().st_size)

    def done() -> float:  # read-ahead makes it a little early; good enough for progress
        return 1.0 if handle.closed else handle.buffer.tell() / size

    def decoded(records: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        try:
            yield from records
        except UnicodeDecodeError:
            raise not_utf8_error(file, flag) from None
        finally:
            handle.close()

    if builder == "csv":
        reader = csv.reader(handle, delimiter=options.get("delimiter", ","))
        header = _header(reader, file, flag)
        column = detect_column(header, text_column, TEXT_CANDIDATES, "text", where)
        records = (dict(zip(header, row)) for row in reader if row)  # a blank line is no row, as csv.DictReader has it
        return Rows(header, column, _chunks(decoded(records), column, chunk_rows, done))
    if builder == "json":
        records = decoded(_json_records(handle, file, flag))
        first = next(records, None)
        column = detect_column(list(first or {}), text_column, TEXT_CANDIDATES, "text", where)
        return Rows(list(first), column, _chunks(_prepend(first, records), column, chunk_rows, done))
    lines = decoded({"text": line.rstrip("\r\n")} for line in handle)
    return Rows(["text"], "text", _chunks(lines, "text", chunk_rows, done))


def rows_of_texts(texts: Iterable[str], chunk_rows: int = CHUNK_ROWS) -> Rows:
    """Texts (given on the command line, or lines of stdin) as rows of one column, "text"."""
    return Rows(["text"], "text", _chunks(({"text": text} for text in texts), "text", chunk_rows))


def _header(reader: Iterator[list[str]], file: Path, flag: str) -> list[str]:
    try:
        return next(reader, None) or []
    except UnicodeDecodeError:
        raise not_utf8_error(file, flag) from None


def _prepend(first: Any, rest: Iterator[Any]) -> Iterator[Any]:
    yield first
    yield from rest


def _chunks(records: Iterable[dict[str, Any]], column: str, size: int, done: Callable[[], float] | None = None) -> Iterator[Chunk]:
    """Records as chunks of `size`, with their texts."""
    rows: list[dict[str, Any]] = []
    for record in records:
        rows.append(record)
        if len(rows) == size:
            yield Chunk(_texts(r.get(column) for r in rows), rows, done() if done else None)
            rows = []
    if rows:
        yield Chunk(_texts(r.get(column) for r in rows), rows, done() if done else None)


def _texts(values: Iterable[Any]) -> list[str]:
    return [value if isinstance(value, str) else "" for value in values]


def _json_records(handle, file: Path, flag: str) -> Iterator[dict[str, Any]]:
    """The records of a JSON array of objects or of JSON Lines, one at a time."""
    first = handle.read(1)
    handle.seek(0)
    try:
        rows = json.load(handle) if first == "[" else (json.loads(line) for line in handle if line.strip())
        for number, row in enumerate(rows, start=1):
            if not isinstance(row, dict):
                raise DataError(f"{flag} {file}: record {number} is not a JSON object.")
            yield row
    except json.JSONDecodeError as exc:
        raise DataError(f"{flag} {file}: not valid JSON ({exc}).") from None


def _parquet_rows(file: Path, text_column: str | None, where: str, keep_columns: bool, chunk_rows: int) -> Rows:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.ParquetFile(file)
    names = table.schema_arrow.names
    column = detect_column(names, text_column, TEXT_CANDIDATES, "text", where)
    kind = table.schema_arrow.field(column).type
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        raise DataError(f"{where}: column '{column}' holds {kind}, not text. Pass --text-column NAME for the column of texts.")
    total = table.metadata.num_rows

    def chunks() -> Iterator[Chunk]:
        read = 0
        for batch in table.iter_batches(batch_size=chunk_rows, columns=None if keep_columns else [column]):
            read += batch.num_rows
            yield Chunk(_texts(batch.column(column).to_pylist()), batch, read / max(1, total))

    return Rows(names, column, chunks(), schema=table.schema_arrow, total=total)


# ---------------------------------------------------------------- writing predict's rows


def output_format(path: str) -> str:
    """The suffix of predict's --output file, checked: a ConfigError unless it names a format of OUTPUT_FORMATS and can be written."""
    file = Path(path)
    if file.suffix.lower() not in OUTPUT_FORMATS:
        raise ConfigError(f"--output {path}: write a {', '.join(OUTPUT_FORMATS)} file (the suffix picks the format).")
    if file.is_dir() or not file.parent.is_dir():
        raise ConfigError(f"--output {path}: {'is a folder' if file.is_dir() else 'its folder does not exist'}; give a file path.")
    return file.suffix.lower()


class TableWriter:
    """Predict's output file: each input row with columns added, as CSV, TSV, JSON Lines or Parquet by the suffix.

    Written to a hidden file beside `path` and renamed into place by `commit`, so an interrupted run leaves no half file.
    """

    def __init__(self, path: str, columns: list[str], added: list[str], schema: Any = None, added_types: dict[str, str] | None = None):
        self.path = Path(path)
        self.suffix = output_format(path)
        clash = sorted(set(columns) & set(added))
        if clash:
            raise ConfigError(f"The input already has the column(s) {', '.join(clash)} that predict adds (a file scored before?). "
                              f"Drop or rename them.")
        self.columns, self.added = columns, added
        self.schema, self.added_types = schema, added_types or {}
        handle, self.staging = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        os.close(handle)
        self._file: Any = None
        self._writer: Any = None

    def write(self, rows: Any, added: dict[str, list[Any]]) -> None:
        """Write `rows` (a Chunk's rows) with the `added` columns (name -> one value per row)."""
        if self.suffix == ".parquet":
            self._write_parquet(rows, added)
            return
        records = rows.to_pylist() if hasattr(rows, "to_pylist") else rows
        if self._file is None:
            self._file = open(self.staging, "w", newline="" if self.suffix != ".jsonl" else None, encoding="utf-8")
            if self.suffix != ".jsonl":
                self._writer = csv.writer(self._file, delimiter="\t" if self.suffix == ".tsv" else ",")
                self._writer.writerow(self.columns + self.added)
        extra = [dict(zip(self.added, values)) for values in zip(*(added[name] for name in self.added))]
        if self.suffix == ".jsonl":
            self._file.writelines(json.dumps({**record, **more}, ensure_ascii=False, default=str) + "\n"
                                  for record, more in zip(records, extra))
        else:
            self._writer.writerows([*(_cell(record.get(c)) for c in self.columns), *(_cell(v) for v in more.values())]
                                   for record, more in zip(records, extra))

    def _write_parquet(self, rows: Any, added: dict[str, list[Any]]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not hasattr(rows, "to_pylist"):  # rows of a text file: CSV cells are strings, JSON values are typed by the first chunk
            records = [{c: r.get(c) for c in self.columns} for r in rows]
            if self.schema is None:
                found = {f.name: f.type for f in pa.Table.from_pylist(records).schema if not pa.types.is_null(f.type)}
                self.schema = pa.schema([(c, found.get(c, pa.string())) for c in self.columns])
            try:
                rows = pa.Table.from_pylist(records, schema=self.schema)
            except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
                raise DataError(f"A column of the input changes type between rows ({exc}); write CSV or JSON Lines instead.") from None
        table = pa.Table.from_batches([rows]) if isinstance(rows, pa.RecordBatch) else rows
        for name in self.added:
            table = table.append_column(pa.field(name, pa.type_for_alias(self.added_types.get(name, "string"))),
                                        pa.array(added[name], type=pa.type_for_alias(self.added_types.get(name, "string"))))
        if self._writer is None:
            self._writer = pq.ParquetWriter(self.staging, table.schema)
        self._writer.write_table(table)

    def commit(self) -> None:
        """Close the file and move it into place (an input with no rows still gets its header or schema)."""
        if self._writer is None and self._file is None:
            self.write([], {name: [] for name in self.added})
        if self.suffix == ".parquet":
            self._writer.close()
        else:
            self._file.close()
        os.replace(self.staging, self.path)

    def discard(self) -> None:
        """Close and delete the unfinished file."""
        for handle in (self._writer if self.suffix == ".parquet" else None, self._file):
            if handle is not None:
                handle.close()
        Path(self.staging).unlink(missing_ok=True)


def _cell(value: Any) -> Any:
    """A value as a CSV cell: None as an empty cell, nested values as JSON."""
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, default=str)
    return value


def shorten(text: str, width: int | None) -> str:
    """`text` on one line (each run of whitespace one space), cut to `width` characters ending in "..." when longer
    (whole with `width` None)."""
    flat = " ".join(text.split())
    return flat if width is None or len(flat) <= width else flat[: width - 3] + "..."
