"""Prediction on files of any size: `score_file` reads rows in chunks and writes each with its prediction added, every
input column kept, so memory stays flat; `Progress` shows how far it is, as training's progress does.

The added columns are `PREDICTED` + "label", + "score", + "score_" and each label name (its probability), and +
"truncated" (whether the text was longer than the model reads, and cut); an empty text's label and scores are empty.
Like the rest of prediction, this imports neither torch nor datasets.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from ..data.tables import Chunk, Rows, TableWriter
from .classifier import SentimentClassifier

log = logging.getLogger(__name__)

PREDICTED = "predicted_"  # the prefix of the columns predict adds, so they do not collide with a file's own (label, score)
PROGRESS_LINE_SECONDS = 60  # without a terminal for the progress bar, a plain progress line this often


class Progress:
    """Texts predicted so far: a tqdm bar with texts/s on a terminal (stderr); without one (a log file, a pipe), a plain
    line through the log about once a minute, e.g. `predicted 120,000 texts (12%), 18,311 texts/s, about 48 s left`.
    `enabled`: None decides by the terminal, False shows nothing. `total`: the texts to come, when known.
    """

    def __init__(self, total: int | None = None, enabled: bool | None = None) -> None:
        self.texts, self.total = 0, total
        self.started = self.last_line = time.perf_counter()
        self.bar = None
        self.lines = enabled is not False and (enabled is True or not sys.stderr.isatty())
        if enabled is not False and sys.stderr.isatty():
            from tqdm import tqdm  # tqdm.auto would import IPython where it is installed

            self.bar = tqdm(total=total, unit="text", unit_scale=True, desc="predicting", leave=False, file=sys.stderr)
            self.lines = False

    def track(self, chunks: Iterable[Chunk]) -> Iterator[Chunk]:
        """`chunks`, each counted once the caller is done with it."""
        try:
            for chunk in chunks:
                yield chunk
                self.update(len(chunk.texts), chunk.done)
        finally:
            self.close()

    def update(self, texts: int, done: float | None) -> None:
        """`texts` more predicted; `done`: the share of the input read so far, when known (it sets the total)."""
        self.texts += texts
        if done and self.total is None and done < 1:
            estimate = round(self.texts / done)
        else:
            estimate = self.total or (self.texts if done == 1 else None)
        now = time.perf_counter()
        if self.bar is not None:
            if estimate is not None and estimate != self.bar.total:
                self.bar.total = estimate
            self.bar.update(texts)
        elif self.lines and now - self.last_line >= PROGRESS_LINE_SECONDS:
            self.last_line = now
            rate = self.texts / (now - self.started)
            share = f" ({self.texts / estimate:.0%})" if estimate else ""
            left = f", about {(estimate - self.texts) / rate:,.0f} s left" if estimate else ""
            log.info("predicted %s texts%s, %s texts/s%s", f"{self.texts:,}", share, f"{rate:,.0f}", left)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


@dataclass
class Scored:
    """What `score_file` did."""

    texts: int
    cut: int  # texts longer than the model reads
    empty: int  # empty texts: no prediction
    seconds: float

    def summary(self, output: str) -> str:
        """One line on what was written, e.g. `wrote 800 predictions to scored.csv in 1.2 s (667 texts/s); 3 texts ...`."""
        rate = f" ({self.texts / self.seconds:,.0f} texts/s)" if self.seconds > 0 and self.texts else ""
        notes = [f"{self.cut:,} texts were longer than the model reads and cut ({PREDICTED}truncated)"] if self.cut else []
        notes += [f"{self.empty:,} texts were empty (no prediction)"] if self.empty else []
        return f"wrote {self.texts:,} predictions to {output} in {self.seconds:.1f} s{rate}" + "".join(f"; {n}" for n in notes)


def added_columns(label_names: list[str]) -> list[str]:
    """The columns predict adds to each row, in order."""
    return [f"{PREDICTED}label", f"{PREDICTED}score", *(f"{PREDICTED}score_{name}" for name in label_names), f"{PREDICTED}truncated"]


def score_file(classifier: SentimentClassifier, rows: Rows, output: str, batch_size: int = 256, progress: bool | None = None) -> Scored:
    """Predict every row of `rows` and write it to `output` (CSV, TSV, JSON Lines or Parquet, by its suffix) with its
    input columns and `added_columns`; the file appears whole, or not at all when something fails."""
    names = classifier.label_names
    columns = added_columns(names)
    types = {columns[0]: "string", columns[-1]: "bool", **{c: "float64" for c in columns[1:-1]}}
    writer = TableWriter(output, rows.columns, columns, schema=rows.schema, added_types=types)
    started = time.perf_counter()
    texts = cut_count = empty = 0
    try:
        for chunk in Progress(rows.total, progress).track(rows.chunks):
            probabilities, cut = classifier.predict_proba(chunk.texts, batch_size, return_truncated=True)
            blank = np.isnan(probabilities).any(axis=1)
            best = np.where(blank, 0, np.nan_to_num(probabilities).argmax(axis=1))
            added = {
                columns[0]: [None if b else names[i] for i, b in zip(best, blank)],
                columns[1]: _floats(np.where(blank, np.nan, probabilities[np.arange(len(best)), best])),
                **{column: _floats(probabilities[:, k]) for k, column in enumerate(columns[2:-1])},
                columns[-1]: cut.tolist(),
            }
            writer.write(chunk.rows, added)
            texts, cut_count, empty = texts + len(chunk.texts), cut_count + int(cut.sum()), empty + int(blank.sum())
        writer.commit()
    except BaseException:
        writer.discard()
        raise
    return Scored(texts, cut_count, empty, time.perf_counter() - started)


def _floats(values: np.ndarray) -> list[float | None]:
    """Floats, NaN (an empty text's) as None."""
    return [None if v != v else v for v in values.tolist()]
