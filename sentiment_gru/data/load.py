"""Labelled text from a built-in corpus, the Hugging Face hub, a local dataset folder or the user's files.

Whatever the source, `load_data` returns splits with two columns, `text`
(string) and `label` (int, an index into `label_names`), plus `domain` (string)
where the data has one, or raises `DataError` with a message that says what to do.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..config import DataConfig
from ..errors import DataError
from .corpus import CORPUS_NAME, load_default_corpus, split_key, stratified_split
from .domains import CORPUS_NAME as DOMAINS_CORPUS_NAME
from .domains import LABEL_RULE as DOMAINS_LABEL_RULE
from .domains import load_domains_corpus
from .tables import FILE_FORMATS, LABEL_CANDIDATES, TEXT_CANDIDATES, detect_column, existing_file, not_utf8_error

log = logging.getLogger(__name__)

SPLIT_ALIASES = {
    "train": ("train",),
    "validation": ("validation", "valid", "val", "dev"),
    "test": ("test",),
}
EXAMPLE_ROWS = 5
NAMED, NUMERIC, EMPTY, UNLABELLED = 0, 1, 2, 3  # what a row is: `classify_row`
SKIPPED = {EMPTY: "empty or missing text", UNLABELLED: "no label"}  # the rows left out, and why
DOMAIN_COLUMN = "domain"  # a built-in corpus of several domains has one; source["domains"] counts its rows


@dataclass
class LoadedData:
    splits: dict[str, Any]  # split name -> datasets.Dataset with `text` and `label`
    label_names: list[str]
    source: dict[str, Any]  # what was loaded, for config.json and reports
    notes: list[str] = field(default_factory=list)  # skipped rows and other things the user should know
    pretrain: Any = None  # --pretrain-file: a datasets.Dataset of unlabelled texts (`text`), or None
    transfer: Any = None  # --distill-file: a datasets.Dataset of unlabelled texts (`text`) for the student, or None

    @property
    def eval_split(self) -> str:
        """The split reports are made on: test when there is one, else validation."""
        return "test" if "test" in self.splits else "validation"

    @property
    def streamed(self) -> bool:
        """Whether the train split is read as a stream (a `StreamedSplit`) rather than held as a dataset."""
        return isinstance(self.splits.get("train"), StreamedSplit)

    def held_splits(self) -> dict[str, Any]:
        """The splits held as datasets: all but a streamed train split."""
        return {split: ds for split, ds in self.splits.items() if not isinstance(ds, StreamedSplit)}

    def split_to_score(self, split: str | None) -> str:
        """`split`, checked against the data's splits; by default test, else the first split there is."""
        split = split or ("test" if "test" in self.splits else next(iter(self.splits)))
        if split not in self.splits:
            raise DataError(f"--split {split}: the data has only {', '.join(self.splits)}.")
        return split

    def train_texts(self):
        """The texts a tokenizer learns from: a streamed split's sample, or every training text, read in batches."""
        train = self.splits["train"]
        if self.streamed:
            return iter(train.sample)
        return (text for batch in train.select_columns("text").iter(batch_size=1000) for text in batch["text"])


