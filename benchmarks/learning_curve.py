"""Accuracy against training-set size: the GRU from scratch, from word vectors learned elsewhere (--word-vectors) and
started from a trained model (--init-from), TF-IDF + logistic regression and NBSVM, trained on the same draws and scored on the same rows.

The data is a CSV, TSV, JSON, JSON Lines or Parquet file, or a folder with train/validation/test files. The scored
rows are its test split (else its validation split: given, or a seeded, stratified 10% carved from the file); the draws
come from the rest. For each seed and size, a stratified, seeded draw of that many labelled texts is the whole
labelled budget of every model: the GRU carves its validation split from it (as `train` does), the linear baselines
are fitted on all of it. Each GRU run is a whole `train_and_save` in a temporary folder, its options from `recipe`.
"""

from __future__ import annotations

import csv
import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sentiment_gru.config import LONG_READING, DataConfig, build_run_config
from sentiment_gru.data.load import load_data
from sentiment_gru.data.tables import FILE_FORMATS
from sentiment_gru.errors import DataError
from sentiment_gru.evaluate.baselines import BASELINES, linear_baseline
from sentiment_gru.runs import parent_config, train_and_save

from .accuracy import summary

log = logging.getLogger(__name__)

DEFAULT_SIZES = (250, 500, 1000, 2000, None)  # None: every row of the pool
MODELS = {"scratch": "BiGRU from scratch", "vectors": "BiGRU from word vectors (--word-vectors)",
          "fine_tuned": "BiGRU started from the parent", "tfidf": "TF-IDF + logistic regression", "nbsvm": "NBSVM"}
STARTS = ("scratch", "vectors", "fine_tuned")  # how a GRU run starts: random weights, WordLlama's vectors, the parent
# Long texts (reviews, not sentences): 256 tokens from a text's start leave out the end, where a review's verdict
# usually is. Past LONG_WORDS words (about 200 tokens) at the median, a run reads as LONG_READING says (the `reviews`
# preset's lengths): its first 384 and last 128 tokens in training, nearly all of it (first 896, last 128) in scoring.
LONG_WORDS = 150
CARVED = "carved"  # the scored split's name in the results when --validation-rows carved it from the pool
CARVE_SEED = 999  # the rows --validation-rows carves, the same whatever the seeds of the draws


def recipe(train_size: int, start: str, long_texts: bool = False) -> dict[str, dict[str, Any]]:
    """The training options (configuration sections) of a GRU trained on `train_size` labelled texts, started as
    `start` says (one of STARTS), on long texts or not (`reads_long`). The one place that says which recipe runs at
    which size. Chosen on validation rows carved from the pools, 3 seeds (docs/results.md): a fine-tune moves the
    parent's weights at 1e-3 on sentences, at the train command's 3e-3 on long texts."""
    train: dict[str, Any] = {"batch_size": 32 if train_size < 1000 else 64}
    if start == "vectors":
        train["word_vectors"] = True
    if start == "fine_tuned" and not long_texts:
        train["learning_rate"] = 1e-3  # the parent's weights are a good start: move them less than random ones
    return {"train": train, **({"tokenizer": dict(LONG_READING)} if long_texts else {})}


def reads_long(texts: list[str]) -> bool:
    """Whether texts are long enough to read as the `reviews` preset does: half of them past LONG_WORDS words."""
    return bool(texts) and float(np.median([len(text.split()) for text in texts])) > LONG_WORDS


@dataclass
class Pool:
    """The labelled rows of a learning curve: the pool the draws come from, and the rows every model is scored on."""

    texts: list[str]
    labels: np.ndarray  # [n] ids into label_names
    scored_texts: list[str]
    scored_labels: np.ndarray
    scored_split: str
    label_names: list[str]
    description: str


def data_config(path: str, label_names: tuple[str, ...] | None = None) -> DataConfig:
    """A data file, or a folder's train.*, validation.* and test.* files (validation and test optional)."""
    folder = Path(path)
    if not folder.is_dir():
        return DataConfig(train_file=path, label_names=label_names)
    files = {split: next((str(f) for f in sorted(folder.glob(f"{split}.*")) if f.suffix.lower() in FILE_FORMATS), None)
             for split in ("train", "validation", "test")}
    if files["train"] is None:
        raise DataError(f"{path}: the folder needs a train.* file ({', '.join(FILE_FORMATS)}), and may have validation.* and test.*.")
    return DataConfig(train_file=files["train"], validation_file=files["validation"], test_file=files["test"], label_names=label_names)


def load_pool(config: DataConfig) -> Pool:
    """The scored rows (the test split, else validation) and the pool (every other labelled row)."""
    data = load_data(config)
    scored = data.eval_split
    pooled = [split for split in ("train", "validation") if split != scored and split in data.splits]
    texts = [t for split in pooled for t in data.splits[split]["text"]]
    labels = np.concatenate([np.asarray(data.splits[split]["label"], dtype=np.int64) for split in pooled])
    target = data.splits[scored]
    return Pool(texts, labels, list(target["text"]), np.asarray(target["label"], dtype=np.int64), scored, data.label_names,
                data.source["description"])


