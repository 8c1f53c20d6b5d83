"""Configuration dataclasses: the defaults, their meaning and their bounds; and the rules that join training options
(within one section in its `__post_init__`, between sections in `RunConfig.validate`, on data options given
together in `build_data_config`).

The exact configuration is written to the artifacts' `config.json`, and a
trained model is rebuilt from it alone.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError

CONFIG_FORMAT_VERSION = 1
POOLING_CHOICES = ("last", "max", "mean")
GRU_IMPLS = ("auto", "packed", "fast")
TOKENIZER_KINDS = ("bpe", "wordpiece")
PRECISIONS = ("auto", "fp32", "bf16")
DEVICES = ("auto", "cpu", "cuda")
# The built-in corpora, read when no --dataset or files are given; the first is the default (data/corpus.py, data/domains.py).
CORPORA = ("rotten-tomatoes-snippets", "english-6-domains")
# The domains of english-6-domains, in the order its records list them.
DOMAINS = ("snippets", "plots", "movies", "tweets", "editorials", "products")
CORPUS_WITH_DATA = "--corpus names a built-in corpus, read when no --dataset or files are given: drop --corpus, or the data flags."

# Upper bounds that keep a run within memory on a laptop; raise them knowingly.
MAX_VOCAB_SIZE = 1_000_000
MAX_SEQUENCE_LENGTH = 10_000
MAX_BATCH_SIZE = 65_536
VECTOR_DIM = 256  # width of the word vectors --word-vectors starts from (sentiment_gru.text.vectors)
# Numbers in a model's weights and buffers, all ensemble members together: 1 GiB in float32. Within each option's own
# bounds, sizes multiply (hidden 4,096 x 16 layers x 32 members is hundreds of GB); this caps the product, for a run
# and for a model folder read from elsewhere alike.
MAX_MODEL_VALUES = 1 << 28
# A saved temperature outside this range is not a calibration (fitting searches [0.05, 20]: evaluate.calibration).
TEMPERATURE_RANGE = (0.01, 100.0)


def option(default: Any, help: str, *, low: float | None = None, high: float | None = None, high_open: bool = False,
           choices: tuple[str, ...] | None = None, flag: str | None = None, cli: bool = True) -> Any:
    """A configuration field: its default, bounds or choices, and the help text its command-line option shows.

    `flag` names the option when it is not the field's name (`--ensemble` for `ensemble_size`); `cli=False`
    keeps a field off the command line (values that training derives, or settings no one has needed yet).
    """
    metadata = {"help": help, "low": low, "high": high, "high_open": high_open, "choices": choices, "flag": flag, "cli": cli}
    return field(default=default, metadata=metadata)


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
    if not isinstance(value, str) or value not in choices:
        raise ConfigError(f"The '{name}' parameter of {owner} must be one of {', '.join(choices)}. Got {value!r} instead.")


# What each name in a field's annotation requires of a value: (one, several, check), as the error message says it.
_KINDS: dict[str, tuple[str, str, Callable[[Any], bool]]] = {
    "bool": ("true or false", "true or false values", lambda v: isinstance(v, bool)),
    "int": ("an int", "ints", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    "float": ("a number", "numbers", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)),
    "str": ("a string", "strings", lambda v: isinstance(v, str)),
    "dict": ("a JSON object", "JSON objects", lambda v: isinstance(v, dict)),
    "None": ("null", "nulls", lambda v: v is None),
}


def _kind(annotation: str) -> tuple[str, str, Callable[[Any], bool]]:
    """What one alternative of an annotation (`int`, `list[int]`, `tuple[str, ...]`) requires; anything else passes."""
    name, _, inner = annotation.strip().partition("[")
    if name in ("list", "tuple"):
        _, items, ok = _kind(inner.split(",")[0].rstrip("]"))
        container = list if name == "list" else tuple
        return f"a list of {items}", f"lists of {items}", lambda v: isinstance(v, container) and all(ok(item) for item in v)
    return _KINDS.get(name, ("", "", lambda v: True))


def _check_type(owner: str, f: dataclasses.Field, value: Any) -> None:
    """A field without bounds or choices holds what its annotation names, one of its alternatives (`int | list[int] |
    None`)."""
    declared = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    alternatives, depth, start = [], 0, 0
    for i, char in enumerate(declared + "|"):
        depth += {"[": 1, "]": -1}.get(char, 0)
        if char == "|" and depth == 0:
            alternatives.append(_kind(declared[start:i]))
            start = i + 1
    if not any(ok(value) for _, _, ok in alternatives):
        names = [one for one, _, _ in alternatives]
        raise ConfigError(f"The '{f.name}' parameter of {owner} must be "
                          f"{' or '.join([', '.join(names[:-1]), names[-1]] if len(names) > 1 else names)}. Got {value!r} instead.")


def validate_options(config: Any) -> None:
    """Check every field against the bounds or choices its `option()` declares, or else against its type."""
    owner = type(config).__name__
    for f in dataclasses.fields(config):
        meta, value = f.metadata, getattr(config, f.name)
        if "help" not in meta:  # a plain field, not an option
            continue
        if meta.get("choices") is not None and not isinstance(f.default, tuple):
            _check_choice(owner, f.name, value, meta["choices"])
        elif meta.get("low") is None or isinstance(f.default, bool):
            _check_type(owner, f, value)
        elif isinstance(f.default, int):
            _check_int(owner, f.name, value, int(meta["low"]), None if meta["high"] is None else int(meta["high"]))
        else:
            _check_float(owner, f.name, value, meta["low"], meta["high"], meta["high_open"])


def class_weight_spec(value: str | None) -> str | dict[str, float] | None:
    """--class-weight read: None, "balanced", or label name -> weight; a malformed value is a ConfigError."""
    if value is None or value == "balanced":
        return value
    weights: dict[str, float] = {}
    for part in value.split(","):
        name, _, number = part.partition("=")
        try:
            weight = float(number)
        except ValueError:
            weight = -1.0
        if not name.strip() or not weight > 0 or weight == float("inf") or name.strip() in weights:
            raise ConfigError(f"--class-weight must be balanced or label=weight,... with each label once and each weight a positive "
                              f"number, e.g. negative=1,positive=2.5. Got {value!r} instead.")
        weights[name.strip()] = weight
    return weights


@dataclass
class TokenizerConfig:
    kind: str = option("bpe", "subword model trained on the training split: bpe (deterministic) or wordpiece",
                       choices=TOKENIZER_KINDS, flag="tokenizer")
    vocab_size: int = option(4000, "largest vocabulary, special tokens included", low=100, high=MAX_VOCAB_SIZE)
    lowercase: bool = option(True, "fold case before splitting", cli=False)
    min_frequency: int = option(2, "a merge or word piece must be seen this often to enter the vocabulary", low=1, cli=False)
    max_length: int = option(256, "tokens kept per text", low=1, high=MAX_SEQUENCE_LENGTH)
    tail_tokens: int = option(0, "of a text longer than --max-length, tokens kept from its end (the rest from its start; "
                                 "0: its start only)", low=0, high=MAX_SEQUENCE_LENGTH)
    predict_length: int = option(0, "tokens read per text when evaluating and predicting, the last --tail-tokens of them "
                                    "from its end (0: --max-length); more than --max-length lets a model trained on cut "
                                    "texts read whole ones", low=0, high=MAX_SEQUENCE_LENGTH)
    strip_html: bool = option(False, "replace HTML tags such as <br /> with a space (done by the tokenizer, so prediction does it too)")
    web_text: bool = option(False, "normalise web text in the tokenizer, so prediction does it too: URLs, @mentions, emoticons "
                                   "and common emoji become placeholder words, #hashtags their word, elongations (soooo) and "
                                   "!!!/??? runs are shortened, ALL CAPS words are marked (docs/training.md)")
    lexicon: bool = option(False, "English lexicon words as tokens, with Roget/General Inquirer/Whissell category vectors "
                                  "(sentiment_gru.text.lexicon; on in the snippets and treebank presets)")
    vader_lexicon: bool = option(False, "with --lexicon: VADER's valence lexicon too (7,217 words in eight categories by "
                                        "valence, from the vaderSentiment source archive), and the --web-text emoticon "
                                        "words with their text face's valence")

    def __post_init__(self) -> None:
        validate_options(self)
        if self.tail_tokens > self.max_length:
            raise ConfigError(f"The 'tail_tokens' parameter of TokenizerConfig must be at most max_length ({self.max_length}). "
                              f"Got {self.tail_tokens} instead.")
        if self.predict_length and self.predict_length < self.max_length:
            raise ConfigError(f"The 'predict_length' parameter of TokenizerConfig must be 0 or at least max_length "
                              f"({self.max_length}). Got {self.predict_length} instead.")
        if self.vader_lexicon and not self.lexicon:
            raise ConfigError("--vader-lexicon adds VADER's words to the lexicon's categories: give --lexicon as well.")

    @property
    def read_length(self) -> int:
        """Tokens read per text when evaluating and predicting: what the saved tokenizer keeps."""
        return self.predict_length or self.max_length


@dataclass
class ModelConfig:
    vocab_size: int = option(4000, "rows of the embedding table (the tokenizer's vocabulary)", low=2, high=MAX_VOCAB_SIZE, cli=False)
    num_classes: int = option(2, "outputs of the linear classifier", low=2, cli=False)
    embedding_dim: int = option(128, "width of each token vector", low=1, high=4096)
    hidden_size: int = option(128, "GRU state width per direction", low=1, high=4096)
    num_layers: int = option(2, "stacked bidirectional GRU layers", low=1, high=16)
    dropout: float = option(0.5, "dropout between GRU layers and before the classifier", low=0.0, high=1.0, high_open=True)
    embedding_dropout: float = option(0.3, "drops whole token vectors during training", low=0.0, high=1.0, high_open=True)
    pooling: tuple[str, ...] = option(("last", "max", "mean"), "how GRU outputs become one text vector, comma-separated",
                                      choices=POOLING_CHOICES)
    pad_id: int = option(0, "token id of [PAD]; its embedding stays zero", low=0, cli=False)
    gru_impl: str = option("auto", "packed: nn.GRU on a PackedSequence; fast: same result, faster CPU training; "
                                   "auto: fast on the CPU, packed (cuDNN) on CUDA", choices=GRU_IMPLS)
    ensemble_size: int = option(1, "train this many classifiers from consecutive seeds and average their probabilities",
                                low=1, high=32, flag="ensemble")
    lexicon_categories: int = option(0, "lexicon categories with a learned vector each (0: no lexicon); set by training", low=0, cli=False)
    lexicon_entries: int = option(0, "(token, category) pairs stored with the weights; set by training", low=0, cli=False)
    embedding_rows: int = option(0, "with the lexicon: learned rows, one per token seen in training, row 0 for the rest; "
                                    "0: one per token", low=0, cli=False)

    def __post_init__(self) -> None:
        if isinstance(self.pooling, (list, tuple)):
            self.pooling = tuple(self.pooling)
        validate_options(self)
        if (not isinstance(self.pooling, tuple) or not self.pooling or any(p not in POOLING_CHOICES for p in self.pooling)
                or len(set(self.pooling)) != len(self.pooling)):
            raise ConfigError(
                f"The 'pooling' parameter of ModelConfig must be distinct names from {', '.join(POOLING_CHOICES)}. "
                f"Got {self.pooling!r} instead."
            )
        _check_int("ModelConfig", "pad_id", self.pad_id, 0, self.vocab_size - 1)
        _check_int("ModelConfig", "embedding_rows", self.embedding_rows, 0, self.vocab_size)
        values = self.state_values()
        if values > MAX_MODEL_VALUES:
            raise ConfigError(
                f"This ModelConfig makes a model of {values:,} numbers ({values * 4 / 2**30:,.1f} GiB in float32); the limit "
                f"is {MAX_MODEL_VALUES:,} (MAX_MODEL_VALUES). Lower hidden_size, num_layers, embedding_dim, vocab_size or "
                "ensemble_size."
            )

    def state_values(self) -> int:
        """Numbers in the model's weights and buffers, every member's (what `model.classifier.build_model` allocates)."""
        e, h = self.embedding_dim, self.hidden_size
        member = (self.embedding_rows or self.vocab_size) * e + (self.vocab_size if self.embedding_rows else 0)
        if self.lexicon_categories:  # category vectors, each token's category ids and their offsets
            member += self.lexicon_categories * e + self.lexicon_entries + self.vocab_size + 1
        for layer in range(self.num_layers):  # both directions: weight_ih, weight_hh, bias_ih, bias_hh
            member += 2 * 3 * h * ((e if layer == 0 else 2 * h) + h + 2)
        member += (2 * h * len(self.pooling) + 1) * self.num_classes  # the linear classifier
        return member * self.ensemble_size


@dataclass
class TrainConfig:
    epochs: int = option(8, "most passes over the training split", low=1, high=10_000)
    batch_size: int = option(64, "texts per optimisation step (per process under torchrun)", low=1, high=MAX_BATCH_SIZE)
    learning_rate: float = option(3e-3, "peak AdamW learning rate", low=1e-8, high=10.0)
    weight_decay: float = option(0.01, "AdamW decoupled weight decay", low=0.0, high=10.0)
    warmup_fraction: float = option(0.06, "share of steps spent warming the learning rate up, then linear decay",
                                    low=0.0, high=1.0, high_open=True, cli=False)
    clip_norm: float = option(1.0, "largest gradient norm", low=0.0, high=1e6, cli=False)
    label_smoothing: float = option(0.0, "CrossEntropyLoss label smoothing", low=0.0, high=1.0, high_open=True)
    adversarial: float = option(0.0, "adversarial training (Miyato et al. 2017): each step also learns from the batch with every "
                                     "text's token vectors moved this far (L2 over the text) in the direction that raises its "
                                     "loss most; about doubles a step's time (0: off)", low=0.0, high=1e3)
    patience: int = option(3, "epochs without validation gain before stopping", low=1)
    bucket_size: int = option(50, "batches whose texts are sorted by length together", low=1, cli=False)
    seed: int = option(13, "seeds Python, NumPy and torch, and the carved validation split", low=0, high=2**32 - 1)
    device: str = option("auto", "auto (CUDA when present), cpu or cuda", choices=DEVICES)
    num_proc: int = option(1, "processes that tokenize the data (datasets.map)", low=1, high=256)
    precision: str = option("auto", "fp32, or bf16 mixed precision (autocast; the GRU recurrence stays fp32 on the CPU); "
                                    "auto: fp32, measured faster than bf16 for this model on GPUs and CPUs", choices=PRECISIONS)
    blend_nbsvm: bool = option(False, "also report a blend of the model with an NBSVM fitted on the same train split (its share "
                                      "fitted on validation), beside the model alone; the model folder holds the model alone")
    distill: bool = option(False, "after the ensemble, train one student network to match its outputs and ship the student "
                                  "instead (knowledge distillation; needs --ensemble 2 or more)")
    distill_weight: float = option(0.9, "with --distill: weight of matching the ensemble's logits in the student's loss; the rest "
                                        "is cross-entropy on the true labels", low=0.0, high=1.0)
    distill_copies: int = option(2, "with --distill: made-up variants of each training batch per epoch that the ensemble "
                                    "labels for the student (tokens masked or swapped for a lexicon near-synonym, or a short n-gram kept)", low=0, high=16)
    distill_epochs: int = option(0, "with --distill: most epochs of the student (0: as --epochs)", low=0, high=10_000)
    distill_learning_rate: float = option(0.0, "with --distill: the student's peak learning rate (0: as --learning-rate)",
                                          low=0.0, high=10.0)
    distill_from_member: bool = option(False, "with --distill: start the student from the ensemble member that scored best "
                                              "on validation (needs the members' sizes), not from scratch")
    student_hidden_size: int = option(0, "with --distill: the student's GRU state per direction (0: as the members')", low=0, high=4096)
    student_embedding_dim: int = option(0, "with --distill: the student's token vector width (0: as the members')", low=0, high=4096)
    student_num_layers: int = option(0, "with --distill: the student's GRU layers (0: as the members')", low=0, high=16)
    pretrain_epochs: int = option(0, "epochs of language-model pretraining before the classifier is trained: the embedding and GRU "
                                     "learn to predict each token from the tokens before and after it, on the training texts or "
                                     "--pretrain-file (0: none)", low=0, high=10_000)
    pretrain_learning_rate: float = option(0.0, "with --pretrain-epochs: the peak learning rate of pretraining (0: as --learning-rate)",
                                           low=0.0, high=10.0)
    discriminative_lr: float = option(1.0, "each layer group below the classifier (GRU layers top down, then the embedding) trains "
                                           "at the learning rate of the one above divided by this (ULMFiT: 2.6; 1: one rate)",
                                      low=1.0, high=100.0)
    gradual_unfreezing: bool = option(False, "train the classifier alone in the first epoch, then unfreeze one more layer group from "
                                             "the top each epoch (ULMFiT; for a pretrained network)")
    init_from: str | None = option(None, "start from a trained model (a model folder or a hub id owner/name): its tokenizer, "
                                         "embedding and GRU, and its classifier head when the labels match by name; the "
                                         "architecture options are the parent's")
    word_vectors: bool = option(False, "start the token vectors from word vectors learned on other text (WordLlama's 256-d "
                                       "token embeddings, from the wordllama wheel; sentiment_gru.text.vectors) instead of "
                                       "random ones: words a small training set seldom uses start near words of like meaning")
    class_weight: str | None = option(None, "weigh each label in the training loss: balanced (n_samples / (n_classes * count), "
                                            "as scikit-learn) or label=weight,... (labels as in the data; others weigh 1)")

    def __post_init__(self) -> None:
        validate_options(self)
        class_weight_spec(self.class_weight)


@dataclass
class DataConfig:
    dataset: str | None = option(None, "Hugging Face hub dataset name (imdb, stanfordnlp/sst2, ...) or a local dataset folder")
    dataset_config: str | None = option(None, "configuration name of a hub dataset")
    train_file: str | None = option(None, "training data: CSV, TSV, JSON, JSON Lines or Parquet")
    validation_file: str | None = option(None, "validation data (default: 10% of train, stratified)")
    test_file: str | None = option(None, "test data (default: none; reports use validation)")
    text_column: str | None = option(None, "text column (detected: text, sentence, review, content)")
    label_column: str | None = option(None, "label column (detected: label, labels, sentiment)")
    label_names: tuple[str, ...] | None = option(None, "comma-separated names for integer labels 0..n-1, e.g. negative,positive")
    corpus: str = option(CORPORA[0], "the built-in corpus read when no --dataset or files are given: rotten-tomatoes-snippets "
                                     "(negative, positive) or english-6-domains (negative, neutral, positive; docs/data.md)",
                         choices=CORPORA)
    domains: tuple[str, ...] | None = option(None, f"with --corpus {CORPORA[1]}: the domains to use, comma-separated (default: "
                                                   f"all): {', '.join(DOMAINS)}")
    max_train_rows: int = option(0, "train on about this many rows of the train split, a sample stratified by label (and by "
                                    "domain where the data has a domain column) and seeded by --seed (0: every row); for quick runs",
                                 low=0, cli="train")
    validation_fraction: float = option(0.1, "carved from train when there is no validation split", low=0.01, high=0.5, cli=False)
    seed: int = option(13, "seeds the carved validation split (training's --seed)", cli=False)
    streaming: bool = option(False, "read the train split as a stream, never whole: the tokenizer learns from a sample, "
                                    "validation is held in memory", cli="train")
    stream_sample_size: int = option(100_000, "with --streaming: texts from the start of the stream the tokenizer learns from",
                                     low=1, cli="train")
    pretrain_file: str | None = option(None, "unlabelled texts for --pretrain-epochs: a .txt file (one text per line) or a CSV, JSON, "
                                             "JSON Lines or Parquet file with a text column (default: the training split's texts)",
                                       cli="train")
    distill_file: str | None = option(None, "with --distill: unlabelled texts that the ensemble labels for the student, beside the "
                                            "training split (in-domain text the size of what it will judge): a .txt file (one "
                                            "text per line) or a CSV, JSON, JSON Lines or Parquet file with a text column",
                                      cli="train")
    stream_shuffle_buffer: int = option(10_000, "with streaming: rows shuffled together each epoch (1: stream order)", low=1, cli=False)

    def __post_init__(self) -> None:
        if self.label_names is not None:
            self.label_names = tuple(self.label_names)
        if self.domains is not None:
            self.domains = tuple(self.domains)
        validate_options(self)
        if self.dataset is not None and any(f is not None for f in (self.train_file, self.validation_file, self.test_file)):
            raise ConfigError("Give either --dataset or --train-file/--validation-file/--test-file, not both.")
        if self.streaming and self.dataset is None and self.train_file is None:
            raise ConfigError("--streaming reads a large --train-file or --dataset; the built-in corpora fit in memory. "
                              "Drop --streaming, or pass --train-file F or --dataset NAME.")
        if self.corpus != CORPORA[0] and not self.uses_builtin_corpus:
            raise ConfigError(CORPUS_WITH_DATA)
        if self.domains is not None:
            if self.corpus != CORPORA[1]:
                raise ConfigError(f"--domains chooses domains of the {CORPORA[1]} corpus: add --corpus {CORPORA[1]}, or drop --domains.")
            unknown = [d for d in self.domains if d not in DOMAINS]
            if not self.domains or unknown or len(set(self.domains)) != len(self.domains):
                raise ConfigError(f"The 'domains' parameter of DataConfig must be distinct names from {', '.join(DOMAINS)}. "
                                  f"Got {','.join(map(str, self.domains))!r} instead.")
        if self.max_train_rows and self.streaming:
            raise ConfigError("--max-train-rows samples a train split held in memory; --streaming reads it as a stream. Drop one.")

    @property
    def uses_builtin_corpus(self) -> bool:
        """Whether the data is the built-in corpus `corpus` names: no --dataset and no files are given."""
        return self.dataset is None and not any((self.train_file, self.validation_file, self.test_file))


def build_data_config(given: dict[str, Any], seed: int = 13) -> DataConfig:
    """A DataConfig from the data options given on the command line (field name -> value). The rule on which of them
    were given together is checked here, where that is still known; DataConfig checks their values."""
    if "stream_sample_size" in given and not given.get("streaming"):
        raise ConfigError("--stream-sample-size only applies with --streaming. Add --streaming or drop it.")
    if "corpus" in given and any(given.get(name) is not None for name in ("dataset", "train_file", "validation_file", "test_file")):
        raise ConfigError(CORPUS_WITH_DATA)
    return DataConfig(**given, seed=seed)


@dataclass
class RunConfig:
    """Everything one training run needs."""

    data: DataConfig = field(default_factory=DataConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    preset: str | None = None  # name of the preset the values started from

    def __post_init__(self) -> None:
        self.validate()

    def validate(self, resume: bool = False) -> None:
        """Check the rules that join options of different sections (each error names the options to change); with
        `resume`, also that the run can continue from a checkpoint."""
        data, train = self.data, self.train
        if train.distill and data.streaming:
            raise ConfigError("--distill needs the train split held in memory to label it with the ensemble: "
                              "drop --streaming or --distill.")
        if train.distill and self.model.ensemble_size < 2:
            raise ConfigError("--distill trains a student on an ensemble's probabilities: add --ensemble N (N >= 2), "
                              "or drop --distill.")
        sized = [name for name in ("student_hidden_size", "student_embedding_dim", "student_num_layers") if getattr(train, name)]
        if train.distill and train.distill_from_member and sized:
            raise ConfigError(f"--distill-from-member starts the student from a member, so it has the members' sizes: drop "
                              f"{', '.join('--' + n.replace('_', '-') for n in sized)} or --distill-from-member.")
        if data.distill_file is not None and not train.distill:
            raise ConfigError("--distill-file holds texts for the distilled student: add --distill (with --ensemble N, N >= 2), "
                              "or drop --distill-file.")
        if data.pretrain_file is not None and not train.pretrain_epochs:
            raise ConfigError("--pretrain-file holds texts for pretraining: add --pretrain-epochs N (N >= 1), or drop --pretrain-file.")
        if train.pretrain_epochs and data.streaming and data.pretrain_file is None:
            raise ConfigError("--pretrain-epochs pretrains on the train split held in memory: with --streaming, give the texts to "
                              "pretrain on with --pretrain-file F, or drop --pretrain-epochs.")
        if resume and data.streaming:
            raise ConfigError("--resume cannot continue a --streaming run: a stream has no saved position. Run it again without --resume.")
        if train.class_weight == "balanced" and data.streaming:
            raise ConfigError("--class-weight balanced counts the labels of the train split, which --streaming does not hold: give "
                              "the weights by name (e.g. --class-weight negative=1,positive=2) or drop --streaming.")
        if train.word_vectors and train.init_from is not None:
            raise ConfigError("--word-vectors starts the embedding from word vectors, --init-from from the parent's: drop one.")
        widths = {"--embedding-dim": self.model.embedding_dim, "--student-embedding-dim": train.student_embedding_dim}
        too_wide = [flag for flag, width in widths.items() if width > VECTOR_DIM]
        if train.word_vectors and too_wide:
            raise ConfigError(f"--word-vectors gives {VECTOR_DIM} dimensions: set {too_wide[0]} to {VECTOR_DIM} or less.")
        if train.init_from is not None and sized:
            raise ConfigError(f"With --init-from the student starts from the parent, so it has the parent's sizes: drop "
                              f"{', '.join('--' + n.replace('_', '-') for n in sized)}.")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def from_dict(cls: type, values: dict[str, Any]):
    """Build a config dataclass from a dict, naming any unknown key."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(f"Unknown {cls.__name__} option(s): {', '.join(unknown)}. Known: {', '.join(sorted(names))}.")
    return cls(**values)


