"""Cut texts into sentences, one per line: unlabelled in-domain text for --distill-file (or --pretrain-file).

A distilled student learns best from texts the size of the ones it will judge: a sentence-level
classifier (SST-2) from sentences, not whole reviews. HTML tags are dropped, sentences end at
., ! or ?, and only those of --min-words to --max-words words are kept, shuffled:

    $ python scripts/sentences.py ../shared/data/imdb/train.csv imdb_sentences.txt
    $ python scripts/train.py --preset treebank --distill-file imdb_sentences.txt ...
"""

from __future__ import annotations

import argparse
import random
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sentiment_gru.data.load import load_unlabelled_texts
from sentiment_gru.errors import EXIT_USER_ERROR, UserError
from sentiment_gru.files import atomic_write

SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
HTML_TAG = re.compile(r"<[^>]+>")


def sentences(text: str, min_words: int, max_words: int) -> list[str]:
    """The sentences of `text` with min_words..max_words words, whitespace collapsed."""
    cut = (" ".join(s.split()) for s in SENTENCE_END.split(HTML_TAG.sub(" ", text)))
    return [s for s in cut if min_words <= len(s.split()) <= max_words]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", help="texts: a .txt file (one per line) or a CSV, JSON, JSON Lines or Parquet file")
    parser.add_argument("output", type=Path, help="the .txt file to write, one sentence per line")
    parser.add_argument("--text-column", help="the text column (detected: text, sentence, review, content)")
    parser.add_argument("--min-words", type=int, default=4)
    parser.add_argument("--max-words", type=int, default=50)
    parser.add_argument("--limit", type=int, default=0, help="at most this many sentences, drawn at random (0: all)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the shuffle")
    args = parser.parse_args(argv)
    if not 1 <= args.min_words <= args.max_words or args.limit < 0:
        print("error: need 1 <= --min-words <= --max-words and --limit >= 0.", file=sys.stderr)
        return EXIT_USER_ERROR
    import datasets

    datasets.disable_progress_bars()
    try:
        texts = load_unlabelled_texts(args.source, args.text_column, "source", flag="source")
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USER_ERROR
    found = [s for text in texts["text"] for s in sentences(text, args.min_words, args.max_words)]
    if not found:
        print(f"error: {args.source} holds no sentence of {args.min_words}-{args.max_words} words; lower --min-words "
              "or raise --max-words.", file=sys.stderr)
        return EXIT_USER_ERROR
    random.Random(args.seed).shuffle(found)
    kept = found[:args.limit] if args.limit else found
    atomic_write(args.output, lambda tmp: Path(tmp).write_text("\n".join(kept) + "\n", encoding="utf-8"))
    print(f"{len(kept):,} sentences of {len(found):,} from {len(texts):,} texts written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
