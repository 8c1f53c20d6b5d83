"""Web text (tweets, product reviews, comments) normalised inside the tokenizer: the rules of `--web-text`, one table.

Each rule is one `tokenizers` `Replace` of an Oniguruma regular expression. They run after NFKC (so a full-width
`！` or `＠` is already `!` or `@`) and before BertNormalizer lowercases (so ALL CAPS can still be seen), and they
are saved in `tokenizer.json`'s normalizer: every reader of a model folder (torch, ONNX, the service) applies them.

`Replace` takes its replacement literally (`$1` and `\\1` stay as written), but its pattern may hold
back-references, look-ahead and look-behind. So a rule that keeps part of what it finds matches only what goes:
an elongated letter is deleted where two more of it follow, and the ALL CAPS marker is inserted at an empty match
in front of the word. Every pattern reads a text in linear time (no nested repeats; possessive runs in the URL rule).

A model folder's tokenizer may hold only these patterns and the HTML one (`inference.folder`), so a model trained
before a pattern changes is refused after: keep a released pattern readable, e.g. by leaving it in `PATTERNS`.
"""

from __future__ import annotations

from typing import NamedTuple

from tokenizers import Regex, normalizers

WORD_AFTER = r"(?![\p{L}\p{N}_])"  # not followed by a letter, digit or _: ":P" in ":Pierre" is no emoticon
WORD_BEFORE = r"(?<![\p{L}\p{N}_])"
AFTER_A_NON_WORD = r"(?<=[^\p{L}\p{N}_])"  # as WORD_BEFORE, but never at a text's start (see web_text_normalizers)
URL_END = r"""[.,;:!?)\]'"]"""  # what may close a sentence after a URL, and is not part of it


class Rule(NamedTuple):
    """One step of the web-text normalizer."""

    name: str
    pattern: str  # an Oniguruma regular expression (tokenizers' Regex)
    replacement: str  # literal text; the spaces around a word keep it apart from its neighbours
    why: str
    examples: tuple[tuple[str, str], ...]  # (text, what the whole normalizer makes of it, spaces collapsed)


def _emoticon(*faces: str, emoji: str = "") -> str:
    """A pattern for text faces (each ending where a word cannot go on) or any one of the `emoji` characters."""
    found = [f"(?:{'|'.join(faces)}){WORD_AFTER}"] if faces else []
    return "|".join(found + ([f"[{emoji}]"] if emoji else []))