class StreamedSplit:
    """A training split read as a stream, never held in memory: one pass before training counts its usable rows,
    keeps the first `stream_sample_size` texts for the tokenizer and, when there is no validation split, holds out
    a seeded sample of rows for it.

    Iterating an epoch gives `(text, label)` rows, cleaned as in-memory splits are.
    """

    def __init__(self, stream, text_column: str, label_column: str, int_label_names: tuple[str, ...] | None, config: DataConfig):
        self.stream = stream.select_columns([text_column, label_column])
        self.text_column, self.label_column = text_column, label_column
        self.class_names = _class_names(stream, label_column)
        self.int_label_names = int_label_names
        self.config = config
        self.hold_out = False
        self.rows = 0  # usable rows that train
        self.names: list[str] = []  # label names seen
        self.sample: list[str] = []  # the first texts, for the tokenizer
        self.held_out: list[tuple[str, str]] = []  # (text, label name) rows held out for validation
        self.skipped = ""
        self.label_index: dict[str, int] = {}

    @classmethod
    def scan(cls, stream, text_column: str, label_column: str, config: DataConfig, where: str, hold_out: bool) -> "StreamedSplit":
        """Read the stream once: count, sample and hold out rows, and name the skipped ones."""
        split = cls(stream, text_column, label_column, config.label_names, config)
        split.hold_out = hold_out
        names: set[str] = set()
        kinds: set[int] = set()  # NAMED, NUMERIC: the kinds of label seen
        skipped: dict[int, list[int]] = {kind: [] for kind in SKIPPED}  # the first rows of each kind, by number
        counts = dict.fromkeys(SKIPPED, 0)
        for row, status, text, name in split._rows():
            if status in SKIPPED:
                counts[status] += 1
                if len(skipped[status]) <= EXAMPLE_ROWS:
                    skipped[status].append(row)
                continue
            names.add(name)
            kinds.add(status)
            if split._held_out(text):
                split.held_out.append((text, name))
                continue
            split.rows += 1
            if len(split.sample) < config.stream_sample_size:
                split.sample.append(text)
        split.names = sorted(names)
        if kinds == {NAMED, NUMERIC}:
            raise DataError(
                f"The label column '{label_column}' of {where} mixes numbers and names ({', '.join(sorted(names)[:6])}). "
                "Make the labels consistent, or name numbers with --label-names."
            )
        if split.rows == 0:
            raise DataError(f"The train split of {where} has no usable rows. Check the file and --text-column/--label-column.")
        split.skipped = _skipped_note(counts, skipped)
        return split

    def _rows(self, epoch: int | None = None):
        """(row number, status, text, label name) of each row: `classify_row`'s status, and the name of a usable row."""
        stream = self.stream
        if epoch is not None and self.config.stream_shuffle_buffer > 1:
            stream = stream.shuffle(seed=self.config.seed, buffer_size=self.config.stream_shuffle_buffer)
            stream.set_epoch(epoch)
        for row, record in enumerate(stream, start=1):
            text = record[self.text_column]
            status, name = classify_row(text, record[self.label_column], self.class_names, self.int_label_names)
            yield row, status, text, name

    def _held_out(self, text: str) -> bool:
        """Whether a row is held out for validation: decided by a keyed hash of its text, so shuffling does not move it."""
        if not self.hold_out:
            return False
        key = int(split_key(f"{self.config.seed}\0{text}")[:8], 16)
        return key < self.config.validation_fraction * 16**8

    def validation(self, index: dict[str, int]):
        """The held-out rows as an in-memory dataset of `text` and `label`."""
        import datasets

        features = datasets.Features({"text": datasets.Value("string"), "label": datasets.Value("int64")})
        texts = [t for t, _ in self.held_out]
        labels = [index[n] for _, n in self.held_out]
        self.held_out = []
        return datasets.Dataset.from_dict({"text": texts, "label": labels}, features=features)

    def epoch(self, epoch: int):
        """This epoch's rows as (text, label index); the held-out rows are left out. Shuffled in a buffer per epoch."""
        for _, status, text, name in self._rows(epoch=epoch):
            if status not in SKIPPED and not self._held_out(text):
                yield text, self.label_index[name]

    def __len__(self) -> int:
        return self.rows


