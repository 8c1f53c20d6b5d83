"""Two trained models side by side on the same split, with a paired bootstrap and McNemar's test."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .artifacts import load_model
from .calibration import softmax
from .config import DataConfig, from_dict
from .data import load_data
from .errors import DataError
from .evaluation import compute_metrics
from .predict import batched_logits
from .report import bootstrap, mcnemar
from .tokenization import encode


def compare_models(dir_a: str | Path, dir_b: str | Path, data_config: DataConfig | None = None, split: str | None = None) -> dict[str, Any]:
    """Score both models on one split (of model A's data unless `data_config` is given) and test the difference."""
    a, b = load_model(dir_a), load_model(dir_b)
    if a.label_names != b.label_names:
        raise DataError(f"The models have different labels: {', '.join(a.label_names)} vs {', '.join(b.label_names)}. "
                        "Compare models trained on the same labels.")
    if data_config is None:
        data_config = from_dict(DataConfig, {k: v for k, v in a.config["data"].items() if k not in ("source", "notes")})
    data = load_data(data_config, label_names=a.label_names, need_train=False)
    split = split or ("test" if "test" in data.splits else next(iter(data.splits)))
    if split not in data.splits:
        raise DataError(f"--split {split}: the data has only {', '.join(data.splits)}.")
    texts, labels = data.splits[split]["text"], np.asarray(data.splits[split]["label"])
    scored, predictions = {}, []
    for name, loaded in (("a", a), ("b", b)):
        logits = batched_logits(loaded.model, encode(loaded.tokenizer, texts), batch_size=256, device="cpu").numpy()
        temperature = float(loaded.config.get("calibration", {}).get("temperature", 1.0))
        probabilities = softmax(logits, temperature)
        metrics = compute_metrics(labels, probabilities, a.label_names, split)
        scored[name] = {"artifacts": str(loaded.path), **{k: metrics[k] for k in ("accuracy", "macro_f1", "log_loss")}}
        predictions.append(probabilities.argmax(axis=1))
    boot = bootstrap(labels, predictions[0], len(a.label_names), other=predictions[1])
    scored["a"]["intervals"] = {k: boot[k] for k in ("accuracy", "macro_f1")}
    scored["b"]["intervals"] = boot["other"]
    return {
        "split": split, "size": int(len(labels)), "data": data.source["description"], **scored,
        "difference": {"accuracy": scored["a"]["accuracy"] - scored["b"]["accuracy"], "macro_f1": scored["a"]["macro_f1"] - scored["b"]["macro_f1"],
                       "intervals": boot["difference"], "bootstrap_resamples": boot["resamples"]},
        "mcnemar": mcnemar(labels, predictions[0], predictions[1]),
    }


def format_comparison(result: dict[str, Any]) -> str:
    """A plain-text table of a `compare_models` result."""
    lines = [f"{result['data']}, {result['split']} split, {result['size']:,} texts", "",
             f"{'':10}{'accuracy':>10} {'95% CI':>18}  {'macro-F1':>10} {'95% CI':>18}  {'log-loss':>9}  model"]
    for name in ("a", "b"):
        r = result[name]
        ci = r["intervals"]
        lines.append(f"{name.upper():10}{r['accuracy']:>10.4f} {_ci(ci['accuracy']):>18}  {r['macro_f1']:>10.4f} {_ci(ci['macro_f1']):>18}"
                     f"  {r['log_loss']:>9.4f}  {r['artifacts']}")
    d = result["difference"]
    lines.append(f"{'A - B':10}{d['accuracy']:>+10.4f} {_ci(d['intervals']['accuracy']):>18}  {d['macro_f1']:>+10.4f} "
                 f"{_ci(d['intervals']['macro_f1']):>18}  (paired bootstrap, {d['bootstrap_resamples']:,} resamples)")
    m = result["mcnemar"]
    lines += ["", f"McNemar (exact): A right and B wrong on {m['a_right_b_wrong']:,} texts, B right and A wrong on "
                  f"{m['b_right_a_wrong']:,}; p = {m['p_value']:.4g}"]
    return "\n".join(lines)


def _ci(pair: list[float]) -> str:
    return f"[{pair[0]:+.4f}, {pair[1]:+.4f}]" if min(pair) < 0 else f"[{pair[0]:.4f}, {pair[1]:.4f}]"