def carve(pool: Pool, rows: int) -> Pool:
    """`pool` scored on `rows` of its own rows (seeded, CARVE_SEED), which no draw then takes: rows to choose a recipe
    on, without looking at the rows a curve reports."""
    if not 0 < rows < len(pool.labels):
        raise DataError(f"--validation-rows {rows}: give a number of rows between 1 and {len(pool.labels) - 1}, the pool's "
                        f"{len(pool.labels)} rows less at least one to draw from.")
    order = np.random.default_rng(CARVE_SEED).permutation(len(pool.labels))
    scored, rest = order[:rows], order[rows:]
    return Pool([pool.texts[i] for i in rest], pool.labels[rest], [pool.texts[i] for i in scored], pool.labels[scored],
                CARVED, pool.label_names, pool.description)


def draw(labels: np.ndarray, size: int, seed: int) -> np.ndarray:
    """`size` row numbers of `labels`, stratified (each label's share as in the pool, largest remainders rounded up, and
    at least 2 rows of each label the pool has twice) and seeded, in a shuffled order."""
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    quota = size * counts / len(labels)
    take = np.floor(quota).astype(int)
    take[np.argsort(-(quota - take), kind="stable")[:size - take.sum()]] += 1
    least = np.minimum(counts, 2)  # every label in training and in the validation carved from it
    take = np.maximum(take, least)
    while take.sum() > size:  # from the labels furthest above their share
        take[np.argmax(np.where(take > least, take - quota, -np.inf))] -= 1
    rows = np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:k] for c, k in zip(classes, take)])
    return rng.permutation(rows)


def run(data: DataConfig, sizes: list[int | None], seeds: list[int], init_from: str | None = None,
        overrides: dict[str, dict[str, Any]] | None = None, progress: bool | None = False,
        validation_rows: int | None = None, starts: tuple[str, ...] = STARTS) -> dict[str, Any]:
    """Train and score every model at every size (None: the whole pool) for every seed; return each run's figures and
    their mean and std per model and size. `overrides` are configuration sections added to every GRU run's recipe
    (e.g. a learning rate to try, a smaller network for a quick look); `starts` the GRU runs (of STARTS) to train;
    with `validation_rows`, the scored rows are that many carved from the pool (`carve`)."""
    pool = load_pool(data)
    if validation_rows is not None:
        pool = carve(pool, validation_rows)
    counts = sorted({len(pool.labels) if s is None or s > len(pool.labels) else s for s in sizes})
    parent = parent_config(init_from) if init_from is not None else None
    long_texts = reads_long(pool.texts)
    runs: list[dict[str, Any]] = []
    parent_alone = None
    with tempfile.TemporaryDirectory() as tmp:
        scored_file = _write_rows(Path(tmp) / "scored.csv", pool.scored_texts, pool.scored_labels, pool.label_names)
        for seed in seeds:
            for size in counts:
                rows = draw(pool.labels, size, seed)
                texts, labels = [pool.texts[i] for i in rows], pool.labels[rows]
                train_file = _write_rows(Path(tmp) / f"train-{size}-{seed}.csv", texts, labels, pool.label_names)
                given = DataConfig(train_file=str(train_file), test_file=str(scored_file), seed=seed)
                for kind in ("tfidf", "nbsvm"):
                    started = time.perf_counter()
                    found = linear_baseline(texts, labels, pool.scored_texts, pool.scored_labels, kind=kind).metrics
                    runs.append(_row(kind, size, seed, found, time.perf_counter() - started))
                    _log_row(runs[-1])
                gru = [(start, build_run_config(given, **_merged(recipe(size, start, long_texts), overrides, seed)))
                       for start in STARTS[:2] if start in starts]
                if parent is not None and "fine_tuned" in starts:
                    sections = _merged(recipe(size, "fine_tuned", long_texts), overrides, seed)
                    sections["train"]["init_from"] = init_from
                    gru.append(("fine_tuned", build_run_config(given, parent=parent, **sections)))
                for name, config in gru:
                    log.info("learning curve: %s, %d texts, seed %d", MODELS[name], size, seed)
                    started = time.perf_counter()
                    metrics = train_and_save(config, Path(tmp) / f"{name}-{size}-{seed}", progress=progress)
                    runs.append(_row(name, size, seed, metrics, time.perf_counter() - started))
                    _log_row(runs[-1])
                    if "parent" in metrics and "accuracy" in metrics["parent"]:
                        parent_alone = {k: metrics["parent"][k] for k in ("name", "accuracy", "macro_f1")}
                        parent_alone.update({k: v for k, v in metrics["parent"].items() if k == "label_subset"})
    figures = {name: {str(size): {key: summary([r[key] for r in runs if r["model"] == name and r["size"] == size])
                                  for key in ("accuracy", "macro_f1")}
                      for size in counts}
               for name in MODELS if any(r["model"] == name for r in runs)}
    return {
        "data": pool.description, "labels": pool.label_names, "pool": len(pool.labels),
        "scored": {"split": pool.scored_split, "size": len(pool.scored_labels)}, "sizes": counts, "seeds": seeds,
        "init_from": init_from, "parent": parent_alone, "long_texts": long_texts,
        "options": {name: section for name, section in (overrides or {}).items() if section},
        "recipes": {str(size): {start: recipe(size, start, long_texts) for start in starts if start != "fine_tuned" or parent}
                    for size in counts},
        "runs": runs, "summary": figures,
    }


