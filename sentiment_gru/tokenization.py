"""A subword tokenizer trained on the training split, saved as `tokenizer.json`."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

from .config import TokenizerConfig

PAD_TOKEN = "[PAD]"
UNK_TOKEN = "[UNK]"
PAD_ID = 0  # the trainers give special tokens the first ids, in order
UNK_ID = 1
CHARS_PER_TOKEN_BOUND = 64


def train_tokenizer(texts: Iterable[str], config: TokenizerConfig) -> Tokenizer:
    """Train a BPE or WordPiece tokenizer on `texts`, truncating to `config.max_length`; with
    `config.lexicon`, the lexicon's common words are added as whole-word tokens."""
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
    # NFKC folds look-alike characters; BertNormalizer drops control characters and splits CJK ideographs.
    steps = [normalizers.NFKC(), normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, lowercase=config.lowercase, strip_accents=config.lowercase)]
    tokenizer.normalizer = normalizers.Sequence(steps)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.train_from_iterator(_batches(texts), trainer=trainer)
    assert [tokenizer.token_to_id(t) for t in special] == [PAD_ID, UNK_ID]
    if config.lexicon:
        from .lexicon import add_lexicon_tokens, load_lexicon

        add_lexicon_tokens(tokenizer, load_lexicon())
    tokenizer.enable_truncation(max_length=config.max_length)
    return tokenizer


def _batches(texts: Iterable[str], size: int = 1000) -> Iterator[list[str]]:
    batch: list[str] = []
    for text in texts:
        batch.append(text)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def encode(tokenizer: Tokenizer, texts: list[str]) -> list[list[int]]:
    """Token ids of each text, truncated; a text with no tokens becomes [UNK] so it still has length 1.

    Only the first `CHARS_PER_TOKEN_BOUND` characters per kept token are read, so a
    megabyte of text costs no more than a long review.
    """
    truncation = tokenizer.truncation
    limit = truncation["max_length"] * CHARS_PER_TOKEN_BOUND if truncation else None
    clipped = [_valid_unicode(t[:limit] if limit else t) for t in texts]
    return [enc.ids or [UNK_ID] for enc in tokenizer.encode_batch(clipped)]


def encode_dataset(tokenizer: Tokenizer, dataset, num_proc: int = 1):
    """A `datasets.Dataset` of token ids (`ids`, int32) for the `text` column, one row per text.

    Tokenized with `map(batched=True)` in `num_proc` worker processes. A dataset read
    from disk gets its result cached beside it (keyed by the tokenizer), so it is
    computed once and memory-mapped by every process that asks again.
    """
    import datasets

    features = datasets.Features({"ids": datasets.Sequence(datasets.Value("int32"))})
    return dataset.map(
        _encode_batch, batched=True, batch_size=1000, input_columns="text", fn_kwargs={"tokenizer_json": tokenizer.to_str()},
        remove_columns=dataset.column_names, features=features, num_proc=num_proc if num_proc > 1 and len(dataset) > 1000 else None,
        desc="tokenizing",
    )


_TOKENIZERS: dict[int, Tokenizer] = {}  # per process: tokenizers rebuilt from their JSON, by its hash


def _encode_batch(texts: list[str], tokenizer_json: str) -> dict[str, list[list[int]]]:
    key = hash(tokenizer_json)
    if key not in _TOKENIZERS:
        _TOKENIZERS.clear()
        _TOKENIZERS[key] = Tokenizer.from_str(tokenizer_json)
    return {"ids": encode(_TOKENIZERS[key], texts)}


def _valid_unicode(text: str) -> str:
    """`text`, with lone surrogates (which UTF-8 cannot hold, e.g. from JSON's "\\ud800") replaced by U+FFFD."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in text)
    return text


def load_tokenizer(path: str) -> Tokenizer:
    return Tokenizer.from_file(path)
