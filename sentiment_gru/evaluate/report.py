"""The evaluation report a person reads, drawn and rendered from a `scoring.Evaluation`.

`write_reports` writes metrics.json, scikit-learn's text report, the confusion matrix (CSV and PNG), the
other figures, and report.html (self-contained) and report.md, both made from one list of blocks. Every
number shown comes from the evaluation; nothing here computes a statistic.
"""

from __future__ import annotations

import base64
import csv
import html
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..files import (
    CONFUSION_CSV,
    CONFUSION_PNG,
    CURVES_PNG,
    HTML_REPORT_FILE,
    LENGTH_PNG,
    MARKDOWN_REPORT_FILE,
    METRICS_FILE,
    RELIABILITY_PNG,
    TEXT_REPORT_FILE,
    TRAINING_PNG,
    write_json,
)
from .scoring import EXAMPLES, Evaluation

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- figures


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 10, "axes.titlesize": 11, "axes.grid": True, "grid.alpha": 0.3})
    return plt


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    fig.clf()
    import matplotlib.pyplot as plt

    plt.close(fig)


def plot_confusion_matrix(matrix: np.ndarray, names: list[str], path: Path, title: str) -> None:
    """A heatmap with counts and row-normalised rates in each cell."""
    plt = _pyplot()
    rates = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    size = 2.2 + 1.1 * len(names)
    with plt.rc_context({"axes.grid": False}):
        fig, ax = plt.subplots(figsize=(size + 1.2, size), dpi=120)
    image = ax.imshow(rates, cmap="Blues", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(len(names)), labels=names, rotation=30 if len(names) > 3 else 0, ha="right" if len(names) > 3 else "center")
    ax.set_yticks(range(len(names)), labels=names)
    ax.set_xlabel("Predicted label")
    ax.set_ylabel("True label")
    ax.set_title(title)
    for i in range(len(names)):
        for j in range(len(names)):
            color = "white" if rates[i, j] > 0.6 else "black"
            ax.text(j, i, f"{matrix[i, j]:,}\n{rates[i, j]:.1%}", ha="center", va="center", color=color, fontsize=10)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="Share of the true label's texts")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_curves(curves: dict[str, dict[str, Any]], names: list[str], path: Path) -> None:
    """ROC and precision-recall curves (one-vs-rest with more than two classes)."""
    plt = _pyplot()
    fig, (roc, pr) = plt.subplots(1, 2, figsize=(11, 4.4))
    for name, c in curves.items():
        roc.plot(c["fpr"], c["tpr"], label=f"{name} (AUC {c['roc_auc']:.3f})")
        pr.step(c["recall"], c["precision"], where="post", label=f"{name} (AP {c['average_precision']:.3f}, base rate {c['base_rate']:.2f})")
    roc.plot([0, 1], [0, 1], color="grey", linestyle=":", label="chance")
    which = " (one-vs-rest)" if len(names) > 2 else f" (positive class: {names[1]!r})"
    roc.set(title="ROC curve" + which,
            xlabel="False positive rate", ylabel="True positive rate", xlim=(0, 1), ylim=(0, 1.01))
    pr.set(title="Precision-recall curve" + which,
           xlabel="Recall", ylabel="Precision", xlim=(0, 1), ylim=(0, 1.01))
    roc.legend(loc="lower right")
    pr.legend(loc="lower left")
    _save(fig, path)