# ---------------------------------------------------------------- config.json of a model folder


def _fact(help: str, default_factory: Callable[[], Any] | None = None) -> Any:
    """A field of SavedConfig that records a fact of the run: checked against its annotation's type only."""
    metadata = {"help": help}
    return field(default_factory=default_factory, metadata=metadata) if default_factory else field(default=None, metadata=metadata)


@dataclass
class Calibration:
    """How a saved model's probabilities are calibrated: softmax(logits / temperature)."""

    temperature: float = option(1.0, "divides the logits before the softmax; fitted on the validation split after training",
                                low=TEMPERATURE_RANGE[0], high=TEMPERATURE_RANGE[1])
    fitted_on: str | None = _fact("the split the temperature was fitted on")

    def __post_init__(self) -> None:
        validate_options(self)


@dataclass
class SavedConfig:
    """A model folder's config.json: the configuration the model is rebuilt from, its labels and calibration, and facts
    about the run. `runs.train_and_save` builds and writes it; `inference.folder.read_folder` reads it back through
    `from_dict`, which checks every field (types, the options' bounds, the model's size, meaning) and names the one
    that is wrong."""

    label_names: tuple[str, ...]  # one per class, in the order of the model's outputs
    model: ModelConfig
    data: DataConfig = field(default_factory=DataConfig)  # (a folder made by hand may leave out these three sections)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    calibration: Calibration = field(default_factory=Calibration)
    format_version: int = option(CONFIG_FORMAT_VERSION, "the layout of config.json", low=CONFIG_FORMAT_VERSION,
                                 high=CONFIG_FORMAT_VERSION)
    created: str | None = _fact("when the model was saved (UTC, ISO 8601)")
    preset: str | None = _fact("the preset the run started from")
    source: dict[str, Any] = _fact("where the data came from (data.load); written inside \"data\"", dict)
    notes: list[str] = _fact("skipped rows and other things to know about the data; written inside \"data\"", list)
    best_epoch: int | list[int] | None = _fact("the epoch whose weights were kept, one per ensemble member")
    train_seconds: float | None = _fact("seconds of training")
    device: str | None = _fact("what trained it")
    precision: str | None = _fact("fp32 or bf16")
    processes: int = option(1, "training processes; the global batch is processes x train.batch_size", low=1)
    versions: dict[str, str] = _fact("the library versions that trained it", dict)
    distillation: dict[str, Any] | None = _fact("how a distilled model learned from its ensemble")
    pretraining: dict[str, Any] | None = _fact("the language-model pretraining before training")
    class_weights: dict[str, float] | None = _fact("each label's weight in the training loss (--class-weight)")
    parent: dict[str, Any] | None = _fact("the model training started from (--init-from): where, its name and labels, and how "
                                          "the classifier head was made")

    SECTIONS = {"data": DataConfig, "tokenizer": TokenizerConfig, "model": ModelConfig, "train": TrainConfig, "calibration": Calibration}
    REQUIRED = ("label_names", "model")  # what prediction cannot do without

    def __post_init__(self) -> None:
        if isinstance(self.label_names, list):
            self.label_names = tuple(self.label_names)
        validate_options(self)
        names = self.label_names
        if not isinstance(names, tuple) or not all(isinstance(n, str) and n.strip() for n in names) or len(set(names)) != len(names):
            raise ConfigError(f"The 'label_names' field of SavedConfig must be distinct, non-empty strings, one per class. "
                              f"Got {list(names) if isinstance(names, tuple) else names!r} instead.")
        if len(names) != self.model.num_classes:
            raise ConfigError(f"{len(names)} label names for {self.model.num_classes} classes.")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> SavedConfig:
        """The record of config.json's object; a ConfigError names the field that is missing, unknown or wrong."""
        known = [f.name for f in dataclasses.fields(cls) if f.name not in ("source", "notes")]
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ConfigError(f"Unknown field(s) {', '.join(unknown)}. Known: {', '.join(known)}.")
        missing = [name for name in cls.REQUIRED if name not in values]
        if missing:
            raise ConfigError(f"No {', '.join(repr(name) for name in missing)} field: this is not a complete model configuration.")
        built = dict(values)
        for name, section in cls.SECTIONS.items():
            if name not in values:
                continue
            if not isinstance(values[name], dict):
                raise ConfigError(f"The '{name}' section of SavedConfig must be a JSON object. Got {values[name]!r} instead.")
            options = dict(values[name])
            if name == "data":  # the data section also holds where the data came from
                built["source"], built["notes"] = options.pop("source", {}), options.pop("notes", [])
            built[name] = from_dict(section, options)
        return cls(**built)

    def to_dict(self) -> dict[str, Any]:
        """config.json's object, in the order it is written; `from_dict` reads it back."""
        out = {
            "format_version": self.format_version, "created": self.created, "preset": self.preset, "label_names": list(self.label_names),
            "data": {**dataclasses.asdict(self.data), "source": self.source, "notes": self.notes},
            "tokenizer": dataclasses.asdict(self.tokenizer), "model": dataclasses.asdict(self.model),
            "train": dataclasses.asdict(self.train), "best_epoch": self.best_epoch, "train_seconds": self.train_seconds,
            "device": self.device, "precision": self.precision, "processes": self.processes,
            "calibration": dataclasses.asdict(self.calibration), "versions": self.versions,
        }
        out.update({name: getattr(self, name) for name in ("distillation", "pretraining", "class_weights", "parent")
                    if getattr(self, name) is not None})
        return out


