"""Corpus loaders and the construction of positive/negative sets."""

import json

import numpy as np
import pytest

from langneurons.data import build_labels, load_corpus
from langneurons.errors import LangneuronsError

from conftest import PAPER_SETS, SAMPLE


def test_folder_loader_and_labels(corpus_dir):
    corpus = load_corpus(str(corpus_dir))
    assert sorted(corpus.languages) == sorted(SAMPLE)
    labels = build_labels(corpus, ["en", "de", "zh"], n=4)
    assert len(labels.texts) == 12  # 4 per language, each sentence recorded once
    for lang in labels.languages:
        rows, y = labels.indices_and_labels(lang)
        assert y.sum() == 4 and (~y).sum() == 8
        assert all(labels.lang[r] == lang for r in rows[y])
        assert all(labels.lang[r] != lang for r in rows[~y])


def test_adding_a_language_is_adding_a_file(corpus_dir):
    (corpus_dir / "ko.txt").write_text("고양이가 창가에서 잔다.\n우리는 새벽에 항구로 걸었다.\n", encoding="utf-8")
    assert "ko" in load_corpus(str(corpus_dir)).languages


def test_byte_order_marks_are_not_sentences(tmp_path):
    """A BOM at the start of a line (also of a line holding nothing else) is dropped, not kept as text."""
    folder = tmp_path / "c"
    folder.mkdir()
    (folder / "en.txt").write_bytes("\ufeffThe cat.\nThe dog.\n".encode())
    (folder / "de.txt").write_bytes("\ufeff\nDie Katze.\n\ufeff \nDer Hund.\n".encode())
    assert load_corpus(str(folder)).positives == {"de": ["Die Katze.", "Der Hund."],
                                                  "en": ["The cat.", "The dog."]}


def test_jsonl_both_shapes(tmp_path):
    flat = tmp_path / "flat.jsonl"
    flat.write_text('{"lang": "en", "text": "a b"}\n{"lang": "de", "text": "c d"}\n{"lang": "en", "text": "e"}\n')
    assert load_corpus(str(flat)).positives == {"en": ["a b", "e"], "de": ["c d"]}
    par = tmp_path / "par.jsonl"
    par.write_text(json.dumps({"en": "one", "fr": "un"}) + "\n" + json.dumps({"en": "two", "fr": "deux"}) + "\n")
    assert load_corpus(str(par)).positives == {"en": ["one", "two"], "fr": ["un", "deux"]}


def test_shared_sentence_keeps_both_labels_like_the_paper(tmp_path):
    (tmp_path / "en.txt").write_text("Hello there\nOK\nGood day\n")
    (tmp_path / "de.txt").write_text("Hallo du\nOK\nGuten Tag\n")
    with pytest.warns(UserWarning, match="2 sentence"):
        labels = build_labels(load_corpus(str(tmp_path)))
    ok = labels.texts.index("OK")
    assert len(labels.texts) == 5
    for lang in ("en", "de"):
        rows, y = labels.indices_and_labels(lang)
        assert sorted(y[rows == ok].tolist()) == [False, True]


@pytest.mark.parametrize(
    "files, message",
    [
        ({}, "no <lang>.txt"),
        ({"en.txt": "", "de.txt": "a\nb\n"}, "en.txt: the file is empty"),
        ({"en.txt": "only one\n", "de.txt": "a\nb\n"}, "language en has 1 sentence"),
        ({"notes.txt": "a\nb\n", "de.txt": "a\nb\n"}, "not a language code"),
    ],
)
def test_folder_errors(tmp_path, files, message):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(LangneuronsError, match=message):
        build_labels(load_corpus(str(tmp_path)))


def test_non_utf8_names_file_and_line(tmp_path):
    (tmp_path / "en.txt").write_bytes(b"fine\nbad \xff byte\n")
    with pytest.raises(LangneuronsError, match=r"en.txt:2: not valid UTF-8 \(byte 0xff at column 5\)"):
        load_corpus(str(tmp_path))


def test_malformed_json_names_file_and_line(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text('{"lang": "en", "text": "a"}\n{"lang": "en", "text": \n')
    with pytest.raises(LangneuronsError, match=r"c.jsonl:2: malformed JSON"):
        load_corpus(str(path))


def test_missing_path_and_unknown_language(corpus_dir):
    with pytest.raises(LangneuronsError, match="no such file or folder"):
        load_corpus(str(corpus_dir / "nope"))
    with pytest.raises(LangneuronsError, match="xx not in corpus"):
        build_labels(load_corpus(str(corpus_dir)), ["en", "xx"])


@pytest.mark.skipif(not PAPER_SETS.exists(), reason="../shared/data/paper-langsets absent")
def test_paper_sets_unique_counts_match_the_readme():
    corpus = load_corpus(f"paper:{PAPER_SETS}")
    assert len(build_labels(corpus).texts) == 5873
    assert len(build_labels(corpus, n=10).texts) == 349
    assert len(build_labels(corpus, n=100).texts) == 2840
    full = build_labels(corpus)
    assert all(len(full.positives[l]) == 500 and len(full.negatives[l]) == 2500 for l in full.languages)


@pytest.mark.skipif(not PAPER_SETS.exists(), reason="../shared/data/paper-langsets absent")
def test_paper_negative_blocks_are_in_their_language():
    corpus = load_corpus(f"paper:{PAPER_SETS}")
    labels = build_labels(corpus, n=40)
    for lang in labels.languages:
        langs = {labels.lang[r] for r in labels.negatives[lang]}
        assert lang not in langs and len(langs) == 5
    assert np.all([len(labels.negatives[l]) == 200 for l in labels.languages])