def plot_reliability(reliability: dict[str, dict[str, np.ndarray]], calibration: dict[str, float], path: Path) -> None:
    """Reliability diagrams before and after temperature scaling."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4), sharey=True)
    panels = ((axes[0], "before", f"Before scaling (T = 1): ECE {calibration['ece_before']:.4f}"),
              (axes[1], "after", f"After scaling (T = {calibration['temperature']:.3f}): ECE {calibration['ece_after']:.4f}"))
    for ax, when, title in panels:
        b = reliability[when]
        width = b["edges"][1] - b["edges"][0]
        ax.bar(b["centres"], b["accuracy"], width=width * 0.9, color="#4c72b0", alpha=0.8, label="accuracy in bin")
        ax.plot(b["confidence"], b["accuracy"], "o", color="#dd8452", markersize=4, label="(mean confidence, accuracy)")
        ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfect calibration")
        ax.set(title=title, xlabel="Confidence of the predicted label", xlim=(0, 1), ylim=(0, 1.01))
        ax.legend(loc="upper left")
    axes[0].set_ylabel("Accuracy")
    _save(fig, path)


def plot_length_confidence(evaluation: Evaluation, path: Path) -> None:
    """Accuracy per length bucket, and confidence histograms of right and wrong predictions."""
    plt = _pyplot()
    fig, (by_length, hist) = plt.subplots(1, 2, figsize=(11, 4.4))
    rows = evaluation.metrics["by_length"]
    x = np.arange(len(rows))
    bars = by_length.bar(x, [r["accuracy"] for r in rows], color="#4c72b0")
    for bar, row in zip(bars, rows):
        by_length.annotate(f"{row['accuracy']:.3f}\nn={row['size']:,}", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                           ha="center", va="bottom", fontsize=9)
    by_length.set_xticks(x, labels=[r["tokens"] for r in rows])
    by_length.set(title="Accuracy by text length (quantile buckets)", xlabel="Tokens per text", ylabel="Accuracy", ylim=(0, 1.15))
    scores = evaluation.scores
    probabilities = scores.probabilities
    confidence = probabilities.max(axis=1)
    correct = scores.predictions == scores.labels
    edges = np.linspace(1.0 / probabilities.shape[1], 1.0, 21)
    for mask, color, name in ((correct, "#55a868", "right"), (~correct, "#c44e52", "wrong")):
        if mask.any():
            hist.hist(confidence[mask], bins=edges, weights=np.full(mask.sum(), 1.0 / mask.sum()), histtype="step", linewidth=2,
                      color=color, label=f"{name} ({mask.sum():,} texts)")
    hist.set(title="Confidence of right and wrong predictions", xlabel="Probability of the predicted label",
             ylabel="Share of the group's texts")
    hist.legend(loc="upper left")
    _save(fig, path)


def plot_training(history: dict[str, Any], path: Path) -> None:
    """Loss and validation accuracy/macro-F1 per epoch, one line per ensemble member (and distilled student), chosen epochs marked."""
    plt = _pyplot()
    fig, (loss, score) = plt.subplots(1, 2, figsize=(11, 4.4))
    rows = history["epochs"]
    members = sorted({r.get("member", 0) for r in rows})
    best = history.get("best_epoch")
    best = best if isinstance(best, list) else [best] * len(members)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for m in members:
        mine = [r for r in rows if r.get("member", 0) == m]
        epochs = [r["epoch"] for r in mine]
        color = colors[m % len(colors)]
        name = "student" if mine[0].get("role") == "student" else f"member {m}"
        tag = f"{name}: " if len(members) > 1 else ""
        loss.plot(epochs, [r["train_loss"] for r in mine], "-", color=color, label=f"{tag}train")
        loss.plot(epochs, [r["val_loss"] for r in mine], "--", color=color, label=f"{tag}validation")
        score.plot(epochs, [r["val_accuracy"] for r in mine], "-", color=color, label=name if tag else "accuracy")
        score.plot(epochs, [r["val_macro_f1"] for r in mine], ":", color=color, label=None if tag else "macro-F1")
        chosen = [r for r in mine if r["epoch"] == best[members.index(m)]]
        if chosen:
            score.plot(chosen[0]["epoch"], chosen[0]["val_accuracy"], "*", color=color, markersize=14, markeredgecolor="black")
            loss.plot(chosen[0]["epoch"], chosen[0]["val_loss"], "*", color=color, markersize=14, markeredgecolor="black")
    loss.set(title="Loss per epoch (solid: train, dashed: validation; * chosen)", xlabel="Epoch", ylabel="Cross-entropy")
    score.set(title="Validation accuracy (solid) and macro-F1 (dotted); * chosen", xlabel="Epoch", ylabel="Score")
    for ax in (loss, score):
        ax.xaxis.get_major_locator().set_params(integer=True)
    if len(members) == 1:
        loss.legend(loc="upper right")
        score.legend(loc="lower right")
    else:
        score.legend(loc="lower right", fontsize=8, ncol=2, title="colour: ensemble member", title_fontsize=8)
    _save(fig, path)


# ---------------------------------------------------------------- blocks


def _f(x: float) -> str:
    return f"{x:.4f}"


def format_interval(pair: list[float]) -> str:
    """An interval as `[low, high]` to 4 decimals; both signed when it reaches below zero (a difference)."""
    return f"[{pair[0]:+.4f}, {pair[1]:+.4f}]" if min(pair) < 0 else f"[{pair[0]:.4f}, {pair[1]:.4f}]"


def _signed(x: float) -> str:
    return f"{x:+.4f}"


def _p(p: float) -> str:
    return f"{p:.2e}" if p < 1e-3 else f"{p:.4f}"


def build_blocks(evaluation: Evaluation, images: dict[str, str]) -> list[tuple]:
    """The report as a list of ("h1"|"h2"|"p"|"table"|"img", ...) blocks, rendered to HTML and Markdown alike."""
    metrics, config, history = evaluation.metrics, evaluation.config, evaluation.history
    names = metrics["label_names"]
    blocks: list[tuple] = [("h1", f"Sentiment GRU: evaluation on the {metrics['split']} split ({metrics['size']:,} texts)")]

    # 1. headline
    blocks.append(("h2", "1. Headline"))
    ci = metrics["confidence_intervals"]
    rows = [["GRU", _f(metrics["accuracy"]), format_interval(ci["accuracy"]), _f(metrics["macro_f1"]), format_interval(ci["macro_f1"])]]
    if metrics.get("ensemble"):
        ensemble = metrics["ensemble"]
        rows.append([f"Ensemble of {ensemble['members']} this model was distilled from", _f(ensemble["accuracy"]), "-",
                     _f(ensemble["macro_f1"]), "-"])
    parent = metrics.get("parent", {})
    if parent.get("accuracy") is not None:
        rows.append([f"Parent model before fine-tuning ({parent['name']})", _f(parent["accuracy"]), "-", _f(parent["macro_f1"]), "-"])
    baseline = metrics.get("baseline")
    if baseline:
        bci = baseline.get("confidence_intervals")
        rows.append([f"Baseline: {baseline['name']}", _f(baseline["accuracy"]), format_interval(bci["accuracy"]) if bci else "-",
                     _f(baseline["macro_f1"]), format_interval(bci["macro_f1"]) if bci else "-"])
    mixed = metrics.get("blend")
    if mixed:
        rows.append([f"Baseline: {mixed['nbsvm']['name']}", _f(mixed["nbsvm"]["accuracy"]), "-", _f(mixed["nbsvm"]["macro_f1"]), "-"])
        rows.append([f"Blend: GRU × {mixed['weight']:.2f} + NBSVM × {1 - mixed['weight']:.2f} (not in the model folder)",
                     _f(mixed["accuracy"]), "-", _f(mixed["macro_f1"]), "-"])
    blocks.append(("table", ["Model", "Accuracy", "95% CI", "Macro-F1", "95% CI"], rows))
    blocks.append(("p", f"95% intervals: percentile bootstrap over texts, {ci['resamples']:,} resamples (seed {ci['seed']})."))
    if metrics.get("label_subset"):
        blocks.append(("p", f"Labels: {metrics['label_subset']['rule']}."))
    if parent:
        blocks += _parent_blocks(parent, config.get("parent", {}))
    if mixed:
        blocks.append(("p", f"The blend mixes the two models' probabilities; its share was fitted on {mixed['fitted_on']} "
                            "(log-loss), so no text is scored by a share it helped to choose."))
    if baseline and "comparison" in baseline:
        cmp = baseline["comparison"]
        test, within = cmp["mcnemar"], cmp["difference_intervals"]
        blocks.append(("p", (
            f"GRU minus baseline: accuracy {_signed(cmp['accuracy_difference'])} (95% CI {format_interval(within['accuracy'])}), "
            f"macro-F1 {_signed(cmp['macro_f1_difference'])} (95% CI {format_interval(within['macro_f1'])}), paired bootstrap. "
            f"Exact McNemar test: GRU right and baseline wrong on {test['a_right_b_wrong']:,} texts, the reverse on "
            f"{test['b_right_a_wrong']:,}; p = {_p(test['p_value'])}."
        )))
    elif not baseline:
        blocks.append(("p", "No baseline: the data has no train split to fit it on, or it was skipped (--no-baseline)."))

    # 2. per class
    blocks.append(("h2", "2. Per-class results"))
    per = metrics["per_class"]
    rows = [[n, _f(per[n]["precision"]), _f(per[n]["recall"]), _f(per[n]["f1-score"]), f"{per[n]['support']:,}"] for n in names]
    rows.append(["macro average", _f(np.mean([per[n]["precision"] for n in names])), _f(np.mean([per[n]["recall"] for n in names])),
                 _f(metrics["macro_f1"]), f"{metrics['size']:,}"])
    rows.append(["weighted-average F1", "", "", _f(metrics["weighted_f1"]), f"{metrics['size']:,}"])
    blocks.append(("table", ["Label", "Precision", "Recall", "F1", "Support"], rows))
    if config.get("class_weights"):
        blocks.append(("p", "Trained with class weights in the loss (--class-weight "
                            f"{config.get('train', {}).get('class_weight')}): "
                            + ", ".join(f"{k} {v:.3g}" for k, v in config["class_weights"].items())
                            + "; a label weighed more is predicted more often, which raises its recall."))
    blocks.append(("p", f"Log-loss {_f(metrics['log_loss'])} (probabilities after temperature scaling, "
                        f"T = {metrics['calibration']['temperature']:.4f}; see section 4)."))
    blocks.append(("img", images[CONFUSION_PNG], "Confusion matrix: counts and share of each true label", 520))

    # 3. ROC / PR
    blocks.append(("h2", "3. ROC and precision-recall curves"))
    curves = metrics["curves"]
    if curves["roc_auc"]:
        blocks.append(("table", ["Positive class", "ROC AUC", "Average precision"],
                       [[n, _f(curves["roc_auc"][n]), _f(curves["average_precision"][n])] for n in curves["roc_auc"]]))
        blocks.append(("img", images[CURVES_PNG], "ROC and precision-recall curves"))
    else:
        blocks.append(("p", "Not defined: the split holds texts of one label only."))

    # 4. calibration
    blocks.append(("h2", "4. Calibration"))
    cal = metrics["calibration"]
    fitted = config.get("calibration", {}).get("fitted_on")
    where = f"fitted on the {fitted} split" if fitted else "none fitted for this model"
    blocks.append(("table", ["", "Before (T = 1)", f"After (T = {cal['temperature']:.4f})"],
                   [["Expected calibration error (15 bins)", _f(cal["ece_before"]), _f(cal["ece_after"])],
                    ["Brier score", _f(cal["brier_before"]), _f(cal["brier_after"])]]))
    blocks.append(("p", f"Temperature scaling divides the logits by T ({where}). It changes no prediction, so accuracy and F1 "
                        "are the same before and after; the reported probabilities and log-loss use T."))
    blocks.append(("img", images[RELIABILITY_PNG], "Reliability diagrams before and after temperature scaling"))

    # 5. length and confidence
    blocks.append(("h2", "5. Text length and confidence"))
    blocks.append(("table", ["Tokens per text", "Texts", "Accuracy"],
                   [[r["tokens"], f"{r['size']:,}", _f(r["accuracy"])] for r in metrics["by_length"]]))
    blocks.append(("img", images[LENGTH_PNG], "Accuracy by text length; confidence of right and wrong predictions"))
    if metrics.get("by_domain"):
        with_baseline = all("baseline_accuracy" in r for r in metrics["by_domain"])
        blocks.append(("p", "By domain (macro-F1 over the labels each domain's rows have):"))
        blocks.append(("table", ["Domain", "Texts", "Labels", "Accuracy", "Macro-F1", *(["Baseline accuracy"] if with_baseline else [])],
                       [[r["domain"], f"{r['size']:,}", ", ".join(r["labels"]), _f(r["accuracy"]), _f(r["macro_f1"]),
                         *([_f(r["baseline_accuracy"])] if with_baseline else [])] for r in metrics["by_domain"]]))

    # 6. examples
    blocks.append(("h2", f"6. The {EXAMPLES} most confident mistakes"))
    mistakes = metrics["examples"]["confident_mistakes"]
    if any("explained" in r for r in mistakes):
        blocks.append(("p", "Words in [+brackets] pushed the model towards its (wrong) prediction, [-words] against it: "
                            "occlusion, the change in the predicted probability when the word is taken out (as predict --explain)."))
    blocks.append(_example_table(mistakes))
    blocks.append(("h2", f"The {EXAMPLES} least confident correct predictions"))
    blocks.append(_example_table(metrics["examples"]["unsure_correct"]))

    # 7. training
    blocks.append(("h2", "7. Training curves"))
    if history and history.get("epochs"):
        blocks.append(("p", f"Chosen epoch (best validation accuracy): {_join(history.get('best_epoch'))}."))
        blocks.append(("img", images[TRAINING_PNG], "Loss and validation scores per epoch"))
    else:
        blocks.append(("p", "No training history in the model folder."))

    # 8. facts
    blocks.append(("h2", "8. Run facts"))
    blocks.append(("table", ["Fact", "Value"], _facts(metrics, config)))
    return blocks


def _parent_blocks(parent: dict[str, Any], facts: dict[str, Any]) -> list[tuple]:
    """What starting from a trained model bought: the parent's own score on this split beside the fine-tuned model's."""
    head = f" Classifier head: {facts['head']}." if facts.get("head") else ""
    if parent.get("accuracy") is None:
        return [("p", f"Started from {parent['name']}; it is not scored here: {parent['not_scored']}.{head}")]
    text = (f"Started from {parent['name']}: on this split the parent alone scores accuracy {_f(parent['accuracy'])}, macro-F1 "
            f"{_f(parent['macro_f1'])}; fine-tuning on this data changed them by {_signed(parent['gain']['accuracy'])} "
            f"and {_signed(parent['gain']['macro_f1'])}.{head}")
    if parent.get("label_subset"):
        text += f" The parent is scored on the data's labels: {parent['label_subset']['rule']}."
    return [("p", text)]


def _example_table(rows: list[dict[str, Any]]) -> tuple:
    if not rows:
        return ("p", "None.")
    return ("table", ["#", "Text", "True", "Predicted", "Probability"],
            [[str(i), r.get("explained", r["text"]), r["true"], r["predicted"], _f(r["probability"])] for i, r in enumerate(rows, start=1)])


def _join(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(f"member {i}: {v}" for i, v in enumerate(value))
    return str(value)


def _kv(d: dict[str, Any]) -> str:
    return ", ".join(f"{k}={'/'.join(map(str, v)) if isinstance(v, list) else v}" for k, v in d.items())


def _facts(metrics: dict[str, Any], config: dict[str, Any]) -> list[list[str]]:
    data = config.get("data", {})
    source = data.get("source", {})
    rows = [["Model data", source.get("description", "-")],
            ["Split sizes", ", ".join(f"{k} {v:,}" for k, v in source.get("sizes", {}).items()) or "-"]]
    if metrics.get("data") and metrics["data"] != source:
        rows.append(["Evaluated on", f"{metrics['data'].get('description', '-')} ({metrics['split']}, {metrics['size']:,} texts)"])
    rows.append(["Labels", ", ".join(metrics["label_names"])])
    for key, title in (("tokenizer", "Tokenizer"), ("model", "Model"), ("train", "Training")):
        if config.get(key):
            rows.append([title, _kv(config[key])])
    if "best_epoch" in config:
        rows.append(["Chosen epoch", _join(config["best_epoch"])])
    if "train_seconds" in config:
        rows.append(["Training time", f"{config['train_seconds']:.1f} s"])
    if "device" in config:
        rows.append(["Device", str(config["device"])])
    if config.get("created"):
        rows.append(["Trained", str(config["created"])])
    if config.get("versions"):
        rows.append(["Library versions", ", ".join(f"{k} {v}" for k, v in config["versions"].items())])
    for note in data.get("notes", []):
        rows.append(["Data note", str(note)])
    return rows


# ---------------------------------------------------------------- rendering

CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; max-width: 1120px; margin: 2em auto; padding: 0 1em;
       color: #1f2328; line-height: 1.45; }
h1 { font-size: 1.6em; border-bottom: 2px solid #d0d7de; padding-bottom: .3em; }
h2 { font-size: 1.25em; margin-top: 2em; border-bottom: 1px solid #d0d7de; padding-bottom: .2em; }
table { border-collapse: collapse; margin: .8em 0; font-size: .92em; }
th, td { border: 1px solid #d0d7de; padding: .3em .6em; vertical-align: top; }
th { background: #f6f8fa; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.text { max-width: 640px; }
tr:nth-child(even) td { background: #fbfcfd; }
img { max-width: 100%; height: auto; display: block; margin: .6em 0; }
p { max-width: 900px; }
"""


