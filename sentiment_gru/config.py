"""Configuration dataclasses: the defaults, their meaning and their bounds.

The exact configuration is written to the artifacts' `config.json`, and a
trained model is rebuilt from it alone.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError

CONFIG_FORMAT_VERSION = 1
POOLING_CHOICES = ("last", "max", "mean")
GRU_IMPLS = ("auto", "packed", "fast")
TOKENIZER_KINDS = ("bpe", "wordpiece")

# Upper bounds that keep a run within memory on a laptop; raise them knowingly.
MAX_VOCAB_SIZE = 1_000_000
MAX_SEQUENCE_LENGTH = 10_000
MAX_BATCH_SIZE = 65_536


def _check_int(owner: str, name: str, value: Any, low: int, high: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        bound = f"an int in [{low}, {high}]" if high is not None else f"an int >= {low}"
        raise ConfigError(f"The '{name}' parameter of {owner} must be {bound}. Got {value!r} instead.")


def _check_float(owner: str, name: str, value: Any, low: float, high: float, high_open: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and low <= value and (
        value < high if high_open else value <= high
    )
    if not ok:
        bracket = ")" if high_open else "]"
        raise ConfigError(f"The '{name}' parameter of {owner} must be a number in [{low}, {high}{bracket}. Got {value!r} instead.")


def _check_choice(owner: str, name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"The '{name}' parameter of {owner} must be one of {', '.join(choices)}. Got {value!r} instead.")


@dataclass
class TokenizerConfig:
    kind: str = "bpe"  # subword model trained on the training split: bpe (deterministic) or wordpiece
    vocab_size: int = 4000  # largest vocabulary, special tokens included
    lowercase: bool = True  # fold case before splitting
    min_frequency: int = 2  # a merge or word piece must be seen this often to enter the vocabulary
    max_length: int = 256  # texts are cut to this many tokens
    lexicon: bool = False  # add common English lexicon words as tokens, each with category vectors (sentiment_gru.lexicon)

    def __post_init__(self) -> None:
        _check_choice("TokenizerConfig", "kind", self.kind, TOKENIZER_KINDS)
        _check_int("TokenizerConfig", "vocab_size", self.vocab_size, 100, MAX_VOCAB_SIZE)
        _check_int("TokenizerConfig", "min_frequency", self.min_frequency, 1)
        _check_int("TokenizerConfig", "max_length", self.max_length, 1, MAX_SEQUENCE_LENGTH)


@dataclass
class ModelConfig:
    vocab_size: int = 4000  # rows of the embedding table (the tokenizer's vocabulary)
    num_classes: int = 2  # outputs of the linear classifier
    embedding_dim: int = 128  # width of each token vector
    hidden_size: int = 128  # GRU state width per direction
    num_layers: int = 2  # stacked bidirectional GRU layers
    dropout: float = 0.5  # between GRU layers and before the classifier
    embedding_dropout: float = 0.3  # drops whole token vectors during training
    pooling: tuple[str, ...] = ("last", "max", "mean")  # how GRU outputs become one text vector
    pad_id: int = 0  # token id of [PAD]; its embedding stays zero
    gru_impl: str = "auto"  # auto, packed (nn.GRU on a PackedSequence) or fast (same result, faster CPU training)
    ensemble_size: int = 1  # classifiers trained from consecutive seeds whose probabilities are averaged
    lexicon_categories: int = 0  # lexicon categories with a learned vector each (0: no lexicon); set by training
    lexicon_entries: int = 0  # (token, category) pairs stored with the weights; set by training
    embedding_rows: int = 0  # with the lexicon: learned rows, one per token seen in training, row 0 for the rest; 0: one per token

    def __post_init__(self) -> None:
        self.pooling = tuple(self.pooling)
        _check_int("ModelConfig", "vocab_size", self.vocab_size, 2, MAX_VOCAB_SIZE)
        _check_int("ModelConfig", "num_classes", self.num_classes, 2)
        _check_int("ModelConfig", "embedding_dim", self.embedding_dim, 1, 4096)
        _check_int("ModelConfig", "hidden_size", self.hidden_size, 1, 4096)
        _check_int("ModelConfig", "num_layers", self.num_layers, 1, 16)
        _check_float("ModelConfig", "dropout", self.dropout, 0.0, 1.0, high_open=True)
        _check_float("ModelConfig", "embedding_dropout", self.embedding_dropout, 0.0, 1.0, high_open=True)
        if not self.pooling or any(p not in POOLING_CHOICES for p in self.pooling) or len(set(self.pooling)) != len(self.pooling):
            raise ConfigError(
                f"The 'pooling' parameter of ModelConfig must be distinct names from {', '.join(POOLING_CHOICES)}. "
                f"Got {self.pooling!r} instead."
            )
        _check_int("ModelConfig", "pad_id", self.pad_id, 0, self.vocab_size - 1)
        _check_choice("ModelConfig", "gru_impl", self.gru_impl, GRU_IMPLS)
        _check_int("ModelConfig", "ensemble_size", self.ensemble_size, 1, 32)
        _check_int("ModelConfig", "lexicon_categories", self.lexicon_categories, 0)
        _check_int("ModelConfig", "lexicon_entries", self.lexicon_entries, 0)
        _check_int("ModelConfig", "embedding_rows", self.embedding_rows, 0, self.vocab_size)


@dataclass
class TrainConfig:
    epochs: int = 8  # most passes over the training split
    batch_size: int = 64  # texts per optimisation step
    learning_rate: float = 3e-3  # peak AdamW learning rate
    weight_decay: float = 0.01  # AdamW decoupled weight decay
    warmup_fraction: float = 0.06  # share of steps spent warming the learning rate up, then linear decay
    clip_norm: float = 1.0  # largest gradient norm
    label_smoothing: float = 0.0  # CrossEntropyLoss label smoothing
    patience: int = 3  # epochs without validation gain before stopping
    bucket_size: int = 50  # batches whose texts are sorted by length together
    seed: int = 13  # seeds Python, NumPy and torch
    device: str = "auto"  # auto (CUDA when present), cpu or cuda
    num_proc: int = 1  # worker processes that tokenize the splits (datasets.map)
    precision: str = "auto"  # fp32, bf16 (autocast mixed precision) or auto: bf16 on GPUs that support it, else fp32

    def __post_init__(self) -> None:
        _check_int("TrainConfig", "epochs", self.epochs, 1, 10_000)
        _check_int("TrainConfig", "batch_size", self.batch_size, 1, MAX_BATCH_SIZE)
        _check_float("TrainConfig", "learning_rate", self.learning_rate, 1e-8, 10.0)
        _check_float("TrainConfig", "weight_decay", self.weight_decay, 0.0, 10.0)
        _check_float("TrainConfig", "warmup_fraction", self.warmup_fraction, 0.0, 1.0, high_open=True)
        _check_float("TrainConfig", "clip_norm", self.clip_norm, 0.0, 1e6)
        _check_float("TrainConfig", "label_smoothing", self.label_smoothing, 0.0, 1.0, high_open=True)
        _check_int("TrainConfig", "patience", self.patience, 1)
        _check_int("TrainConfig", "bucket_size", self.bucket_size, 1)
        _check_int("TrainConfig", "seed", self.seed, 0, 2**32 - 1)
        _check_choice("TrainConfig", "device", self.device, ("auto", "cpu", "cuda"))
        _check_int("TrainConfig", "num_proc", self.num_proc, 1, 256)
        _check_choice("TrainConfig", "precision", self.precision, ("auto", "fp32", "bf16"))


@dataclass
class DataConfig:
    dataset: str | None = None  # hub name or local dataset folder; None with no files means the default corpus
    dataset_config: str | None = None  # hub configuration name
    train_file: str | None = None  # CSV, TSV, JSON, JSON Lines or Parquet
    validation_file: str | None = None
    test_file: str | None = None
    text_column: str | None = None  # detected when None
    label_column: str | None = None  # detected when None
    label_names: tuple[str, ...] | None = None  # names for integer labels 0..n-1, in order
    validation_fraction: float = 0.1  # carved from train when there is no validation split
    seed: int = 13  # seeds the carved validation split
    streaming: bool = False  # read the train split as a stream, never whole; the other splits are held in memory
    stream_sample_size: int = 100_000  # with streaming: texts from the start of the stream the tokenizer is trained on
    stream_shuffle_buffer: int = 10_000  # with streaming: rows shuffled together each epoch (1: stream order)

    def __post_init__(self) -> None:
        if self.label_names is not None:
            self.label_names = tuple(self.label_names)
        _check_float("DataConfig", "validation_fraction", self.validation_fraction, 0.01, 0.5)
        _check_int("DataConfig", "stream_sample_size", self.stream_sample_size, 1)
        _check_int("DataConfig", "stream_shuffle_buffer", self.stream_shuffle_buffer, 1)
        if self.dataset is not None and any(f is not None for f in (self.train_file, self.validation_file, self.test_file)):
            raise ConfigError("Give either --dataset or --train-file/--validation-file/--test-file, not both.")
        if self.streaming and self.dataset is None and self.train_file is None:
            raise ConfigError("--streaming reads a large --train-file or --dataset; the default corpus fits in memory. "
                              "Drop --streaming, or pass --train-file F or --dataset NAME.")

    @property
    def uses_default_corpus(self) -> bool:
        return self.dataset is None and not any((self.train_file, self.validation_file, self.test_file))


@dataclass
class RunConfig:
    """Everything one training run needs."""

    data: DataConfig = field(default_factory=DataConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    preset: str | None = None  # name of the preset the values started from

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def from_dict(cls: type, values: dict[str, Any]):
    """Build a config dataclass from a dict, naming any unknown key."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(f"Unknown {cls.__name__} option(s): {', '.join(unknown)}. Known: {', '.join(sorted(names))}.")
    return cls(**values)


