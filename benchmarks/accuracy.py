"""Accuracy against the TF-IDF + logistic-regression baseline: the project's presets over several seeds.

Each run is a whole `train_and_save` (the same code path as `scripts/train.py`, model folder
written to a temporary directory), so the GRU and the baseline are scored on the same split in
the same run. The default corpus is scored on its test split (touched once per run); SST-2 on
its validation split (its test labels are not public).
"""

from __future__ import annotations

import dataclasses
import logging
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sentiment_gru.config import DataConfig, build_run_config
from sentiment_gru.errors import DataError
from sentiment_gru.files import MODEL_FILE
from sentiment_gru.runs import train_and_save

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Benchmark:
    name: str
    preset: str
    split: str  # the split the figures are on
    published: str  # published results for context (different split or protocol), or ""
    train: tuple[tuple[str, Any], ...] = ()  # training options beyond the preset's, e.g. (("blend_nbsvm", True),)


BENCHMARKS = {
    "default": Benchmark("default corpus (Rotten Tomatoes snippets)", "snippets", "test", ""),
    "sst2": Benchmark(
        "SST-2, train -> validation", "treebank", "validation",
        "test set, for context only: CNN random embeddings 82.7, CNN static word2vec 86.8 (Kim 2014); "
        "2-layer LSTM with GloVe 86.3 (Tai et al. 2015)",
    ),
    "imdb": Benchmark(
        "IMDB, train -> 10% validation carved from it", "reviews", "validation",
        "test set, for context only: NBSVM 91.2 (Wang & Manning 2012); RNN-LM + paragraph vectors + NBSVM 92.57 "
        "(Mesnil et al. 2014)", train=(("blend_nbsvm", True),),
    ),
}


def data_config(name: str, sst2: str, imdb: str | None = None) -> DataConfig:
    """The data of benchmark `name`; `sst2` is a folder with train/validation files or a hub name, `imdb` a folder with
    train.csv (the official 25,000 training reviews; validation is a seeded, stratified 10% of them)."""
    if name == "default":
        return DataConfig()
    if name == "imdb":
        train = Path(imdb or "") / "train.csv"
        if not train.is_file():
            raise DataError(f"--imdb {imdb}: the folder needs train.csv (text,label with 0 = negative, 1 = positive).")
        return DataConfig(train_file=str(train), label_names=("negative", "positive"))
    path = Path(sst2)
    if path.is_dir():
        files = {split: next(iter(sorted(path.glob(f"{split}.*"))), None) for split in ("train", "validation")}
        if files["train"] is None or files["validation"] is None:
            raise DataError(f"--sst2 {sst2}: the folder needs train.* and validation.* files (CSV text,label).")
        return DataConfig(train_file=str(files["train"]), validation_file=str(files["validation"]),
                          label_names=("negative", "positive"))
    return DataConfig(dataset=sst2)


def summary(values: list[float]) -> dict[str, float]:
    """Mean, standard deviation (0 for one value), least and greatest of `values`."""
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values)}