def _is_number(cell: str) -> bool:
    return (any(c.isdigit() for c in cell) and (cell[0].isdigit() or cell[0] in "+-[")
            and not any(c.isalpha() for c in cell.replace("e-", "").replace("e+", "")))


def render_html(blocks: list[tuple], folder: Path) -> str:
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>{html.escape(blocks[0][1])}</title><style>{CSS}</style></head><body>"]
    for block in blocks:
        kind = block[0]
        if kind in ("h1", "h2", "p"):
            parts.append(f"<{kind}>{html.escape(block[1])}</{kind}>")
        elif kind == "table":
            _, header, rows = block
            parts.append("<table><thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr></thead><tbody>")
            for row in rows:
                cells = "".join(
                    f'<td class="{"num" if _is_number(c) else "text" if len(c) > 60 else ""}">{html.escape(c)}</td>' for c in row
                )
                parts.append(f"<tr>{cells}</tr>")
            parts.append("</tbody></table>")
        elif kind == "img":
            data = base64.b64encode((folder / block[1]).read_bytes()).decode("ascii")
            style = f' style="max-width: {block[3]}px"' if len(block) > 3 else ""
            parts.append(f'<img src="data:image/png;base64,{data}" alt="{html.escape(block[2])}"{style}>')
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _md_cell(cell: str) -> str:
    return cell.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ") or " "