def load_data(config: DataConfig, label_names: list[str] | None = None, need_train: bool = True) -> LoadedData:
    """Load, clean and label-encode every split the configuration names.

    `label_names` fixes the label order (a trained model's); otherwise it is
    taken from the data. `need_train=False` allows evaluation-only sources.
    """
    raw, source = _load_raw(config)
    notes: list[str] = []
    for name in [n for n in raw if n not in SPLIT_ALIASES]:
        size = f"{len(raw[name])} rows" if hasattr(raw[name], "__len__") else "streamed"
        notes.append(f"ignored split '{name}' ({size}): only train, validation and test are used")
        del raw[name]
    if config.streaming and not need_train:
        raw.pop("train", None)  # evaluation never reads a streamed train split
        if not raw:
            raise DataError(f"{source['description']}: the model was trained on it as a stream, with validation rows held out "
                            "from the stream. Pass --test-file F (or --validation-file F) to evaluate it.")
    if not raw:
        raise DataError(f"{source['description']} has no train, validation or test split.")
    if need_train and "train" not in raw:
        raise DataError(f"{source['description']} has no train split. Pass --train-file or a dataset with a train split.")

    pretrain = load_unlabelled_texts(config.pretrain_file, config.text_column, "pretrain") if need_train and config.pretrain_file else None
    transfer = load_unlabelled_texts(config.distill_file, config.text_column, "distill") if need_train and config.distill_file else None
    first = raw["train"] if "train" in raw else next(iter(raw.values()))
    columns = _column_names(first)
    text_column = detect_column(columns, config.text_column, TEXT_CANDIDATES, "text", source["description"])
    label_column = detect_column(columns, config.label_column, LABEL_CANDIDATES, "label", source["description"])
    if config.max_train_rows and "train" in raw and not config.streaming and len(raw["train"]) > config.max_train_rows:
        _check_columns(raw["train"], "train", text_column, label_column, source["description"])
        total = len(raw["train"])
        raw["train"] = _sample_rows(raw["train"], text_column, label_column, config)
        notes.append(f"train: {len(raw['train']):,} of its {total:,} rows used (--max-train-rows {config.max_train_rows}, "
                     "stratified by label)")
    if all(hasattr(ds, "__len__") and DOMAIN_COLUMN in _column_names(ds) for ds in raw.values()):  # held splits, not streams
        source["domains"] = _domain_sizes(raw)

    cleaned: dict[str, Any] = {}
    for split, ds in raw.items():
        if split == "train" and config.streaming:
            continue
        _check_columns(ds, split, text_column, label_column, source["description"])
        kept, skipped = _clean_rows(ds, text_column, label_column, config.label_names, f"the {split} split of {source['description']}")
        if skipped:
            notes.append(f"{split}: {skipped}")
        if not len(kept):
            if split == "test" and "train" in raw:
                notes.append("the test split has no labelled rows; reports use the validation split instead")
                continue
            raise DataError(f"The {split} split of {source['description']} has no usable rows. Check the file and --text-column/--label-column.")
        cleaned[split] = kept
    stream = None
    if "train" in raw and config.streaming:
        _check_columns(raw["train"], "train", text_column, label_column, source["description"])
        stream = StreamedSplit.scan(raw["train"], text_column, label_column, config, f"the train split of {source['description']}",
                                    hold_out="validation" not in cleaned)
        if stream.skipped:
            notes.append(f"train: {stream.skipped}")

    seen = {split: set(ds.unique("name")) for split, ds in cleaned.items()}
    if stream is not None:
        seen["train"] = set(stream.names)
    label_names = _label_order(seen, label_names, source["description"])
    index = {name: i for i, name in enumerate(label_names)}
    splits = {split: _with_label_ids(ds, index) for split, ds in cleaned.items()}
    if stream is not None:
        stream.label_index = index
        splits["train"] = stream
        if stream.hold_out:
            splits["validation"] = stream.validation(index)
            if not len(splits["validation"]):
                raise DataError(f"No rows of the streamed train split of {source['description']} were held out for validation "
                                "(too few rows). Pass --validation-file.")
            notes.append(
                f"no validation split: held out {len(splits['validation'])} streamed training rows "
                f"(a seeded {config.validation_fraction:.0%} sample) for model selection"
            )
    if "train" in splits and "validation" not in splits:
        splits = _carve_validation(splits, config)
        if not len(splits["validation"]) or not len(splits["train"]):
            rows = len(splits["validation"]) + len(splits["train"])
            skipped = f" ({'; '.join(n.removeprefix('train: ') for n in notes if n.startswith('train: '))})" if any(
                n.startswith("train: ") for n in notes) else ""
            raise DataError(
                f"The train split of {source['description']} has {rows} usable row(s){skipped}: too few to hold out "
                f"{config.validation_fraction:.0%} of each class for validation and train on the rest. "
                "Add rows, or pass --validation-file."
            )
        notes.append(
            f"no validation split: held out {len(splits['validation'])} training rows "
            f"({config.validation_fraction:.0%}, stratified) for model selection"
        )
    if "train" in splits and "test" not in splits:
        notes.append("no test split: reports are made on the validation split")
    if "train" in splits:
        counts = sorted(seen["train"])
        if len(counts) < 2:
            raise DataError(
                f"The train split of {source['description']} has a single class ('{counts[0]}'); "
                "a classifier needs at least two. Check --label-column."
            )
        if need_train and all(_is_number(name) for name in label_names):
            notes.append(_bare_numbers_note(label_names))
    for note in notes:
        log.warning(note)
    source["sizes"] = {split: len(ds) for split, ds in splits.items()}
    source["text_column"], source["label_column"] = text_column, label_column
    if pretrain is not None:
        source["pretrain"] = {"file": config.pretrain_file, "texts": len(pretrain)}
    if transfer is not None:
        source["distill"] = {"file": config.distill_file, "texts": len(transfer)}
    return LoadedData(splits=splits, label_names=label_names, source=source, notes=notes, pretrain=pretrain, transfer=transfer)