# Named starting points, one per dataset family; explicit options override them. Each is recorded in
# config.json. "snippets" and "treebank" were measured (README, Results); "reviews" is a starting
# point for long texts such as IMDB that has not been tuned.
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    # short review snippets (the default corpus, Rotten Tomatoes, MR): the lexicon and a 7-member ensemble
    "snippets": {"tokenizer": {"lexicon": True}, "model": {"ensemble_size": 7}, "train": {"epochs": 8}},
    # sentence/phrase treebanks (SST-2): many short phrases, so fewer epochs; the lexicon and a 7-member ensemble
    "treebank": {"tokenizer": {"lexicon": True}, "model": {"ensemble_size": 7}, "train": {"epochs": 4}},
    # long reviews (IMDB): longer texts kept, smaller batches, one model
    "reviews": {"tokenizer": {"vocab_size": 16000, "max_length": 400}, "train": {"epochs": 4, "batch_size": 32}},
}


def build_run_config(data: DataConfig, preset: str | None = None, **sections: dict[str, Any]) -> RunConfig:
    """The dataclass defaults, then the preset's values, then `sections` (e.g. model={"hidden_size": 64})."""
    if preset is not None and preset not in PRESETS:
        raise ConfigError(f"Unknown preset {preset!r}; choose one of {', '.join(PRESETS)}.")
    chosen = PRESETS.get(preset, {}) if preset else {}
    unknown = set(sections) - {"tokenizer", "model", "train"}
    if unknown:
        raise ConfigError(f"Unknown configuration section(s): {', '.join(sorted(unknown))}.")
    built = {
        name: from_dict(cls, {**chosen.get(name, {}), **sections.get(name, {})})
        for name, cls in (("tokenizer", TokenizerConfig), ("model", ModelConfig), ("train", TrainConfig))
    }
    return RunConfig(data=data, preset=preset, **built)
