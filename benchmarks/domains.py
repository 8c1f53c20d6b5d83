"""Leave one domain out: a model trained on the other domains of the english-6-domains corpus, scored on a domain it
never saw, beside VADER (rule-based: trained on no domain) and TF-IDF + logistic regression trained on the same rows.

For each rated domain (`LEFT_OUT`: movies, tweets, editorials, products), a whole `train_and_save` (the train
command's code path, in a temporary folder) trains on the corpus's train split without that domain, and selects its
epoch on the validation split without it; then the left-out domain's validation rows are scored:

- negative-vs-positive accuracy on its rows labelled negative or positive: the three-label model (and TF-IDF) is
  scored on the larger of the two probabilities (`evaluate.scoring.on_labels`, as `evaluate` scores a model on data
  with fewer labels), VADER says positive for a compound score >= 0;
- three-class macro-recall (balanced accuracy) on all its rows: the largest probability; VADER says neutral for a
  compound score strictly between -0.05 and 0.05, as its README does.

`snippets` and `plots` are never left out: snippets are binary, and nearly all of them are film sentences of
`movies` already (data/domains.py); plots are all neutral, so neither accuracy nor macro-recall can be read on them.
Leaving out `movies` leaves out `snippets` and `plots` too (`ALSO_LEFT_OUT`): they are texts about the same films
from the same site, and a model trained on them would not meet film reviews for the first time.

With `in_domain`, one model trained on every domain is scored on each domain's validation rows as well (snippets with
the negative-vs-positive accuracy alone): the gap to the left-out figures is what meeting a domain in training buys.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sentiment_gru.config import DOMAINS, DataConfig, build_run_config
from sentiment_gru.data.domains import CORPUS_NAME, LABEL_NAMES, NEGATIVE, NEUTRAL, POSITIVE, load_domains_corpus
from sentiment_gru.data.load import load_data
from sentiment_gru.errors import UserError
from sentiment_gru.evaluate.baselines import BASELINE_NAME, fit_baseline
from sentiment_gru.evaluate.scoring import Scores, on_labels, score
from sentiment_gru.inference.classifier import SentimentClassifier
from sentiment_gru.runs import train_and_save

from .accuracy import summary

log = logging.getLogger(__name__)

LEFT_OUT = ("movies", "tweets", "editorials", "products")
ALSO_LEFT_OUT = {"movies": ("snippets", "plots")}  # the same films, from the same site
IN_DOMAIN = ("snippets", "movies", "tweets", "editorials", "products")  # scored with --in-domain
VADER_NEUTRAL = 0.05  # a compound score strictly within +-this is neutral (VADER's README)
MODELS = {"gru": "BiGRU", "vader": "VADER 3.3.2 (compound score)", "tfidf": BASELINE_NAME}
SPLIT = "validation"


@dataclass
class Rows:
    """The scored rows of one domain: its validation split."""

    texts: list[str]
    labels: np.ndarray  # [n] ids into LABEL_NAMES

    def counts(self) -> dict[str, int]:
        return {name: int((self.labels == i).sum()) for i, name in enumerate(LABEL_NAMES)}


def trained_on(left_out: str) -> tuple[str, ...]:
    """The domains a model scored on `left_out` trains on: all but it (and the domains `ALSO_LEFT_OUT` names with it)."""
    dropped = {left_out, *ALSO_LEFT_OUT.get(left_out, ())}
    return tuple(d for d in DOMAINS if d not in dropped)


def figures(labels: np.ndarray, binary: np.ndarray, three: np.ndarray) -> dict[str, float | None]:
    """Negative-vs-positive accuracy (the rows labelled negative or positive; `binary` is NEGATIVE or POSITIVE per row)
    and three-class macro-recall (`three`: any label per row; None when the rows lack a label)."""
    polar = labels != NEUTRAL
    accuracy = float((binary[polar] == labels[polar]).mean()) if polar.any() else None
    present = [c for c in range(len(LABEL_NAMES)) if (labels == c).any()]
    recall = float(np.mean([(three[labels == c] == c).mean() for c in present])) if len(present) == len(LABEL_NAMES) else None
    return {"accuracy": accuracy, "macro_recall": recall}


def scored_figures(scores: Scores) -> dict[str, float | None]:
    """`figures` of a model's scores, its columns in LABEL_NAMES order: on the larger of the negative and positive
    probabilities (`on_labels`), and on the largest of the three."""
    pair = on_labels(scores, [NEGATIVE, POSITIVE]).predictions  # 0: negative, 1: positive
    return figures(scores.labels, np.where(pair == 1, POSITIVE, NEGATIVE), scores.predictions)


def vader_figures(rows: Rows) -> dict[str, float | None]:
    """VADER's figures on `rows`: positive for a compound score >= 0 (two labels); within +-VADER_NEUTRAL neutral (three)."""
    try:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
    except ImportError:
        raise UserError("The domains benchmark scores VADER beside the models: pip install vaderSentiment==3.3.2 "
                        "(make setup installs it with the dev extra).") from None
    analyser = SentimentIntensityAnalyzer()
    compound = np.array([analyser.polarity_scores(text)["compound"] for text in rows.texts])
    three = np.where(compound >= VADER_NEUTRAL, POSITIVE, np.where(compound <= -VADER_NEUTRAL, NEGATIVE, NEUTRAL))
    return figures(rows.labels, np.where(compound >= 0, POSITIVE, NEGATIVE), three)