def render_markdown(blocks: list[tuple]) -> str:
    parts = []
    for block in blocks:
        kind = block[0]
        if kind == "h1":
            parts.append(f"# {block[1]}")
        elif kind == "h2":
            parts.append(f"## {block[1]}")
        elif kind == "p":
            parts.append(block[1])
        elif kind == "table":
            _, header, rows = block
            lines = ["| " + " | ".join(_md_cell(h) for h in header) + " |",
                     "|" + "|".join("---:" if rows and _is_number(rows[0][i]) else "---" for i in range(len(header))) + "|"]
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
            parts.append("\n".join(lines))
        elif kind == "img":
            parts.append(f"![{block[2]}]({block[1]})")
    return "\n\n".join(parts) + "\n"


def write_reports(folder: str | Path, evaluation: Evaluation) -> str:
    """Write metrics.json, the text report, the confusion matrix (CSV and PNG), the figures, report.html and report.md
    into `folder`; return the text report (with how long the writing took in `evaluation.metrics`, not in the file)."""
    folder = Path(folder)
    metrics = evaluation.metrics
    names = metrics["label_names"]
    (folder / TEXT_REPORT_FILE).write_text(evaluation.text_report, encoding="utf-8")
    write_json(folder / METRICS_FILE, metrics)
    matrix = np.asarray(metrics["confusion_matrix"])
    with open(folder / CONFUSION_CSV, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["true \\ predicted", *names])
        for name, row in zip(names, matrix):
            writer.writerow([name, *row.tolist()])
    started = time.perf_counter()
    plot_confusion_matrix(matrix, names, folder / CONFUSION_PNG, title=f"Confusion matrix ({metrics['split']}, n={metrics['size']:,})")
    images = {CONFUSION_PNG: CONFUSION_PNG, RELIABILITY_PNG: RELIABILITY_PNG, LENGTH_PNG: LENGTH_PNG}
    plot_reliability(evaluation.reliability, metrics["calibration"], folder / RELIABILITY_PNG)
    plot_length_confidence(evaluation, folder / LENGTH_PNG)
    if evaluation.curves:
        plot_curves(evaluation.curves, names, folder / CURVES_PNG)
        images[CURVES_PNG] = CURVES_PNG
    if evaluation.history and evaluation.history.get("epochs"):
        plot_training(evaluation.history, folder / TRAINING_PNG)
        images[TRAINING_PNG] = TRAINING_PNG
    blocks = build_blocks(evaluation, images)
    (folder / HTML_REPORT_FILE).write_text(render_html(blocks, folder), encoding="utf-8")
    (folder / MARKDOWN_REPORT_FILE).write_text(render_markdown(blocks), encoding="utf-8")
    log.info("report.html and report.md written in %.1f s", time.perf_counter() - started)
    return evaluation.text_report