# Named starting points, one per dataset family; explicit options override them. Each is recorded in
# config.json. Each was measured (README, Results); "reviews" one change at a time on one seed, the preset over three.
PRESET_HELP = {"snippets": "short review snippets, the default corpus", "treebank": "sentence treebanks, SST-2", "reviews": "long reviews, IMDB",
               "general": "English sentences of many domains, the english-6-domains corpus"}
# The distilled student of an ensemble preset (figures in the README, Results). From the best member, the members'
# size: on SST-2 0.69 point below its (adversarial) ensemble over three seeds. Small (one layer of 64 units a
# direction, from scratch): on the default corpus within 0.1 point of its ensemble over three seeds, and 2-3x faster
# to predict.
STUDENT = {"distill": True, "distill_from_member": True, "distill_copies": 2, "distill_epochs": 2, "distill_learning_rate": 1e-3}
SMALL_STUDENT = {"distill": True, "distill_copies": 2, "distill_epochs": 6, "student_hidden_size": 64, "student_num_layers": 1}
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    # short review snippets (the default corpus, Rotten Tomatoes, MR): the lexicon, a 7-member ensemble distilled into one small network
    "snippets": {"tokenizer": {"lexicon": True}, "model": {"ensemble_size": 7}, "train": {"epochs": 6, **SMALL_STUDENT}},
    # sentence/phrase treebanks (SST-2): many short phrases, so fewer epochs; the lexicon; 4 members trained adversarially
    # (token vectors moved by 4 per text: single members +2.3 points on validation, seeds 13 and 113), distilled into one
    "treebank": {"tokenizer": {"lexicon": True}, "model": {"ensemble_size": 4}, "train": {"epochs": 4, "adversarial": 4.0, **STUDENT}},
    # long reviews (IMDB): HTML tags dropped, a review's first 384 and last 128 tokens kept in training and its first 896
    # and last 128 read in evaluation and prediction (nearly every review whole), one model, first pretrained for 4 epochs
    # as forward and backward language models on the training texts, then trained adversarially (token vectors moved by
    # 3 per text) against overfitting (README, Results: IMDB)
    "reviews": {"tokenizer": {"vocab_size": 16000, "max_length": 512, "predict_length": 1024, "tail_tokens": 128, "strip_html": True},
                "train": {"epochs": 4, "batch_size": 64, "pretrain_epochs": 4, "adversarial": 3.0}},
    # English sentences of many domains (tweets, product reviews, news, films; --corpus english-6-domains): the lexicon
    # with VADER's, web text normalised, token vectors started from word vectors learned elsewhere, 64 wide, 4 epochs
    # (README, Results: leave one domain out, all training rows)
    "general": {"tokenizer": {"lexicon": True, "vader_lexicon": True, "web_text": True}, "model": {"embedding_dim": 64},
                "train": {"epochs": 4, "word_vectors": True}},
}