def run(seeds: list[int], preset: str | None = None, sections: dict[str, dict[str, Any]] | None = None,
        data_options: dict[str, Any] | None = None, in_domain: bool = False, progress: bool | None = False,
        keep_models: Path | None = None) -> dict[str, Any]:
    """Train and score every left-out domain once per seed (and, with `in_domain`, one model on every domain per seed);
    return each run's figures and their mean and std, and VADER's. `sections` are configuration sections given to
    `build_run_config` (e.g. {"train": {"epochs": 1}}), `data_options` DataConfig fields (e.g. {"max_train_rows": 300})."""
    validation = load_domains_corpus()[SPLIT][:]  # dict of lists
    domains = np.asarray(validation["domain"])
    labels = np.asarray(validation["label"], dtype=np.int64)
    texts = validation["text"]
    rows = {d: Rows([texts[i] for i in np.flatnonzero(domains == d)], labels[domains == d]) for d in DOMAINS}
    plans = [("left_out", d, trained_on(d), (d,)) for d in LEFT_OUT]
    if in_domain:
        plans.append(("in_domain", "all", DOMAINS, IN_DOMAIN))
    vader = {d: vader_figures(rows[d]) for d in {d for *_, scored in plans for d in scored}}
    results: dict[str, Any] = {"corpus": CORPUS_NAME, "split": SPLIT, "seeds": seeds, "preset": preset, "sections": sections or {},
                               "data_options": data_options or {}, "models": MODELS, "left_out": {}}
    if in_domain:
        results["in_domain"] = {}
    for kind, name, train_domains, scored in plans:
        runs: dict[str, list[dict[str, Any]]] = {d: [] for d in scored}
        for seed in seeds:
            log.info("domains: trained on %s, scored on %s, seed %d", ", ".join(train_domains), ", ".join(scored), seed)
            with tempfile.TemporaryDirectory() as tmp:
                folder = keep_models / f"{kind}-{name}-seed{seed}" if keep_models else Path(tmp) / "model"
                found = _train_and_score(train_domains, {d: rows[d] for d in scored}, seed, preset, sections or {},
                                         data_options or {}, folder, progress)
            for d in scored:
                runs[d].append({"seed": seed, **found[d]})
        for d in scored:
            results[kind][d] = {"trained_on": list(train_domains), "rows": rows[d].counts(), "runs": runs[d], "vader": vader[d],
                                **{model: _summary([r[model] for r in runs[d]]) for model in ("gru", "tfidf")}}
    return results


