"""A subword tokenizer trained on the training split, saved as `tokenizer.json`."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

from ..config import TokenizerConfig

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
    # NFKC folds look-alike characters; BertNormalizer drops control characters and splits CJK ideographs.
    steps = [normalizers.NFKC(), normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, lowercase=config.lowercase, strip_accents=config.lowercase)]
    if config.strip_html:  # in the tokenizer itself, so every text it reads later gets the same treatment
        steps.insert(0, normalizers.Replace(Regex(HTML_TAG), " "))
    tokenizer.normalizer = normalizers.Sequence(steps)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.train_from_iterator(_batches(texts), trainer=trainer)
    assert [tokenizer.token_to_id(t) for t in special] == [PAD_ID, UNK_ID]
    if config.lexicon:
        from .lexicon import add_lexicon_tokens, load_lexicon

        add_lexicon_tokens(tokenizer, load_lexicon())
    tokenizer.enable_truncation(max_length=config.read_length)
    return tokenizer


def for_training(tokenizer: Tokenizer, config: TokenizerConfig) -> Tokenizer:
    """`tokenizer`, or where evaluation and prediction read longer texts (`config.predict_length`), a copy that cuts
    training texts at `config.max_length`."""
    if config.read_length == config.max_length:
        return tokenizer
    copy = Tokenizer.from_str(tokenizer.to_str())
    copy.enable_truncation(max_length=config.max_length)
    return copy


def _batches(texts: Iterable[str], size: int = 1000) -> Iterator[list[str]]:
    batch: list[str] = []
    for text in texts:
        batch.append(text)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def encode(tokenizer: Tokenizer, texts: list[str], tail_tokens: int = 0) -> list[list[int]]:
    """Token ids of each text, truncated; a text with no tokens becomes [UNK] so it still has length 1.

    A text longer than the tokenizer's maximum keeps its start; with `tail_tokens`, its first
    max_length - tail_tokens tokens and its last `tail_tokens` (a long review's verdict is often at its
    end). Only about `CHARS_PER_TOKEN_BOUND` characters per kept token are read from either end, so a
    megabyte of text costs no more than a long review.
    """
    if not tail_tokens:
        truncation = tokenizer.truncation
        limit = truncation["max_length"] * CHARS_PER_TOKEN_BOUND if truncation else None
        clipped = [valid_unicode(t[:limit] if limit else t) for t in texts]
        return [enc.ids or [UNK_ID] for enc in tokenizer.encode_batch(clipped)]
    return [ids or [UNK_ID] for ids, _ in encode_with_offsets(tokenizer, texts, tail_tokens)]


def encode_with_offsets(tokenizer: Tokenizer, texts: list[str], tail_tokens: int = 0) -> list[tuple[list[int], list[tuple[int, int]]]]:
    """As `encode`, with each kept token's (start, end) character offsets in its text; a text with no tokens gets no ids."""
    truncation = tokenizer.truncation
    if not truncation:
        return [(enc.ids, enc.offsets) for enc in tokenizer.encode_batch([valid_unicode(t) for t in texts])]
    length = truncation["max_length"]
    head = length - min(tail_tokens, length)
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
    out = []
    for enc, join in zip(_untruncated(tokenizer).encode_batch(clipped), joins):
        keep = range(len(enc.ids)) if len(enc.ids) <= length else [*range(head), *range(len(enc.ids) - (length - head), len(enc.ids))]
        offsets = [enc.offsets[i] for i in keep]
        if join is not None:
            offsets = [(a + join[1], b + join[1]) if a >= join[0] else (a, b) for a, b in offsets]
        out.append(([enc.ids[i] for i in keep], offsets))
    return out


_UNTRUNCATED: dict[int, tuple[Tokenizer, Tokenizer]] = {}  # id(tokenizer) -> (tokenizer, a copy without truncation)


def _untruncated(tokenizer: Tokenizer) -> Tokenizer:
    """A copy of `tokenizer` that keeps every token (made once per tokenizer; the original stays as it is)."""
    found = _UNTRUNCATED.get(id(tokenizer))
    if found is None or found[0] is not tokenizer:
        copy = Tokenizer.from_str(tokenizer.to_str())
        copy.no_truncation()
        found = _UNTRUNCATED[id(tokenizer)] = (tokenizer, copy)
    return found[1]


def encode_dataset(tokenizer: Tokenizer, dataset, num_proc: int = 1, tail_tokens: int = 0):
    """A `datasets.Dataset` of token ids (`ids`, int32) for the `text` column, one row per text.

    Tokenized with `map(batched=True)` in `num_proc` worker processes. A dataset read
    from disk gets its result cached beside it (keyed by the tokenizer), so it is
    computed once and memory-mapped by every process that asks again.
    """
    import datasets

    features = datasets.Features({"ids": datasets.Sequence(datasets.Value("int32"))})
    return dataset.map(
        _encode_batch, batched=True, batch_size=1000, input_columns="text", fn_kwargs={"tokenizer_json": tokenizer.to_str(), "tail_tokens": tail_tokens},
        remove_columns=dataset.column_names, features=features, num_proc=num_proc if num_proc > 1 and len(dataset) > 1000 else None,
        desc="tokenizing",
    )


_TOKENIZERS: dict[int, Tokenizer] = {}  # per process: tokenizers rebuilt from their JSON, by its hash


def _encode_batch(texts: list[str], tokenizer_json: str, tail_tokens: int) -> dict[str, list[list[int]]]:
    key = hash(tokenizer_json)
    if key not in _TOKENIZERS:
        _TOKENIZERS.clear()
        _TOKENIZERS[key] = Tokenizer.from_str(tokenizer_json)
    return {"ids": encode(_TOKENIZERS[key], texts, tail_tokens)}


def valid_unicode(text: str) -> str:
    """`text`, with lone surrogates (which UTF-8 cannot hold, e.g. from JSON's "\\ud800") replaced by U+FFFD."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in text)
    return text


def load_tokenizer(path: str) -> Tokenizer:
    return Tokenizer.from_file(path)