# How a long text (a review) is read in full: the `reviews` preset's lengths, its end included. What the learning
# curve gives long texts, and what training suggests when it reads only the start of many texts.
LONG_READING = {name: PRESETS["reviews"]["tokenizer"][name] for name in ("max_length", "tail_tokens", "predict_length")}


def build_run_config(data: DataConfig, preset: str | None = None, parent: SavedConfig | dict[str, Any] | None = None,
                     **sections: dict[str, Any]) -> RunConfig:
    """The dataclass defaults, then the preset's values, then (with `parent`, the config.json of the model
    `train.init_from` names) the parent's architecture, then `sections` (e.g. model={"hidden_size": 64}), checked by
    `RunConfig.validate` and `check_parent`."""
    if preset is not None and preset not in PRESETS:
        raise ConfigError(f"Unknown preset {preset!r}; choose one of {', '.join(PRESETS)}.")
    chosen = PRESETS.get(preset, {}) if preset else {}
    unknown = set(sections) - {"tokenizer", "model", "train"}
    if unknown:
        raise ConfigError(f"Unknown configuration section(s): {', '.join(sorted(unknown))}.")
    if isinstance(parent, SavedConfig):
        parent = parent.to_dict()
    inherited = parent_sections(parent) if parent is not None else {}
    if parent is not None:  # the student starts from the parent: a preset's student sizes give way
        chosen = {**chosen, "train": {k: v for k, v in chosen.get("train", {}).items() if not k.startswith("student_")}}
    built = {
        name: _from_dict_with_parent(cls, {**chosen.get(name, {}), **inherited.get(name, {}), **sections.get(name, {})},
                                     inherited=[k for k in PARENT_DEFAULTS.get(name, ()) if k in inherited.get(name, {})
                                                and k not in sections.get(name, {})])
        for name, cls in (("tokenizer", TokenizerConfig), ("model", ModelConfig), ("train", TrainConfig))
    }
    if built["train"].distill and (built["model"].ensemble_size < 2 or data.streaming) and "distill" not in sections.get("train", {}):
        built["train"] = dataclasses.replace(built["train"], distill=False)  # the preset's: it applies to its ensemble only
    if parent is not None and built["train"].word_vectors and "word_vectors" not in sections.get("train", {}):
        built["train"] = dataclasses.replace(built["train"], word_vectors=False)  # the preset's: the parent's vectors replace them
    config = RunConfig(data=data, preset=preset, **built)
    if parent is not None:
        if config.train.init_from is None:
            raise ConfigError("build_run_config(parent=...) is for a run that starts from that model: add train={'init_from': ...}.")
        check_parent(config, parent)
    return config