def _train_and_score(domains: tuple[str, ...], scored: dict[str, Rows], seed: int, preset: str | None,
                     sections: dict[str, dict[str, Any]], data_options: dict[str, Any], folder: Path,
                     progress: bool | None) -> dict[str, dict[str, Any]]:
    """Train on `domains` into `folder`; the model's and TF-IDF's figures on each of `scored`'s rows."""
    data = DataConfig(corpus=CORPUS_NAME, domains=domains, seed=seed, **data_options)
    config = build_run_config(data, preset=preset, **{**sections, "train": {**sections.get("train", {}), "seed": seed}})
    train_and_save(config, folder, progress=progress)
    model = SentimentClassifier.from_pretrained(folder, backend="torch")
    if sorted(model.label_names) != sorted(LABEL_NAMES):
        raise UserError(f"The model trained on {', '.join(domains)} has the labels {', '.join(model.label_names)}, "
                        f"not {', '.join(LABEL_NAMES)}: train on domains that have all three.")
    columns = [model.label_names.index(name) for name in LABEL_NAMES]
    loaded = load_data(data)  # the rows the model trained on (after --max-train-rows), for TF-IDF
    train = loaded.splits["train"][:]
    tfidf = fit_baseline("tfidf", train["text"], np.asarray(train["label"]))
    tfidf_columns = [list(tfidf.classes_).index(loaded.label_names.index(name)) for name in LABEL_NAMES]
    found = {}
    for d, rows in scored.items():
        gru = on_labels(score(model.backend.logits, model.encode(rows.texts), rows.labels, SPLIT, model.temperature), columns)
        linear = tfidf.predict_proba(rows.texts)[:, tfidf_columns]
        as_scores = Scores(split=SPLIT, labels=rows.labels, logits=np.log(np.clip(linear, 1e-12, 1.0)), temperature=1.0,
                           lengths=np.zeros(len(rows.labels)))  # softmax(log p) = p
        found[d] = {"gru": scored_figures(gru), "tfidf": scored_figures(as_scores), "train_rows": len(train["text"])}
    return found


def _summary(values: list[dict[str, float | None]]) -> dict[str, dict[str, float] | None]:
    """Mean, std, least and greatest over seeds of each figure (None where a figure cannot be read on the rows)."""
    return {key: summary([v[key] for v in values]) if values[0][key] is not None else None for key in values[0]}


def format_table(results: dict[str, Any]) -> str:
    """Markdown tables: a row per left-out domain (and, with --in-domain, per domain scored by the model trained on all)."""
    n = len(results["seeds"])
    header = ("| {what} | validation rows (neg / neu / pos) | accuracy: BiGRU | accuracy: VADER | accuracy: TF-IDF + LR | "
              "macro-recall: BiGRU | macro-recall: VADER | macro-recall: TF-IDF + LR |")
    tables = []
    for kind, what in (("left_out", "left-out domain (trained without it)"), ("in_domain", "domain (trained on all)")):
        if kind not in results:
            continue
        lines = [header.format(what=what), "| --- |" + " --- |" * 7]
        for domain, r in results[kind].items():
            also = [d for d in ALSO_LEFT_OUT.get(domain, ()) if kind == "left_out"]
            name = f"{domain} (and {', '.join(also)})" if also else domain
            rows = " / ".join(f"{r['rows'][label]:,}" for label in LABEL_NAMES)
            cells = [_pm(r["gru"]["accuracy"]), _one(r["vader"]["accuracy"]), _pm(r["tfidf"]["accuracy"]),
                     _pm(r["gru"]["macro_recall"]), _one(r["vader"]["macro_recall"]), _pm(r["tfidf"]["macro_recall"])]
            lines.append(f"| {name} | {rows} | {' | '.join(cells)} |")
        tables.append("\n".join(lines))
    notes = (f"Scored on each domain's {results['split']} rows of the {results['corpus']} corpus; BiGRU and TF-IDF + LR "
             f"({MODELS['tfidf']}) trained on the same rows, mean ± std over {n} seed{'s' if n > 1 else ''}. Accuracy: "
             "rows labelled negative or positive, each given the larger of the two probabilities (VADER: positive for a "
             f"compound score >= 0). Macro-recall: all three labels (VADER: neutral for a compound score within "
             f"±{VADER_NEUTRAL}).")
    return "\n\n".join([*tables, notes])


def _pm(s: dict[str, float] | None) -> str:
    return "-" if s is None else f"{s['mean']:.4f} ± {s['std']:.4f}"


def _one(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"
