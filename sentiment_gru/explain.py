"""Occlusion explanations: how much each token moves the predicted probability when it is taken out.

Imports only torch and the predict module, so `predict --explain` starts as fast as predict.
"""

from __future__ import annotations

from typing import Any

import torch

from .batching import batched_logits
from .predict import EMPTY_TEXT_ERROR, Predictor
from .tokenization import CHARS_PER_TOKEN_BOUND, UNK_ID

OCCLUSION_MODES = ("drop", "unk")
ANSI = {"+": "\033[1;32m", "-": "\033[1;31m", "end": "\033[0m"}


def occlusion(predictor: Predictor, ids: list[int], mode: str = "drop") -> tuple[torch.Tensor, torch.Tensor]:
    """Class probabilities of `ids` [classes] and, per token, their drop when it is occluded [len(ids), classes].

    mode "drop" removes the token; "unk" replaces it with [UNK].
    """
    if mode not in OCCLUSION_MODES:
        raise ValueError(f"mode must be one of {OCCLUSION_MODES}. Got {mode!r}.")
    variants = [ids]
    for i in range(len(ids)):
        variant = ids[:i] + ids[i + 1:] if mode == "drop" else ids[:i] + [UNK_ID] + ids[i + 1:]
        variants.append(variant or [UNK_ID])
    logits = batched_logits(predictor.model, variants, batch_size=256, device=predictor.device)
    probabilities = torch.softmax(logits / predictor.temperature, dim=-1)  # [1 + len(ids), classes]
    return probabilities[0], probabilities[0] - probabilities[1:]


def explain(predictor: Predictor, text: str, mode: str = "drop") -> dict[str, Any]:
    """The prediction for `text` and, per token, the change in the predicted class's probability when it is occluded.

    Returns {"label", "probability", "probabilities", "explanation": [{"token", "score", "start", "end"}]}; a positive score
    means the token pushes towards the predicted label. Only the tokens the model reads (after truncation) appear.
    """
    tokenizer = predictor.tokenizer
    truncation = tokenizer.truncation
    encoding = tokenizer.encode(text[: truncation["max_length"] * CHARS_PER_TOKEN_BOUND] if truncation else text)
    if not text.strip() or not encoding.ids:
        return {"label": None, "error": EMPTY_TEXT_ERROR, "explanation": []}
    probabilities, drops = occlusion(predictor, encoding.ids, mode)
    best = int(probabilities.argmax())
    return {
        "label": predictor.label_names[best],
        "probability": float(probabilities[best]),
        "probabilities": dict(zip(predictor.label_names, probabilities.tolist())),
        "explanation": [
            {"token": text[start:end], "score": float(drop[best]), "start": start, "end": end}
            for (start, end), drop in zip(encoding.offsets, drops)
        ],
    }


def words(text: str, explanation: list[dict[str, Any]]) -> list[tuple[int, int, float]]:
    """Merge touching word pieces (letters or digits on both sides) into (start, end, summed score) spans."""
    spans: list[list] = []
    for item in explanation:
        joined = spans and item["start"] == spans[-1][1] and item["start"] > 0
        if joined and text[item["start"] - 1].isalnum() and text[item["start"]:item["start"] + 1].isalnum():
            spans[-1][1] = item["end"]
            spans[-1][2] += item["score"]
        else:
            spans.append([item["start"], item["end"], item["score"]])
    return [(s, e, score) for s, e, score in spans]


def mark(text: str, explanation: list[dict[str, Any]], colour: bool = False, share: float = 0.25, floor: float = 1e-6) -> str:
    """The text with influential words marked [+word] (supports the prediction) or [-word] (against it).

    A word is marked when |score| is at least `share` of the largest |score| (and above `floor`), so a
    near-certain prediction, whose probability barely moves, still shows its strongest words;
    with `colour`, ANSI green/red replaces the brackets.
    """
    spans = words(text, explanation)
    largest = max((abs(s) for _, _, s in spans), default=0.0)
    out, cursor = [], 0
    for start, end, score in spans:
        out.append(text[cursor:start])
        word = text[start:end]
        if abs(score) >= max(share * largest, floor):
            sign = "+" if score > 0 else "-"
            word = f"{ANSI[sign]}{word}{ANSI['end']}" if colour else f"[{sign}{word}]"
        out.append(word)
        cursor = end
    out.append(text[cursor:])
    return " ".join("".join(out).split())
