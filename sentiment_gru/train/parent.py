"""Starting from a trained model (--init-from): the parent's tokenizer, lexicon tables, embedding and GRU, and its
classifier head with its rows matched to the data's labels by name.

The parent comes in as plain objects (`Parent`); reading a model folder or a hub repository is `runs.py`'s job.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch

from ..config import ModelConfig, TokenizerConfig
from ..model.classifier import GRUClassifier

HEAD = "classifier."  # the head's parameters in a GRUClassifier's state dict


@dataclass
class Parent:
    """A trained model to start from."""

    name: str  # what the model card's `base_model` says: a hub id, or the folder's name
    model: GRUClassifier  # one network
    tokenizer: Any  # tokenizers.Tokenizer
    label_names: list[str]


def head_rows(parent_labels: list[str], labels: list[str]) -> list[int] | None:
    """The rows of the parent's head for `labels`, matched by name: all of them reordered, or those of a subset; None
    (a new head) when the data has a label the parent does not know."""
    if not set(labels) <= set(parent_labels):
        return None
    return [parent_labels.index(name) for name in labels]


def describe_head(parent_labels: list[str], labels: list[str]) -> str:
    """Which head a model started from a parent with `parent_labels` has, for the model card and the report."""
    rows = head_rows(parent_labels, labels)
    if rows is None:
        return f"new: the data's labels ({', '.join(labels)}) are not among the parent's ({', '.join(parent_labels)})"
    if len(rows) < len(parent_labels):
        return f"the parent's rows for {', '.join(labels)} (of {', '.join(parent_labels)})"
    return "the parent's" + ("" if rows == sorted(rows) else f", its rows reordered from {', '.join(parent_labels)}")


def child_config(parent: Parent, options: ModelConfig, num_classes: int) -> ModelConfig:
    """The parent's model configuration with what the run chooses: the labels, the ensemble, the dropout, the GRU path."""
    return dataclasses.replace(parent.model.config, num_classes=num_classes, ensemble_size=options.ensemble_size,
                               dropout=options.dropout, embedding_dropout=options.embedding_dropout, gru_impl=options.gru_impl)


def child_tokenizer(parent: Parent, options: TokenizerConfig):
    """A copy of the parent's tokenizer that cuts texts where this run evaluates and predicts (`options.read_length`)."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_str(parent.tokenizer.to_str())
    tokenizer.enable_truncation(max_length=options.read_length)
    return tokenizer


def start_from(member: GRUClassifier, parent: Parent, labels: list[str]) -> None:
    """Give `member` (of the parent's architecture) the parent's weights; its head the parent's rows for `labels`, or,
    when there are none, the new head it was built with."""
    state = parent.model.state_dict()
    missing, unexpected = member.load_state_dict({k: v for k, v in state.items() if not k.startswith(HEAD)}, strict=False)
    assert not unexpected and all(k.startswith(HEAD) for k in missing), (missing, unexpected)
    rows = head_rows(parent.label_names, labels)
    if rows is not None:
        with torch.no_grad():
            member.classifier.weight.copy_(state[HEAD + "weight"][rows])
            member.classifier.bias.copy_(state[HEAD + "bias"][rows])