def load_unlabelled_texts(path_str: str, text_column: str | None, split: str, flag: str | None = None):
    """--pretrain-file or --distill-file (`split` pretrain or distill; errors name `flag`, default --SPLIT-file):
    unlabelled texts, one per line of a .txt file or the text column of a data file; empty ones dropped."""
    import datasets

    flag = flag or f"--{split}-file"
    where = f"{flag} {path_str}"
    if Path(path_str).suffix.lower() == ".txt":
        path = existing_file(path_str, flag)
        try:
            ds = datasets.load_dataset("text", data_files=str(path), split="train")
        except Exception as exc:  # datasets wraps decoding and empty-file errors in several types
            raise DataError(f"{where}: cannot be read as text, one per line ({_first_line(exc)}). Save it as UTF-8.") from None
        column = "text"
    else:
        ds = _load_file(path_str, split, flag=flag)
        columns = _column_names(ds)
        column = detect_column(columns, text_column if text_column in columns else None, TEXT_CANDIDATES, "text", where)
    ds = ds.select_columns([column]).filter(lambda batch: [isinstance(t, str) and bool(t.strip()) for t in batch[column]], batched=True)
    if not len(ds):
        raise DataError(f"{where} holds no texts (every line or row is empty).")
    return ds.rename_column(column, "text") if column != "text" else ds