# ---------------------------------------------------------------- two models


def format_comparison(result: dict[str, Any]) -> str:
    """A plain-text table of a `scoring.compare` result, with the data and model folders `runs.compare_saved` adds."""
    lines = [f"{result['data']}, {result['split']} split, {result['size']:,} texts", "",
             f"{'':10}{'accuracy':>10} {'95% CI':>18}  {'macro-F1':>10} {'95% CI':>18}  {'log-loss':>9}  model"]
    for name in ("a", "b"):
        r = result[name]
        ci = r["intervals"]
        lines.append(f"{name.upper():10}{r['accuracy']:>10.4f} {format_interval(ci['accuracy']):>18}  "
                     f"{r['macro_f1']:>10.4f} {format_interval(ci['macro_f1']):>18}  {r['log_loss']:>9.4f}  {r['artifacts']}")
    d = result["difference"]
    lines.append(f"{'A - B':10}{d['accuracy']:>+10.4f} {format_interval(d['intervals']['accuracy']):>18}  {d['macro_f1']:>+10.4f} "
                 f"{format_interval(d['intervals']['macro_f1']):>18}  (paired bootstrap, {d['bootstrap_resamples']:,} resamples)")
    m = result["mcnemar"]
    lines += ["", f"McNemar (exact): A right and B wrong on {m['a_right_b_wrong']:,} texts, B right and A wrong on "
                  f"{m['b_right_a_wrong']:,}; p = {m['p_value']:.4g}"]
    lines += [f"Labels of {name.upper()}: {result[name]['label_subset']['rule']}."
              for name in ("a", "b") if result[name].get("label_subset")]
    return "\n".join(lines)