# ---------------------------------------------------------------- starting from a trained model (--init-from)

# The options a parent model fixes: its tokenizer and the shapes of its weights. One given that differs is an error.
PARENT_FIXES = {"tokenizer": ("kind", "vocab_size", "lowercase", "min_frequency", "strip_html", "web_text", "lexicon",
                              "vader_lexicon"),
                "model": ("embedding_dim", "hidden_size", "num_layers", "pooling")}
# The options a parent passes on unless they are given: how much of a text is read, and the dropout.
PARENT_DEFAULTS = {"tokenizer": ("max_length", "tail_tokens", "predict_length"), "model": ("dropout", "embedding_dropout")}


def parent_sections(parent: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The tokenizer and model options a parent model (its config.json) passes on to a model started from it."""
    return {section: {name: parent[section][name] for name in (*PARENT_FIXES[section], *PARENT_DEFAULTS[section])
                      if name in parent.get(section, {})}
            for section in PARENT_FIXES}


def check_parent(config: RunConfig, parent: dict[str, Any]) -> None:
    """A ConfigError naming the first option of `config` that conflicts with the parent model's (its config.json)."""
    where = f"the parent model (--init-from {config.train.init_from})"
    members = parent.get("model", {}).get("ensemble_size", 1)
    if members > 1:
        raise ConfigError(f"{where} is an ensemble of {members} networks; start from one network: a distilled model, or one "
                          "trained with --ensemble 1.")
    for section, names in PARENT_FIXES.items():
        ours = getattr(config, section)
        for name in names:
            theirs = parent.get(section, {}).get(name)
            mine = getattr(ours, name)
            if theirs is not None and mine != (tuple(theirs) if isinstance(mine, tuple) else theirs):
                flag = _flag(type(ours), name)
                raise ConfigError(f"{_shown(flag, mine)} conflicts with {where}, which has {_shown(flag, theirs)}: a model "
                                  f"started from another keeps its tokenizer and the shapes of its weights. Drop {flag}.")


def _from_dict_with_parent(cls: type, values: dict[str, Any], inherited: list[str]):
    """`from_dict(cls, values)`, its error naming the options in `inherited` (those a parent model passed on that go
    with other options: how much of a text is read)."""
    try:
        return from_dict(cls, values)
    except ConfigError as exc:
        if not inherited:
            raise
        taken = ", ".join(_shown(_flag(cls, name), values[name]) for name in inherited)
        raise ConfigError(f"{exc} With --init-from, {taken} came from the parent model: give the options that go with it.") from None


def _flag(cls: type, name: str) -> str:
    """The command-line option of field `name` of the config dataclass `cls`."""
    declared = next(f for f in dataclasses.fields(cls) if f.name == name)
    return "--" + (declared.metadata.get("flag") or name).replace("_", "-")


def _shown(flag: str, value: Any) -> str:
    """An option with its value as a user writes it: --hidden-size 64, --lexicon, --no-lexicon, --pooling last,max."""
    if isinstance(value, bool):
        return flag if value else "--no-" + flag[2:]
    return f"{flag} {','.join(value) if isinstance(value, (list, tuple)) else value}"
