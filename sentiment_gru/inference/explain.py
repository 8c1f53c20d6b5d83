"""Occlusion explanations: how much each token moves the predicted probability when it is taken out.

Works on any backend: it needs only a function from token id sequences to probabilities
(`SentimentClassifier.probabilities_of_ids`), so it imports neither torch nor onnxruntime.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..text.tokenizer import UNK_ID

OCCLUSION_MODES = ("drop", "unk")
ANSI = {"+": "\033[1;32m", "-": "\033[1;31m", "end": "\033[0m"}


def occlusion(probabilities: Callable[[list[list[int]]], np.ndarray], ids: list[int],
              mode: str = "drop") -> tuple[np.ndarray, np.ndarray]:
    """Class probabilities of `ids` [classes] and, per token, their drop when it is occluded [len(ids), classes].

    `probabilities` maps token id sequences to class probabilities; mode "drop" removes the token, "unk"
    replaces it with [UNK].
    """
    if mode not in OCCLUSION_MODES:
        raise ValueError(f"mode must be one of {OCCLUSION_MODES}. Got {mode!r}.")
    variants = [ids]
    for i in range(len(ids)):
        variant = ids[:i] + ids[i + 1:] if mode == "drop" else ids[:i] + [UNK_ID] + ids[i + 1:]
        variants.append(variant or [UNK_ID])
    found = probabilities(variants)  # [1 + len(ids), classes]
    return found[0], found[0] - found[1:]


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