RULES: tuple[Rule, ...] = (
    Rule("emoji form", r"[\x{FE0E}\x{FE0F}\x{1F3FB}-\x{1F3FF}]", "",
         "a heart is one emoji whether drawn as text or picture, a thumb one whatever its skin tone",
         (("👍🏽 ❤️", "emothumbsup emolove"),)),
    Rule("url", rf"(?i)(?:https?://|www\.)(?:[^\s<>\"'.,;:!?)\]]++|{URL_END}++(?=[^\s<>\"'.,;:!?)\]]))*+", " httpurl ",
         "an address says nothing of sentiment, and each one would be new pieces; punctuation that closes the sentence stays",
         (("see https://t.co/Ab1?x=2.", "see httpurl ."), ("(www.example.com/a_b)", "( httpurl )"))),
    Rule("mention", r"(?<![\p{L}\p{N}_@])@[A-Za-z0-9_]+", " @user ",
         "who is addressed is no sentiment; an e-mail address keeps its @",
         (("@bob_99 thanks", "@user thanks"), ("bob@mail.com", "bob@mail.com"))),
    Rule("hashtag", r"(?<![\p{L}\p{N}_&#])#(?=\p{L})", "",
         "#love is the word love: hashtags carry sentiment (#1 keeps its #)",
         (("#Love it", "love it"), ("#1 film", "#1 film"))),
    Rule("emoji run", r"(\p{Extended_Pictographic})(?=\1\1)", "",
         "three or more of one emoji in a row become two, as letters do",
         (("😂😂😂😂", "emolaugh emolaugh"),)),
    Rule("angry face", _emoticon(r">:-?\(+", emoji="😡😠🤬👿😤"), " emoangry ", "anger", ((">:( 😡", "emoangry emoangry"),)),
    Rule("crying face", _emoticon(r":'-?\(+", r":,\(+", emoji="😢😭😿"), " emocry ", "tears",
         ((":'( 😭", "emocry emocry"),)),
    Rule("sad face", _emoticon(r"[:=]-?[(\[]+", emoji="🙁☹😞😔😟😥😩😫💔"), " emosad ", "sadness; a broken heart too",
         ((":( :-( ☹️", "emosad emosad emosad"),)),
    Rule("smiling face", _emoticon(r"[:=]-?[)\]]+", rf"{WORD_BEFORE}\^_*\^", emoji="🙂😊☺😀😃😄😁🤗😇😌"), " emosmile ",
         "a smile", ((":) :-))) ^_^ 😊", "emosmile emosmile emosmile emosmile"),)),
    Rule("laughing face", _emoticon(r"[:=]-?D+", rf"{WORD_BEFORE}[xX]-?D+", emoji="😂🤣😆😅😹"), " emolaugh ", "laughter",
         ((":D xD XDD 🤣", "emolaugh emolaugh emolaugh emolaugh"), ("0xDEAD", "0xdead"))),
    Rule("winking face", _emoticon(r";-?[)\]D]+", emoji="😉😜"), " emowink ", "a wink: often irony",
         ((";) 😉", "emowink emowink"),)),
    Rule("tongue face", _emoticon(r"[:;=]-?[pP]+", emoji="😛😝😋"), " emotongue ", "teasing",
         ((":P :-p 😛", "emotongue emotongue emotongue"), ("note:Paris", "note:paris"))),
    Rule("heart", _emoticon(rf"{WORD_BEFORE}<3+", emoji="❤♥♡😍🥰😘😻💕💖💗💓💞💘💝🤩😚😙🧡💛💚💙💜🖤🤍🤎"), " emolove ",
         "love", (("i <3 it 😍", "i emolove it emolove"), ("x<30", "x<30"))),
    Rule("surprised face", _emoticon(r"[:=]-?[oO]", emoji="😮😯😲😱"), " emosurprise ", "surprise, good or bad",
         ((":O 😱", "emosurprise emosurprise"),)),
    Rule("annoyed face", _emoticon(r"[:=]-?[/\\|]", rf"{WORD_BEFORE}-_+-", emoji="🙄😒😑😐😕🤨🤦"), " emoannoyed ",
         "doubt, boredom, an eye-roll", ((":/ -_- 🙄", "emoannoyed emoannoyed emoannoyed"), ("C:/Users", "c:/users"))),
    Rule("approval", _emoticon(emoji="👍👌👏🙌💯🔥"), " emothumbsup ", "thumbs up, applause, 100",
         (("👍👏", "emothumbsup emothumbsup"),)),
    Rule("disapproval", _emoticon(emoji="👎💩🤮🤢"), " emothumbsdown ", "thumbs down, disgust",
         (("👎", "emothumbsdown"),)),
    Rule("elongation", r"(?i)(\p{L})(?=\1\1)", "",
         "three or more of one letter become two: soooo is soo (emphasis kept apart from so), gooood is good",
         (("soooo gooood NOOOO", "soo good allcaps noo"),)),
    Rule("?! run", r"(?<![!?])(?=[!?]*?(?:!\?|\?!))[!?]++", "?!", "a run of ! and ? mixed is one disbelief",
         (("what?!?!", "what?!"),)),
    Rule("! run", r"!{2,}", "!!", "emphasis, however long the run", (("great!!!!", "great!!"),)),
    Rule("? run", r"\?{2,}", "??", "insistence, however long the run", (("why???", "why??"),)),
    Rule("dots", r"\.{4,}", "...", "a trailing off, however long", (("well.......", "well..."),)),
    Rule("all caps", rf"{AFTER_A_NON_WORD}(?=\p{{Lu}}{{2,}}{WORD_AFTER})", " allcaps ",
         "shouting, which lowercasing would lose: a marker before each word of two or more capitals (acronyms too)",
         (("I HATE it", "i allcaps hate it"), ("MP3 and DVD", "mp3 and allcaps dvd"))),
    Rule("emoji apart", r"(?<=[\s\S])(?=\p{Extended_Pictographic})|(?<=\p{Extended_Pictographic})", " ",
         "every other emoji is a word of its own, not glued to the word before it", (("great🎬film", "great 🎬 film"),)),
)

PATTERNS = frozenset(rule.pattern for rule in RULES)  # what a tokenizer.json trained with --web-text may hold


def web_text_normalizers() -> list[normalizers.Normalizer]:
    """The rules as `tokenizers` normalizers, in order: they go after NFKC and before lowercasing.

    An empty match at the very start of a text leaves tokenizers' alignments one short, and a later step panics on
    it (huggingface/tokenizers#736). So the rules that insert text at an empty match (the ALL CAPS marker, the spaces
    around an emoji) need a character before it, and a space goes first, so that a text's first word has one; the
    pre-tokenizer drops it.
    """
    return [normalizers.Prepend(" "), *(normalizers.Replace(Regex(rule.pattern), rule.replacement) for rule in RULES)]
