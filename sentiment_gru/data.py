"""Labelled text from the default corpus, the Hugging Face hub, a local dataset folder or the user's files.

Whatever the source, `load_data` returns splits with two columns, `text`
(string) and `label` (int, an index into `label_names`), or raises `DataError`
with a message that says what to do.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import DataConfig
from .corpus import CORPUS_NAME, load_default_corpus, split_key, stratified_split
from .errors import DataError

log = logging.getLogger(__name__)

TEXT_CANDIDATES = ("text", "sentence", "review", "content")
LABEL_CANDIDATES = ("label", "labels", "sentiment")
SPLIT_ALIASES = {
    "train": ("train",),
    "validation": ("validation", "valid", "val", "dev"),
    "test": ("test",),
}
FILE_FORMATS = {
    ".csv": ("csv", {}),
    ".tsv": ("csv", {"delimiter": "\t"}),
    ".json": ("json", {}),
    ".jsonl": ("json", {}),
    ".parquet": ("parquet", {}),
}
EXAMPLE_ROWS = 5


@dataclass
class LoadedData:
    splits: dict[str, Any]  # split name -> datasets.Dataset with `text` and `label`
    label_names: list[str]
    source: dict[str, Any]  # what was loaded, for config.json and reports
    notes: list[str] = field(default_factory=list)  # skipped rows and other things the user should know

    @property
    def eval_split(self) -> str:
        """The split reports are made on: test when there is one, else validation."""
        return "test" if "test" in self.splits else "validation"


def load_data(config: DataConfig, label_names: list[str] | None = None, need_train: bool = True) -> LoadedData:
    """Load, clean and label-encode every split the configuration names.

    `label_names` fixes the label order (a trained model's); otherwise it is
    taken from the data. `need_train=False` allows evaluation-only sources.
    """
    raw, source = _load_raw(config)
    notes: list[str] = []
    for name in [n for n in raw if n not in SPLIT_ALIASES]:
        notes.append(f"ignored split '{name}' ({len(raw[name])} rows): only train, validation and test are used")
        del raw[name]
    if not raw:
        raise DataError(f"{source['description']} has no train, validation or test split.")
    if need_train and "train" not in raw:
        raise DataError(f"{source['description']} has no train split. Pass --train-file or a dataset with a train split.")

    first = raw["train"] if "train" in raw else next(iter(raw.values()))
    text_column = detect_column(first.column_names, config.text_column, TEXT_CANDIDATES, "text", source["description"])
    label_column = detect_column(first.column_names, config.label_column, LABEL_CANDIDATES, "label", source["description"])

    rows: dict[str, tuple[list[str], list[str]]] = {}
    for split, ds in raw.items():
        for column, flag in ((text_column, "--text-column"), (label_column, "--label-column")):
            if column not in ds.column_names:
                raise DataError(
                    f"Column '{column}' not found in the {split} split of {source['description']}; "
                    f"its columns are: {', '.join(ds.column_names)}. Pass {flag}."
                )
        texts, names, skipped = _clean_rows(ds, text_column, label_column, config.label_names, f"the {split} split of {source['description']}")
        if skipped:
            notes.append(f"{split}: {skipped}")
        if not texts:
            if split == "test" and "train" in raw:
                notes.append("the test split has no labelled rows; reports use the validation split instead")
                continue
            raise DataError(f"The {split} split of {source['description']} has no usable rows. Check the file and --text-column/--label-column.")
        rows[split] = (texts, names)

    label_names = _label_order(rows, label_names, source["description"])
    index = {name: i for i, name in enumerate(label_names)}
    import datasets

    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.Value("int64")})
    splits = {
        split: datasets.Dataset.from_dict({"text": texts, "label": [index[n] for n in names]}, features=features)
        for split, (texts, names) in rows.items()
    }
    if "train" in splits and "validation" not in splits:
        splits = _carve_validation(splits, config)
        notes.append(
            f"no validation split: held out {len(splits['validation'])} training rows "
            f"({config.validation_fraction:.0%}, stratified) for model selection"
        )
    if "train" in splits and "test" not in splits:
        notes.append("no test split: reports are made on the validation split")
    if "train" in splits:
        counts = sorted(set(splits["train"]["label"]))
        if len(counts) < 2:
            raise DataError(
                f"The train split of {source['description']} has a single class ('{label_names[counts[0]]}'); "
                "a classifier needs at least two. Check --label-column."
            )
    for note in notes:
        log.warning(note)
    source["sizes"] = {split: len(ds) for split, ds in splits.items()}
    source["text_column"], source["label_column"] = text_column, label_column
    return LoadedData(splits=splits, label_names=label_names, source=source, notes=notes)


def detect_column(columns: list[str], explicit: str | None, candidates: tuple[str, ...], kind: str, where: str) -> str:
    """The column named by the user, or the first known name present (case-insensitive)."""
    flag = f"--{kind}-column"
    if explicit is not None:
        if explicit not in columns:
            raise DataError(f"Column '{explicit}' ({flag}) not found in {where}; its columns are: {', '.join(columns)}.")
        return explicit
    lowered = {c.lower(): c for c in columns}
    for name in candidates:
        if name in lowered:
            return lowered[name]
    raise DataError(
        f"No {kind} column found in {where} (looked for {', '.join(candidates)}); "
        f"its columns are: {', '.join(columns)}. Pass {flag} NAME."
    )


def _load_raw(config: DataConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    if config.uses_default_corpus:
        splits = load_default_corpus()
        return dict(splits), {"kind": "default", "name": CORPUS_NAME, "description": f"the default corpus ({CORPUS_NAME})"}
    if config.dataset is not None:
        return _load_dataset(config.dataset, config.dataset_config)
    files = {"train": config.train_file, "validation": config.validation_file, "test": config.test_file}
    splits = {split: _load_file(path, split) for split, path in files.items() if path is not None}
    names = ", ".join(f"{split}={Path(p).name}" for split, p in files.items() if p is not None)
    return splits, {"kind": "files", "files": {s: str(p) for s, p in files.items() if p}, "description": f"the files ({names})"}


def _load_file(path_str: str, split: str):
    import datasets

    path = Path(path_str)
    flag = f"--{split}-file"
    if not path.is_file():
        raise DataError(f"{flag} {path_str}: no such file.")
    suffix = path.suffix.lower()
    if suffix not in FILE_FORMATS:
        raise DataError(f"{flag} {path_str}: unsupported file type '{suffix}'; use one of {', '.join(FILE_FORMATS)}.")
    builder, options = FILE_FORMATS[suffix]
    try:
        return datasets.load_dataset(builder, data_files=str(path), split="train", **options)
    except Exception as exc:  # datasets wraps parser errors in several types
        reason = _first_line(exc)
        if "corresponds to no data" in reason:
            raise DataError(f"The {split} split ({flag} {path_str}) has no usable rows: the file holds no records.") from None
        if suffix != ".parquet":
            bad = _non_utf8_lines(path)
            if bad:
                raise DataError(
                    f"{flag} {path_str}: {len(bad)} line(s) are not valid UTF-8 (lines {_examples(bad)}). "
                    "Save the file as UTF-8, e.g. iconv -f latin1 -t utf-8."
                ) from None
        raise DataError(f"{flag} {path_str}: cannot be read as {suffix[1:].upper()} ({reason}). Check its format.") from None


def _non_utf8_lines(path: Path) -> list[int]:
    """Line numbers (from 1) of a text file that do not decode as UTF-8."""
    bad = []
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                bad.append(number)
    return bad


def _load_dataset(name: str, config_name: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
    import datasets

    path = Path(name)
    try:
        if path.is_dir() and ((path / "dataset_dict.json").is_file() or (path / "state.json").is_file()):
            loaded = datasets.load_from_disk(str(path))
            kind = "saved dataset folder"
        else:
            loaded = datasets.load_dataset(name, config_name)
            kind = "dataset folder" if path.is_dir() else "hub dataset"
    except (ConnectionError, datasets.exceptions.DatasetNotFoundError) as exc:
        if path.exists():
            raise DataError(f"--dataset {name}: cannot be loaded ({_first_line(exc)}).") from None
        raise DataError(
            f"--dataset {name}: cannot be reached on the Hugging Face hub (offline, or no such dataset). "
            "Use local data instead: --train-file/--test-file, or a local dataset folder."
        ) from None
    except ValueError as exc:  # e.g. a missing or wrong --dataset-config
        raise DataError(f"--dataset {name}: {_first_line(exc)}") from None
    if isinstance(loaded, datasets.Dataset):
        loaded = datasets.DatasetDict({"train": loaded})
    splits = {_canonical_split(s): ds for s, ds in loaded.items()}
    description = f"{kind} '{name}'" + (f" ({config_name})" if config_name else "")
    return splits, {"kind": kind, "name": name, "config": config_name, "description": description}


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


def _clean_rows(ds, text_column: str, label_column: str, int_label_names: tuple[str, ...] | None, where: str):
    """Texts and label names of the usable rows, and a sentence about the skipped ones.

    A label column that mixes numbers and names (e.g. `1` beside `positive`) stops the run:
    which number means which name cannot be guessed safely.
    """
    feature = ds.features[label_column]
    class_names = list(feature.names) if hasattr(feature, "names") else None
    texts_in = ds[text_column]
    labels_in = ds[label_column]
    texts: list[str] = []
    names: list[str] = []
    empty: list[int] = []
    unlabelled: list[int] = []
    for row, (text, label) in enumerate(zip(texts_in, labels_in), start=1):
        name = _label_name(label, class_names, int_label_names)
        if not isinstance(text, str) or not text.strip():
            empty.append(row)
        elif name is None:
            unlabelled.append(row)
        else:
            texts.append(text)
            names.append(name)
    usable = _usable_rows(len(texts_in), empty, unlabelled)
    numeric = [row for row, name in zip(usable, names) if name.lstrip("-").isdigit()]
    if numeric and len(numeric) < len(names):
        if 2 * len(numeric) <= len(names):
            minority, kind = numeric, "numeric"
        else:
            numbered = set(numeric)
            minority, kind = [row for row in usable if row not in numbered], "named"
        raise DataError(
            f"The label column '{label_column}' of {where} mixes numbers and names: {len(minority)} {kind} label(s) "
            f"(rows {_examples(minority)}) among {len(names)}. Make the labels consistent, or name numbers with --label-names."
        )
    parts = []
    if empty:
        parts.append(f"skipped {len(empty)} row(s) with empty or missing text (rows {_examples(empty)})")
    if unlabelled:
        parts.append(f"skipped {len(unlabelled)} row(s) with no label (rows {_examples(unlabelled)})")
    return texts, names, "; ".join(parts)


def _usable_rows(count: int, *skipped: list[int]) -> list[int]:
    """Row numbers (from 1) that were not skipped, in order."""
    dropped = set().union(*map(set, skipped))
    return [row for row in range(1, count + 1) if row not in dropped]


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


def _label_order(rows: dict[str, tuple[list[str], list[str]]], fixed: list[str] | None, where: str) -> list[str]:
    seen = {split: set(names) for split, (_, names) in rows.items()}
    if fixed is None:
        base = seen.get("train") or set().union(*seen.values())
        fixed = sorted(base, key=lambda n: (0, int(n)) if n.lstrip("-").isdigit() else (1, n))
    known = set(fixed)
    for split, names in seen.items():
        unknown = sorted(names - known)
        if unknown:
            owner = "the model" if "train" not in rows else "the train split"
            raise DataError(
                f"The {split} split of {where} has labels {owner} does not know: {', '.join(map(repr, unknown[:10]))}. "
                f"Known labels: {', '.join(fixed)}."
            )
    return list(fixed)


def _carve_validation(splits: dict[str, Any], config: DataConfig) -> dict[str, Any]:
    train = splits["train"]
    labels = train["label"]
    keys = [split_key(f"{config.seed}\0{i}\0{t}") for i, t in enumerate(train["text"])]
    parts = stratified_split(labels, keys, {"validation": config.validation_fraction, "train": 1 - config.validation_fraction})
    return {**splits, "train": train.select(parts["train"]), "validation": train.select(parts["validation"])}


def describe_sizes(data: LoadedData) -> str:
    return ", ".join(f"{split} {len(ds):,}" for split, ds in data.splits.items())