def format_table(results: dict[str, Any]) -> str:
    """A Markdown table of accuracy, mean ± std over seeds: one row per model, one column per training-set size."""
    sizes = results["sizes"]
    lines = [f"| model | {' | '.join(f'{s:,} texts' for s in sizes)} |", "| --- |" + " --- |" * len(sizes)]
    for name, by_size in results["summary"].items():
        cells = [f"{by_size[str(s)]['accuracy']['mean']:.4f} ± {by_size[str(s)]['accuracy']['std']:.4f}" for s in sizes]
        lines.append(f"| {MODELS[name]} | {' | '.join(cells)} |")
    parent = results.get("parent")
    if parent:
        alone = f"{parent['accuracy']:.4f}"
        lines.append(f"| the parent alone ({parent['name']}), no training | {' | '.join([alone] * len(sizes))} |")
    n = len(results["seeds"])
    notes = [(f"Accuracy on the same {results['scored']['size']:,} rows ({_scored_name(results)} of {results['data']}), "
              f"mean ± std over {n} seed{'s' if n > 1 else ''} of the draw and the training. "
              f"Baselines: {BASELINES['tfidf']}; {BASELINES['nbsvm']}.")]
    if results.get("options"):
        given = ", ".join(f"{name}={value}" for section in results["options"].values() for name, value in section.items())
        notes.append(f"Every GRU run with {given} over the recipe.")
    if results.get("long_texts"):
        notes.append(f"Long texts (median over {LONG_WORDS} words): every GRU reads as the reviews preset does, its first "
                     f"{LONG_READING['max_length'] - LONG_READING['tail_tokens']} and last {LONG_READING['tail_tokens']} "
                     f"tokens in training, up to {LONG_READING['predict_length']:,} in scoring.")
    if parent and parent.get("label_subset"):
        notes.append(f"The parent is scored on the data's labels: {parent['label_subset']['rule']}.")
    return "\n".join(lines) + "\n\n" + " ".join(notes)


def plot(results: dict[str, Any], path: Path) -> None:
    """Accuracy against training-set size, one line per model (mean, with ± std bars over seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = results["sizes"]
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for name, by_size in results["summary"].items():
        means = [by_size[str(s)]["accuracy"]["mean"] for s in sizes]
        stds = [by_size[str(s)]["accuracy"]["std"] for s in sizes]
        ax.errorbar(sizes, means, yerr=stds, marker="o", capsize=3, label=MODELS[name])
    if results.get("parent"):
        ax.axhline(results["parent"]["accuracy"], color="grey", linestyle="--",
                   label=f"the parent alone ({results['parent']['name']})")
    ax.set_xscale("log")
    ax.set_xticks(sizes, labels=[f"{s:,}" for s in sizes])
    ax.minorticks_off()
    ax.set(title=f"Learning curve: {results['data']}", xlabel="Labelled training texts",
           ylabel=f"Accuracy ({_scored_name(results)})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _scored_name(results: dict[str, Any]) -> str:
    """Which rows the figures are on: "test split", or "rows carved from the pool"."""
    split = results["scored"]["split"]
    return "rows carved from the pool" if split == CARVED else f"{split} split"


def _merged(sections: dict[str, dict[str, Any]], extra: dict[str, dict[str, Any]] | None, seed: int) -> dict[str, dict[str, Any]]:
    """Configuration sections: `sections`, then `extra`'s, then the seed."""
    merged = {name: {**sections.get(name, {}), **(extra or {}).get(name, {})} for name in {*sections, *(extra or {})}}
    merged["train"] = {**merged.get("train", {}), "seed": seed}
    return merged


def _row(model: str, size: int, seed: int, metrics: dict[str, Any], seconds: float) -> dict[str, Any]:
    return {"model": model, "size": size, "seed": seed, "accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"],
            "seconds": seconds}


def _log_row(row: dict[str, Any]) -> None:
    """One line per finished run, so a long curve shows its figures as it goes."""
    log.info("learning curve: %s, %d texts, seed %d: accuracy %.4f, macro-F1 %.4f (%.0f s)", MODELS[row["model"]], row["size"],
             row["seed"], row["accuracy"], row["macro_f1"], row["seconds"])


def _write_rows(path: Path, texts: list[str], labels: np.ndarray, names: list[str]) -> Path:
    """Rows as a CSV file of text and label name, which `load_data` reads back to the same label ids."""
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows((text, names[label]) for text, label in zip(texts, labels))
    return path
