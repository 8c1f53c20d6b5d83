"""The classifier: embedding -> bidirectional multi-layer GRU -> pooled text vector -> linear."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config import ModelConfig
from .encoder import BiGRUEncoder

# The dtype of the index tables stored with the weights (token -> row, token -> lexicon categories): half the bytes
# of int64, which a model with the lexicon's ~145,000 entries and word vectors' every-token rows feels in its size;
# folders written with int64 tables load into them unchanged (load_state_dict copies across dtypes).
INDEX_DTYPE = torch.int32


class TokenDropout(nn.Module):
    """Drops whole token vectors (all features of a token at once) during training."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: [batch, seq, dim]
        if not self.training or self.p == 0.0:
            return x
        keep = torch.empty(x.shape[:2] + (1,), device=x.device, dtype=x.dtype).bernoulli_(1 - self.p)
        return x * keep / (1 - self.p)


class GRUClassifier(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        if config.embedding_rows:
            # token id -> its learned row; tokens never seen in training share row 0, which stays zero
            self.embedding = nn.Embedding(config.embedding_rows, config.embedding_dim, padding_idx=0)
            self.register_buffer("token_rows", torch.zeros(config.vocab_size, dtype=INDEX_DTYPE))
        else:
            self.embedding = nn.Embedding(config.vocab_size, config.embedding_dim, padding_idx=config.pad_id)
        if config.lexicon_categories:
            # a token's vector gains the mean of its lexicon categories' vectors (sentiment_gru.text.lexicon);
            # token i's categories are lexicon_ids[lexicon_offsets[i]:lexicon_offsets[i + 1]]
            self.categories = nn.Embedding(config.lexicon_categories, config.embedding_dim)
            self.register_buffer("lexicon_ids", torch.zeros(config.lexicon_entries, dtype=INDEX_DTYPE))
            self.register_buffer("lexicon_offsets", torch.zeros(config.vocab_size + 1, dtype=INDEX_DTYPE))
        self.token_dropout = TokenDropout(config.embedding_dropout)
        self.encoder = BiGRUEncoder(
            config.embedding_dim, config.hidden_size, config.num_layers, dropout=config.dropout if config.num_layers > 1 else 0.0,
            impl=config.gru_impl,
        )
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(2 * config.hidden_size * len(config.pooling), config.num_classes)

    def encode(self, ids: torch.Tensor, lengths: torch.Tensor,
               perturbation: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """GRU outputs [batch, seq, 2*hidden] (zero past each length) and final states [layers*2, batch, hidden].

        `perturbation` [batch, seq, embedding_dim] is added to the token vectors (adversarial training).
        """
        x = self.token_dropout(self.embed(ids))  # [batch, seq, embedding_dim]
        return self.encoder(x if perturbation is None else x + perturbation, lengths)

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """Token vectors [*ids.shape, embedding_dim]: the learned row, plus the lexicon part when there is one."""
        x = self.embedding(self.token_rows[ids] if self.config.embedding_rows else ids)  # int32 rows index as well
        if not self.config.lexicon_categories:
            return x
        unique, inverse = torch.unique(ids, return_inverse=True)  # only the batch's tokens: [u], ids.shape
        starts = self.lexicon_offsets[unique].long()
        counts = self.lexicon_offsets[unique + 1].long() - starts  # categories per token, 0 for most
        bag_starts = torch.cumsum(counts, 0) - counts
        flat = self.lexicon_ids[torch.repeat_interleave(starts - bag_starts, counts) + torch.arange(int(counts.sum()), device=ids.device)].long()
        table = F.embedding_bag(flat, self.categories.weight, bag_starts, mode="mean")  # [u, embedding_dim]; empty bags are zero
        return x + F.embedding(inverse, table)  # table[inverse], but its CPU backward sums in a fixed order

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor, perturbation: torch.Tensor | None = None) -> torch.Tensor:
        """ids: [batch, seq] token ids, lengths: [batch] int64 on the CPU -> logits: [batch, num_classes]."""
        outputs, h_n = self.encode(ids, lengths, perturbation)
        pooled = []
        for kind in self.config.pooling:
            if kind == "last":
                # final states of the top layer: forward after the last token, backward after the first
                pooled.append(torch.cat([h_n[-2], h_n[-1]], dim=-1))
            else:
                mask = (torch.arange(ids.size(1)) < lengths[:, None]).to(outputs.device)[..., None]  # [batch, seq, 1]
                if kind == "max":
                    pooled.append(outputs.masked_fill(~mask, float("-inf")).amax(dim=1))
                else:
                    pooled.append(outputs.sum(dim=1) / lengths.to(outputs.device, outputs.dtype)[:, None])
        return self.classifier(self.dropout(torch.cat(pooled, dim=-1)))


class EnsembleClassifier(nn.Module):
    """Several GRUClassifiers of one configuration (trained from different seeds), probabilities averaged."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.members = nn.ModuleList(GRUClassifier(config) for _ in range(config.ensemble_size))

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Log of the members' mean probabilities: [batch, num_classes]; softmax of it is that mean."""
        log_probs = torch.stack([member(ids, lengths).log_softmax(-1) for member in self.members])  # [members, batch, classes]
        return torch.logsumexp(log_probs, dim=0) - math.log(len(self.members))


def build_model(config: ModelConfig, lexicon: tuple[torch.Tensor, torch.Tensor] | None = None,
                token_rows: torch.Tensor | None = None) -> nn.Module:
    """A single classifier, or an ensemble when `config.ensemble_size` > 1.

    With the lexicon, `lexicon` is its (category ids, offsets) table (token i has ids[offsets[i]:offsets[i+1]]) and
    `token_rows` maps each token id to its learned embedding row (when `config.embedding_rows` > 0); both are
    stored in every member's buffers, so they travel with the weights.
    """
    model = GRUClassifier(config) if config.ensemble_size == 1 else EnsembleClassifier(config)
    for member in members(model):
        if lexicon is not None:
            member.lexicon_ids.copy_(lexicon[0])
            member.lexicon_offsets.copy_(lexicon[1])
        if token_rows is not None:
            member.token_rows.copy_(token_rows)
    return model


def start_from_vectors(model: nn.Module, vectors: np.ndarray) -> None:
    """Set every member's token vectors to `vectors` [vocab_size, embedding_dim] (row i for token id i). With learned
    rows for seen tokens only (`embedding_rows`), each row takes its token's vector and row 0 stays zero."""
    table = torch.as_tensor(vectors, dtype=torch.float32)
    with torch.no_grad():
        for member in members(model):
            weight = member.embedding.weight
            if member.config.embedding_rows:
                rows = member.token_rows
                seen = rows > 0
                weight[rows[seen]] = table[seen].to(weight.device)
            else:
                weight.copy_(table.to(weight.device))
                weight[member.config.pad_id].zero_()


def members(model: nn.Module) -> list[GRUClassifier]:
    """The classifiers of a model: an ensemble's members, or the model itself."""
    return list(model.members) if isinstance(model, EnsembleClassifier) else [model]