def _load_raw(config: DataConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    if config.uses_builtin_corpus and config.corpus == DOMAINS_CORPUS_NAME:
        chosen = ", ".join(config.domains) if config.domains else "all domains"
        return dict(load_domains_corpus(config.domains)), {
            "kind": "built-in corpus", "name": DOMAINS_CORPUS_NAME, "description": f"the {DOMAINS_CORPUS_NAME} corpus ({chosen})",
            "label_rule": DOMAINS_LABEL_RULE}
    if config.uses_builtin_corpus:
        splits = load_default_corpus()
        return dict(splits), {"kind": "default", "name": CORPUS_NAME, "description": f"the default corpus ({CORPUS_NAME})"}
    if config.dataset is not None:
        return _load_dataset(config.dataset, config.dataset_config, config.streaming)
    files = {"train": config.train_file, "validation": config.validation_file, "test": config.test_file}
    splits = {split: _load_file(path, split, config.streaming and split == "train") for split, path in files.items() if path is not None}
    names = ", ".join(f"{split}={Path(p).name}" for split, p in files.items() if p is not None)
    return splits, {"kind": "files", "files": {s: str(p) for s, p in files.items() if p}, "description": f"the files ({names})"}


def _load_file(path_str: str, split: str, streaming: bool = False, flag: str | None = None):
    import datasets

    flag = flag or f"--{split}-file"
    path = existing_file(path_str, flag)
    suffix = path.suffix.lower()
    if suffix not in FILE_FORMATS:
        raise DataError(f"{flag} {path_str}: unsupported file type '{suffix}'; use one of {', '.join(FILE_FORMATS)}.")
    builder, options = FILE_FORMATS[suffix]
    try:
        if streaming:
            stream = datasets.load_dataset(builder, data_files=str(path), split="train", streaming=True, **options)
            _column_names(stream)  # reads the first record, so a file that cannot be parsed fails here
            return stream
        return datasets.load_dataset(builder, data_files=str(path), split="train", **options)
    except Exception as exc:  # datasets wraps parser errors in several types
        reason = _first_line(exc)
        if "corresponds to no data" in reason:
            raise DataError(f"The {split} split ({flag} {path_str}) has no usable rows: the file holds no records.") from None
        if suffix != ".parquet":
            error = not_utf8_error(path, flag)
            if error is not None:
                raise error from None
        raise DataError(f"{flag} {path_str}: cannot be read as {suffix[1:].upper()} ({reason}). Check its format.") from None


def _load_dataset(name: str, config_name: str | None, streaming: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
    """A hub dataset or a local folder; with `streaming`, the train split is a stream and the others are read whole."""
    import datasets

    path = Path(name)
    try:
        if path.is_dir() and ((path / "dataset_dict.json").is_file() or (path / "state.json").is_file()):
            loaded = datasets.load_from_disk(str(path))  # memory-mapped already; streaming only reads it in order
            kind = "saved dataset folder"
            if streaming:
                loaded = {s: ds.to_iterable_dataset() if _canonical_split(s) == "train" else ds for s, ds in loaded.items()}
        else:
            loaded = datasets.load_dataset(name, config_name, streaming=streaming)
            kind = "dataset folder" if path.is_dir() else "hub dataset"
            if streaming:
                loaded = {s: _materialise(ds) if _canonical_split(s) in ("validation", "test") else ds for s, ds in loaded.items()}
    except (ConnectionError, datasets.exceptions.DatasetNotFoundError) as exc:
        if path.exists():
            raise DataError(f"--dataset {name}: cannot be loaded ({_first_line(exc)}).") from None
        raise DataError(
            f"--dataset {name}: cannot be reached on the Hugging Face hub (offline, or no such dataset). "
            "Use local data instead: --train-file/--test-file, or a local dataset folder."
        ) from None
    except ValueError as exc:  # e.g. a missing or wrong --dataset-config
        raise DataError(f"--dataset {name}: {_first_line(exc)}") from None
    if isinstance(loaded, (datasets.Dataset, datasets.IterableDataset)):
        loaded = {"train": loaded}
    splits = {_canonical_split(s): ds for s, ds in loaded.items()}
    description = f"{kind} '{name}'" + (f" ({config_name})" if config_name else "")
    return splits, {"kind": kind, "name": name, "config": config_name, "description": description}


def _materialise(stream):
    """A streamed evaluation split read whole into memory."""
    import datasets

    return datasets.Dataset.from_list(list(stream), features=stream.features)


def _canonical_split(name: str) -> str:
    for canonical, aliases in SPLIT_ALIASES.items():
        if name.lower() in aliases:
            return canonical
    return name


def _first_line(exc: BaseException) -> str:
    cause = exc
    while cause.__cause__ is not None and str(cause.__cause__):
        cause = cause.__cause__
    text = str(cause).strip().splitlines()
    return text[0][:200] if text else type(cause).__name__


def _check_columns(ds, split: str, text_column: str, label_column: str, where: str) -> None:
    columns = _column_names(ds)
    for column, flag in ((text_column, "--text-column"), (label_column, "--label-column")):
        if column not in columns:
            raise DataError(
                f"Column '{column}' not found in the {split} split of {where}; its columns are: {', '.join(columns)}. Pass {flag}."
            )


def _column_names(ds) -> list[str]:
    """Columns of a dataset; a stream whose builder declares none is asked for its first row."""
    if ds.column_names is not None:
        return list(ds.column_names)
    first = next(iter(ds), None)
    return list(first) if first is not None else []


def _class_names(ds, label_column: str) -> list[str] | None:
    feature = (ds.features or {}).get(label_column)
    return list(feature.names) if hasattr(feature, "names") else None


def _clean_rows(ds, text_column: str, label_column: str, int_label_names: tuple[str, ...] | None, where: str):
    """The usable rows as a dataset of `text` and `name` (the label's name), with the `domain` column where the data has
    one (the report scores each domain), and a sentence about the skipped ones.

    Done with `datasets.map(batched=True)`, so a corpus on disk stays a memory-mapped Arrow
    table (and the result is cached beside it); only per-row status codes come into memory.
    A label column that mixes numbers and names (e.g. `1` beside `positive`) stops the run:
    which number means which name cannot be guessed safely.
    """
    import datasets

    class_names = _class_names(ds, label_column)
    with_domain = DOMAIN_COLUMN in ds.column_names and DOMAIN_COLUMN not in (text_column, label_column)

    def mark(batch: dict[str, list]) -> dict[str, list]:
        texts, names, status = [], [], []
        for text, label in zip(batch[text_column], batch[label_column]):
            code, name = classify_row(text, label, class_names, int_label_names)
            texts.append(text if isinstance(text, str) else "")
            names.append(name or "")
            status.append(code)
        domains = {DOMAIN_COLUMN: ["" if d is None else str(d) for d in batch[DOMAIN_COLUMN]]} if with_domain else {}
        return {"text": texts, "name": names, **domains, "status": status}

    kept_domain = {DOMAIN_COLUMN: datasets.Value("string")} if with_domain else {}
    features = datasets.Features({"text": datasets.Value("string"), "name": datasets.Value("string"), **kept_domain,
                                  "status": datasets.Value("int8")})
    marked = ds.map(mark, batched=True, remove_columns=ds.column_names, features=features, desc="cleaning rows")
    status = np.asarray(marked.with_format("numpy")["status"])
    rows = np.arange(1, len(status) + 1)  # row numbers, from 1
    usable = (status == NAMED) | (status == NUMERIC)
    numeric, named = rows[status == NUMERIC], rows[status == NAMED]
    if len(numeric) and len(named):
        minority, kind = (numeric, "numeric") if len(numeric) <= len(named) else (named, "named")
        raise DataError(
            f"The label column '{label_column}' of {where} mixes numbers and names: {len(minority)} {kind} label(s) "
            f"(rows {_examples(minority.tolist())}) among {int(usable.sum())}. "
            "Make the labels consistent, or name numbers with --label-names."
        )
    skipped = {kind: rows[status == kind].tolist() for kind in SKIPPED}
    kept = marked if usable.all() else marked.select(np.flatnonzero(usable))
    return kept.remove_columns("status"), _skipped_note({kind: len(r) for kind, r in skipped.items()}, skipped)


def classify_row(text: Any, label: Any, class_names: list[str] | None,
                 int_label_names: tuple[str, ...] | None) -> tuple[int, str | None]:
    """What one row is, for in-memory and streamed splits alike: (EMPTY, None) when its text is missing or blank,
    (UNLABELLED, None) when it has no label, else (NUMERIC or NAMED, its label's name). A split whose rows are
    NUMERIC and NAMED both mixes numbers and names, and is refused."""
    name = _label_name(label, class_names, int_label_names)
    if not isinstance(text, str) or not text.strip():
        return EMPTY, None
    if name is None:
        return UNLABELLED, None
    return (NUMERIC if name.lstrip("-").isdigit() else NAMED), name


def _skipped_note(counts: dict[int, int], rows: dict[int, list[int]]) -> str:
    """A sentence on the rows left out: how many of each SKIPPED kind, and the first row numbers (`rows`)."""
    return "; ".join(f"skipped {counts[kind]} row(s) with {reason} (rows {_examples(rows[kind])})"
                     for kind, reason in SKIPPED.items() if counts[kind])


def _with_label_ids(ds, index: dict[str, int]):
    """`text` and `label` (an index into the label names) from `text` and `name`; a `domain` column is kept."""
    import datasets

    domain = {DOMAIN_COLUMN: datasets.Value("string")} if DOMAIN_COLUMN in ds.column_names else {}
    features = datasets.Features({"text": datasets.Value("string"), **domain, "label": datasets.Value("int64")})
    return ds.map(lambda names: {"label": [index[n] for n in names]}, input_columns="name", batched=True,
                  remove_columns="name", features=features, desc="labelling rows")


def _examples(rows: list[int]) -> str:
    shown = ", ".join(str(r) for r in rows[:EXAMPLE_ROWS])
    return shown + (", ..." if len(rows) > EXAMPLE_ROWS else "")


def _label_name(value: Any, class_names: list[str] | None, int_label_names: tuple[str, ...] | None) -> str | None:
    """The label of one row as a name, or None when it is missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        if class_names is not None:
            return class_names[value] if 0 <= value < len(class_names) else None  # -1 marks a hidden label
        if int_label_names is not None:
            if not 0 <= value < len(int_label_names):
                raise DataError(f"Label {value} has no name: --label-names gives {len(int_label_names)} names for labels 0..{len(int_label_names) - 1}.")
            return int_label_names[value]
        return str(value)
    name = str(value).strip()
    return name or None


def _is_number(name: str) -> bool:
    return name.lstrip("-").isdigit()


def _bare_numbers_note(names: list[str]) -> str:
    """What to do when a model would be trained on labels that are bare numbers: predictions would say "1"."""
    said = f"the labels are bare numbers ({', '.join(names)}), so predictions will say '{names[-1]}' or '{names[0]}'"
    if names != [str(i) for i in range(len(names))]:
        return f"{said}; to have them say names, write the names in the label column"
    example = "negative,positive" if len(names) == 2 else ",".join(f"name{i}" for i in range(len(names)))
    return f"{said}; to name them, train with --label-names {example} (one name per number, in the order {', '.join(names)})"


def _label_order(seen: dict[str, set[str]], fixed: list[str] | None, where: str) -> list[str]:
    if fixed is None:
        base = seen.get("train") or set().union(*seen.values())
        fixed = sorted(base, key=lambda n: (0, int(n)) if _is_number(n) else (1, n))
    known = set(fixed)
    for split, names in seen.items():
        unknown = sorted(names - known)
        if unknown:
            owner = "the model" if "train" not in seen else "the train split"
            hint = ""
            if all(_is_number(n) for n in names) and not any(_is_number(n) for n in fixed):
                if all(0 <= int(n) < len(fixed) for n in names):
                    numbers = ", ".join(f"{i} = {name}" for i, name in enumerate(fixed))
                    hint = f" If the numbers stand for these names, pass --label-names {','.join(fixed)} ({numbers})."
                else:
                    hint = (f" Its labels are the numbers {', '.join(sorted(names, key=int))}, which cannot stand for the "
                            f"{len(fixed)} labels {owner} knows: score it on data labelled {', '.join(fixed)}.")
            raise DataError(
                f"The {split} split of {where} has labels {owner} does not know: {', '.join(map(repr, unknown[:10]))}. "
                f"Known labels: {', '.join(fixed)}.{hint}"
            )
    return list(fixed)


def _sample_rows(train, text_column: str, label_column: str, config: DataConfig):
    """About `config.max_train_rows` rows of a held train split: each label (and domain, where there is a domain
    column) keeps its share, its rows chosen in the order of a keyed hash of their text and the seed."""
    grouped = [label_column] + ([DOMAIN_COLUMN] if DOMAIN_COLUMN in train.column_names else [])
    columns = train.select_columns([text_column, *grouped])[:]  # dict of lists
    strata = ["\0".join(str(value) for value in values) for values in zip(*(columns[c] for c in grouped))]
    keys = [split_key(f"{config.seed}\0{i}\0{text}") for i, text in enumerate(columns[text_column])]
    share = config.max_train_rows / len(train)
    return train.select(stratified_split(strata, keys, {"kept": share, "rest": 1 - share})["kept"])


def _domain_sizes(raw: dict[str, Any]) -> dict[str, dict[str, int]]:
    """Rows per domain and split, of splits that have a domain column (a built-in corpus of several domains), as read:
    before a validation split is carved from train."""
    sizes: dict[str, dict[str, int]] = {}
    for split, ds in raw.items():
        for domain in ds.select_columns([DOMAIN_COLUMN])[:][DOMAIN_COLUMN]:
            counts = sizes.setdefault(str(domain), {})
            counts[split] = counts.get(split, 0) + 1
    return sizes


def _carve_validation(splits: dict[str, Any], config: DataConfig) -> dict[str, Any]:
    train = splits["train"]
    seed = config.seed

    def keys(texts: list[str], rows: list[int]) -> dict[str, list[int]]:
        # the first 60 bits of the split key (an int64) order rows as the whole hex digest does
        return {"key": [int(split_key(f"{seed}\0{i}\0{t}")[:15], 16) for i, t in zip(rows, texts)]}

    keyed = train.map(keys, input_columns="text", with_indices=True, batched=True, remove_columns=train.column_names, desc="splitting")
    labels = np.asarray(train.with_format("numpy")["label"])
    parts = stratified_split(labels, np.asarray(keyed.with_format("numpy")["key"]),
                             {"validation": config.validation_fraction, "train": 1 - config.validation_fraction})
    return {**splits, "train": train.select(parts["train"]), "validation": train.select(parts["validation"])}


def keep_used_labels(data: LoadedData) -> LoadedData:
    """`data` with only the labels its held splits use, in `data.label_names`' order (a model's, when data with fewer
    labels is scored with it), the label ids renumbered to match."""
    used = sorted(set().union(*(np.unique(ds.with_format("numpy")["label"]).tolist() for ds in data.held_splits().values())))
    if len(used) == len(data.label_names):
        return data
    renumber = np.full(len(data.label_names), -1, dtype=np.int64)
    renumber[used] = np.arange(len(used))
    splits = {split: ds.map(lambda labels: {"label": renumber[np.asarray(labels)].tolist()}, input_columns="label", batched=True,
                            desc="renumbering labels")
              for split, ds in data.held_splits().items()}
    return dataclasses.replace(data, splits={**data.splits, **splits}, label_names=[data.label_names[i] for i in used])


def describe_sizes(data: LoadedData) -> str:
    return ", ".join(f"{split} {len(ds):,}" for split, ds in data.splits.items())
