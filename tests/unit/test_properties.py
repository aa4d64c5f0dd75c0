"""Property tests: label construction and every loader round-trip arbitrary sentences."""

import json
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from langneurons.data import Corpus, build_labels, load_corpus

LANGS = ["en", "de", "fr", "zh"]
# what a text line can hold: a leading byte-order mark and surrounding spaces are not content
sentence = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), min_size=1, max_size=30).map(
    lambda t: t.lstrip("\ufeff").strip()).filter(bool)
corpora = st.fixed_dictionaries({l: st.lists(sentence, min_size=2, max_size=8) for l in LANGS})


@settings(max_examples=50, deadline=None)
@given(corpora, st.one_of(st.none(), st.integers(1, 10)))
def test_labels_follow_the_definition(sentences, n):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        labels = build_labels(Corpus("x", sentences), None, n)
    assert set(labels.texts) == {t for v in sentences.values() for t in v[:n]}
    assert len(labels.texts) == len(set(labels.texts))
    for lang in LANGS:
        rows, y = labels.indices_and_labels(lang)
        assert [labels.texts[r] for r in rows[y]] == sentences[lang][:n]
        expected_neg = [t for o in labels.languages if o != lang for t in sentences[o][:n]]
        assert [labels.texts[r] for r in rows[~y]] == expected_neg
        assert np.all(rows < len(labels.texts))


@settings(max_examples=30, deadline=None)
@given(corpora)
def test_folder_and_jsonl_loaders_round_trip(sentences):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "c"
        folder.mkdir()
        for lang, texts in sentences.items():
            (folder / f"{lang}.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
        assert load_corpus(str(folder)).positives == sentences
        flat = Path(tmp) / "flat.jsonl"
        flat.write_text("".join(json.dumps({"lang": l, "text": t}, ensure_ascii=False) + "\n"
                                for l, v in sentences.items() for t in v), encoding="utf-8")
        assert load_corpus(str(flat)).positives == sentences
        paper = Path(tmp) / "paper"
        paper.mkdir()
        for lang, texts in sentences.items():
            k = len(texts)
            negative = [t for o in LANGS if o != lang for t in (sentences[o] * k)[:k]]
            (paper / f"{lang}.json").write_text(json.dumps(
                {"concept": lang, "sentences": {"positive": texts, "negative": negative}}), encoding="utf-8")
        loaded = load_corpus(f"paper:{paper}")
        assert loaded.positives == sentences