def run(datasets: list[str], seeds: list[int], sst2: str, overrides: dict[str, dict[str, Any]] | None = None,
        progress: bool | None = False, imdb: str | None = None, sst2_distill_file: str | None = None,
        keep_models: Path | None = None) -> dict[str, Any]:
    """Train each dataset's preset once per seed; return per-run figures and mean/std per dataset. With
    `sst2_distill_file`, the SST-2 student also learns the ensemble's outputs on those unlabelled texts, in place of
    made-up variants of the training texts. With `keep_models`, each run's model folder is kept there as
    `<dataset>-seed<S>` (for evaluating or predicting with it afterwards); otherwise it is thrown away."""
    overrides = overrides or {}
    results: dict[str, Any] = {}
    for name in datasets:
        bench = BENCHMARKS[name]
        data = data_config(name, sst2, imdb)
        extra: dict[str, Any] = {}
        if name == "sst2" and sst2_distill_file:
            data = dataclasses.replace(data, distill_file=sst2_distill_file)
            extra = {"distill_copies": 0}
        runs = []
        for seed in seeds:
            sections = {k: dict(v) for k, v in overrides.items()}
            sections["train"] = {**dict(bench.train), **extra, **sections.get("train", {}), "seed": seed}
            config = build_run_config(data, preset=bench.preset, **sections)
            log.info("%s: preset %s, seed %d", bench.name, bench.preset, seed)
            started = time.perf_counter()
            with tempfile.TemporaryDirectory() as tmp:
                folder = keep_models / f"{name}-seed{seed}" if keep_models else Path(tmp) / "model"
                metrics = train_and_save(config, folder, progress=progress)
                weights = (folder / MODEL_FILE).stat().st_size
            seconds = time.perf_counter() - started
            if metrics["split"] != bench.split:
                raise DataError(f"{bench.name}: expected scores on the {bench.split} split, got {metrics['split']}.")
            runs.append({
                "seed": seed, "accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"],
                "baseline_accuracy": metrics["baseline"]["accuracy"], "baseline_macro_f1": metrics["baseline"]["macro_f1"],
                "baseline_seconds": metrics["baseline"]["train_seconds"], "run_seconds": seconds,
                "model_mib": weights / 2**20,
            })
            if "blend" in metrics:
                runs[-1].update(nbsvm_accuracy=metrics["blend"]["nbsvm"]["accuracy"], nbsvm_macro_f1=metrics["blend"]["nbsvm"]["macro_f1"],
                                blend_accuracy=metrics["blend"]["accuracy"], blend_macro_f1=metrics["blend"]["macro_f1"],
                                blend_weight=metrics["blend"]["weight"])
            if "ensemble" in metrics:  # a distilled student: the ensemble it learned from, scored on the same split
                runs[-1].update(ensemble_accuracy=metrics["ensemble"]["accuracy"], ensemble_macro_f1=metrics["ensemble"]["macro_f1"])
            log.info("%s seed %d: accuracy %.4f (baseline %.4f), %.0f s", name, seed, runs[-1]["accuracy"],
                     runs[-1]["baseline_accuracy"], seconds)
        keys = ["accuracy", "macro_f1", "baseline_accuracy", "baseline_macro_f1", "run_seconds", "baseline_seconds", "model_mib"]
        keys += [k for k in ("ensemble_accuracy", "ensemble_macro_f1", "nbsvm_accuracy", "nbsvm_macro_f1", "blend_accuracy",
                             "blend_macro_f1", "blend_weight") if all(k in r for r in runs)]
        results[name] = {
            "name": bench.name, "preset": bench.preset, "split": bench.split, "published": bench.published,
            "config": config.to_dict(), "runs": runs, **{key: summary([r[key] for r in runs]) for key in keys},
        }
        gain = results[name]["accuracy"]["mean"] - results[name]["baseline_accuracy"]["mean"]
        results[name]["gain_over_baseline_points"] = 100 * gain
    return results


def format_table(results: dict[str, Any]) -> str:
    """A Markdown table: the GRU preset and the baseline per dataset, mean ± std over seeds."""
    def pm(s: dict[str, float], scale: float = 1.0, digits: int = 4) -> str:
        return f"{s['mean'] * scale:.{digits}f} ± {s['std'] * scale:.{digits}f}"

    lines = [
        "| data (split) | model | accuracy | macro-F1 | run time, s (train + evaluate + report) | published (for context) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in results.values():
        n = len(r["runs"])
        shipped = "distilled student" if "ensemble_accuracy" in r else "BiGRU"
        lines.append(f"| {r['name']} ({r['split']}) | {shipped}, preset `{r['preset']}`, {n} seeds, {r['model_mib']['mean']:.1f} MiB | "
                     f"{pm(r['accuracy'])} | {pm(r['macro_f1'])} | {pm(r['run_seconds'], digits=0)} | {r['published'] or '-'} |")
        if "ensemble_accuracy" in r:
            members = r["config"]["model"]["ensemble_size"]
            lines.append(f"| {r['name']} ({r['split']}) | the {members}-member ensemble it was distilled from (same runs) | "
                         f"{pm(r['ensemble_accuracy'])} | {pm(r['ensemble_macro_f1'])} | | |")
        lines.append(f"| {r['name']} ({r['split']}) | TF-IDF (1-2 grams) + LogisticRegression(C=4) | "
                     f"{pm(r['baseline_accuracy'])} | {pm(r['baseline_macro_f1'])} | {pm(r['baseline_seconds'], digits=0)} | |")
        if "nbsvm_accuracy" in r:
            lines.append(f"| {r['name']} ({r['split']}) | NBSVM (NB-weighted binary 1-2 grams + LogisticRegression) | "
                         f"{pm(r['nbsvm_accuracy'])} | {pm(r['nbsvm_macro_f1'])} | | |")
            lines.append(f"| {r['name']} ({r['split']}) | blend of the two, GRU share {r['blend_weight']['mean']:.2f} (report only) | "
                         f"{pm(r['blend_accuracy'])} | {pm(r['blend_macro_f1'])} | | |")
    return "\n".join(lines)
