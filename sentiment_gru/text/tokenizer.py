"""A subword tokenizer trained on the training split, saved as `tokenizer.json`; `TextEncoder`, that tokenizer with its
cut rule: the token ids a model reads of each text, and which texts were cut."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import NamedTuple

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

from ..config import TokenizerConfig
from .normalize import web_text_normalizers

PAD_TOKEN = "[PAD]"
UNK_TOKEN = "[UNK]"
PAD_ID = 0  # the trainers give special tokens the first ids, in order
UNK_ID = 1
CHARS_PER_TOKEN_BOUND = 64
HTML_TAG = r"</?[A-Za-z][^<>]{0,40}>"  # <br />, <i>, </p>: markup that scraped reviews carry


def train_tokenizer(texts: Iterable[str], config: TokenizerConfig) -> Tokenizer:
    """Train a BPE or WordPiece tokenizer on `texts`, truncating to `config.read_length` (what evaluation and
    prediction read; `for_training` cuts training texts shorter); with `config.lexicon`, the lexicon's common words
    are added as whole-word tokens."""
    special = [PAD_TOKEN, UNK_TOKEN]
    if config.kind == "bpe":
        # No word-piece prefix or suffix: with one, tokenizers assigns ids in hash-map order and the
        # vocabulary changes from run to run; without, BPE training is deterministic.
        tokenizer = Tokenizer(models.BPE(unk_token=UNK_TOKEN))
        trainer = trainers.BpeTrainer(
            vocab_size=config.vocab_size, min_frequency=config.min_frequency, special_tokens=special, show_progress=False
        )
    else:
        # WordPiece marks word-inner pieces with ##; its training is not deterministic in tokenizers
        # (huggingface/tokenizers#1794), so two runs with one seed can differ slightly.
        tokenizer = Tokenizer(models.WordPiece(unk_token=UNK_TOKEN, max_input_chars_per_word=100))
        trainer = trainers.WordPieceTrainer(
            vocab_size=config.vocab_size, min_frequency=config.min_frequency, special_tokens=special, show_progress=False
        )
        tokenizer.decoder = decoders.WordPiece()
    # NFKC folds look-alike characters; BertNormalizer drops control characters and splits CJK ideographs. The web-text
    # rules go between: after NFKC has made a full-width ！ a !, before lowercasing hides ALL CAPS.
    steps = [normalizers.NFKC(), *(web_text_normalizers() if config.web_text else []),
             normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, lowercase=config.lowercase, strip_accents=config.lowercase)]
    if config.strip_html:  # in the tokenizer itself, so every text it reads later gets the same treatment
        steps.insert(0, normalizers.Replace(Regex(HTML_TAG), " "))
    tokenizer.normalizer = normalizers.Sequence(steps)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.train_from_iterator(_batches(texts), trainer=trainer)
    assert [tokenizer.token_to_id(t) for t in special] == [PAD_ID, UNK_ID]
    if config.lexicon:
        from .lexicon import add_lexicon_tokens, load_lexicon

        add_lexicon_tokens(tokenizer, load_lexicon(config.vader_lexicon))
    tokenizer.enable_truncation(max_length=config.read_length)
    return tokenizer


def for_training(tokenizer: Tokenizer, config: TokenizerConfig) -> TextEncoder:
    """The encoder training reads texts with: `tokenizer` with the cut rule of `config`, cutting texts at
    `config.max_length` where evaluation and prediction read longer ones (`config.predict_length`)."""
    if config.read_length != config.max_length:
        tokenizer = Tokenizer.from_str(tokenizer.to_str())
        tokenizer.enable_truncation(max_length=config.max_length)
    return TextEncoder(tokenizer, config.tail_tokens)


def _batches(texts: Iterable[str], size: int = 1000) -> Iterator[list[str]]:
    batch: list[str] = []
    for text in texts:
        batch.append(text)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


class Encoded(NamedTuple):
    """What a model reads of each text."""

    ids: list[list[int]]  # each text's token ids
    truncated: list[bool]  # whether the text was longer than the model reads, so part of it was cut
    offsets: list[list[tuple[int, int]]] | None = None  # each kept token's (start, end) characters in its text


class TextEncoder:
    """A trained tokenizer with its cut rule: texts in, the token ids a model reads out, and which texts were cut.

    A text longer than `read_length` tokens (the tokenizer's truncation length) keeps its start; with `tail_tokens`,
    its first read_length - tail_tokens tokens and its last `tail_tokens` (a long review's verdict is often at its
    end). Only about `CHARS_PER_TOKEN_BOUND` characters per kept token are read from either end, so a megabyte of
    text costs no more than a long review.
    """

    def __init__(self, tokenizer: Tokenizer, tail_tokens: int = 0) -> None:
        self.tokenizer = tokenizer
        self.tail_tokens = tail_tokens
        self._whole: Tokenizer | None = None  # a copy that keeps every token, made on first use

    @property
    def read_length(self) -> int | None:
        """Tokens read of a text at most; None when texts are read whole."""
        truncation = self.tokenizer.truncation
        return truncation["max_length"] if truncation else None

    def whole(self) -> TextEncoder:
        """An encoder that reads every token of every text (nothing cut)."""
        return TextEncoder(self._untruncated())

    def encode(self, texts: list[str]) -> Encoded:
        """Token ids of each text as the model reads them; a text with no tokens becomes [UNK] so it still has length 1."""
        length = self.read_length
        if self.tail_tokens and length:
            found = self.encode_with_offsets(texts)
            return Encoded([ids or [UNK_ID] for ids in found.ids], found.truncated)
        limit = length * CHARS_PER_TOKEN_BOUND if length else None
        clipped = [valid_unicode(t[:limit] if limit else t) for t in texts]
        encodings = self.tokenizer.encode_batch(clipped)
        return Encoded([enc.ids or [UNK_ID] for enc in encodings],
                       [bool(enc.overflowing) or _clipped(text, limit) for enc, text in zip(encodings, texts)])

    def encode_with_offsets(self, texts: list[str]) -> Encoded:
        """As `encode`, with each kept token's character offsets in its text; a text with no tokens gets no ids."""
        length = self.read_length
        if not length:
            encodings = self.tokenizer.encode_batch([valid_unicode(t) for t in texts])
            return Encoded([enc.ids for enc in encodings], [False] * len(texts), [enc.offsets for enc in encodings])
        head = length - min(self.tail_tokens, length)
        clipped, joins = [], []
        for text in texts:
            text = valid_unicode(text)
            if len(text) <= length * CHARS_PER_TOKEN_BOUND:
                clipped.append(text)
                joins.append(None)
            else:  # read the start and the end only, joined by a space; offsets past the join shift back
                start_part, tail_start = text[: head * CHARS_PER_TOKEN_BOUND], len(text) - (length - head) * CHARS_PER_TOKEN_BOUND
                clipped.append(f"{start_part} {text[tail_start:]}")
                joins.append((len(start_part) + 1, tail_start - len(start_part) - 1))
        out = Encoded([], [], [])
        for enc, join, text in zip(self._untruncated().encode_batch(clipped), joins, texts):
            ids, offsets = enc.ids, enc.offsets  # each read of these builds a new list: once per text, not once per token
            cut = len(ids) > length
            if cut:
                ids, offsets = ids[:head] + ids[len(ids) - (length - head):], offsets[:head] + offsets[len(offsets) - (length - head):]
            if join is not None:
                offsets = [(a + join[1], b + join[1]) if a >= join[0] else (a, b) for a, b in offsets]
            out.ids.append(ids)
            out.offsets.append(offsets)
            out.truncated.append(cut or (join is not None and bool(text[join[0] - 1:join[0] + join[1]].strip())))
        return out

    def _untruncated(self) -> Tokenizer:
        if self._whole is None:
            if not self.tokenizer.truncation:
                self._whole = self.tokenizer
            else:
                self._whole = Tokenizer.from_str(self.tokenizer.to_str())
                self._whole.no_truncation()
        return self._whole


def _clipped(text: str, limit: int | None) -> bool:
    """Whether reading only the first `limit` characters of `text` left out more than whitespace."""
    return limit is not None and len(text) > limit and not text[limit:].isspace()


def encode_dataset(encoder: TextEncoder, dataset, num_proc: int = 1):
    """A `datasets.Dataset` of token ids (`ids`, int32) for the `text` column, one row per text.

    Tokenized with `map(batched=True)` in `num_proc` worker processes. A dataset read
    from disk gets its result cached beside it (keyed by the tokenizer and its cut rule), so it is
    computed once and memory-mapped by every process that asks again.
    """
    import datasets

    features = datasets.Features({"ids": datasets.Sequence(datasets.Value("int32"))})
    return dataset.map(
        _encode_batch, batched=True, batch_size=1000, input_columns="text",
        fn_kwargs={"tokenizer_json": encoder.tokenizer.to_str(), "tail_tokens": encoder.tail_tokens},
        remove_columns=dataset.column_names, features=features, num_proc=num_proc if num_proc > 1 and len(dataset) > 1000 else None,
        desc="tokenizing",
    )


_ENCODERS: dict[int, TextEncoder] = {}  # per process: encoders rebuilt from their tokenizer's JSON, by its hash


def _encode_batch(texts: list[str], tokenizer_json: str, tail_tokens: int) -> dict[str, list[list[int]]]:
    key = hash((tokenizer_json, tail_tokens))
    if key not in _ENCODERS:
        _ENCODERS.clear()
        _ENCODERS[key] = TextEncoder(Tokenizer.from_str(tokenizer_json), tail_tokens)
    return {"ids": _ENCODERS[key].encode(texts).ids}


def valid_unicode(text: str) -> str:
    """`text`, with lone surrogates (which UTF-8 cannot hold, e.g. from JSON's "\\ud800") replaced by U+FFFD."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in text)
    return text


def load_tokenizer(path: str) -> Tokenizer:
    return Tokenizer.from_file(path)
