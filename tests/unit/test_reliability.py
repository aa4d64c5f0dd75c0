"""Damaged or hostile inputs refused cleanly (issue 32): corpora, labels that reach file names,
paths that would leave the RUN or replace its files."""

from __future__ import annotations

import json
import os
import warnings
from importlib.resources import files

import pytest

from langneurons.data import build_labels, load_corpus, load_jsonl
from langneurons.errors import LangneuronsError
from langneurons.io import check_label, check_not_run_file, inside

TWO = {"en": ["The cat sleeps.", "We walked home."], "de": ["Die Katze schläft.", "Wir gingen heim."]}


def folder(tmp_path, texts=TWO):
    path = tmp_path / "c"
    path.mkdir(exist_ok=True)
    for lang, lines in texts.items():
        (path / f"{lang}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# ------------------------------------------------------------ parallel JSONL keys


def test_builtin_jsonl_through_corpus_file_gets_no_id_language(tmp_path):
    """The package's own builtin.jsonl read as --corpus FILE: six languages, no `id`/`domain`."""
    path = tmp_path / "builtin.jsonl"
    path.write_text(files("langneurons").joinpath("corpus/builtin.jsonl").read_text(encoding="utf-8"),
                    encoding="utf-8")
    with pytest.warns(UserWarning, match=r"ignored key\(s\) domain, id"):
        corpus = load_corpus(str(path))
    assert sorted(corpus.languages) == sorted(["en", "de", "fr", "es", "zh", "ja"])


def test_parallel_jsonl_metadata_keys_are_ignored_and_named(tmp_path):
    path = tmp_path / "p.jsonl"
    rows = [{"id": "a1", "url": "http://x", "src": "web", "n": 3, "en": "One.", "de": "Eins."},
            {"id": "a2", "url": "http://y", "src": "web", "n": 4, "en": "Two.", "de": "Zwei."}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    with pytest.warns(UserWarning) as record:
        corpus = load_jsonl(path)
    assert corpus.languages == ["en", "de"]
    message = str(record[0].message)
    assert "id, n, src, url" in message and "languages read: en, de" in message


def test_indonesian_in_the_lang_text_shape_is_kept(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"lang": "id", "text": "Kucing tidur."}\n{"lang": "en", "text": "A cat."}\n',
                    encoding="utf-8")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_jsonl(path).languages == ["id", "en"]


@pytest.mark.parametrize("code", ["de\n", "de ", "DE", "../de"])
def test_language_code_with_newline_or_junk_is_refused(tmp_path, code):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"lang": code, "text": "Hallo."}) + "\n", encoding="utf-8")
    with pytest.raises(LangneuronsError, match=r"p\.jsonl:1: .* is not a language code"):
        load_jsonl(path)


# ------------------------------------------------------------ text that is not UTF-8


def test_utf16_without_bom_is_refused_with_file_and_line(tmp_path):
    path = folder(tmp_path)
    (path / "fr.txt").write_bytes("Le chat.\nLe chien.\n".encode("utf-16-le"))
    with pytest.raises(LangneuronsError, match=r"fr\.txt:1: holds NUL characters .*UTF-16"):
        load_corpus(str(path))


def test_utf16_with_bom_is_refused(tmp_path):
    path = folder(tmp_path)
    (path / "fr.txt").write_bytes("Le chat.\nLe chien.\n".encode("utf-16"))
    with pytest.raises(LangneuronsError, match=r"fr\.txt:1: not valid UTF-8"):
        load_corpus(str(path))


def test_nul_line_is_refused_with_line_number(tmp_path):
    path = folder(tmp_path)
    (path / "fr.txt").write_bytes(b"Le chat.\n\x00\x00\x00\nLe chien.\n")
    with pytest.raises(LangneuronsError, match=r"fr\.txt:2: holds NUL characters"):
        load_corpus(str(path))


def test_nul_escape_in_jsonl_is_refused(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"en": "One.", "de": "Eins."}\n{"en": "T\\u0000wo.", "de": "Zwei."}\n', encoding="utf-8")
    with pytest.raises(LangneuronsError, match=r"p\.jsonl:2: holds NUL characters"):
        load_jsonl(path)


# ------------------------------------------------------------ unreadable corpus files


def test_folder_named_like_a_language_file_is_refused(tmp_path):
    path = folder(tmp_path)
    (path / "ja.txt").mkdir()
    with pytest.raises(LangneuronsError, match=r"ja\.txt: is a folder, not a <lang>\.txt file"):
        load_corpus(str(path))


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file_is_refused(tmp_path):
    path = folder(tmp_path)
    (path / "de.txt").chmod(0)
    try:
        with pytest.raises(LangneuronsError, match=r"de\.txt: cannot be read \(permission denied\)"):
            load_corpus(str(path))
    finally:
        (path / "de.txt").chmod(0o644)


def test_symlink_loop_in_a_corpus_folder_is_refused(tmp_path):
    path = folder(tmp_path)
    (path / "fr.txt").symlink_to(path / "fr.txt")
    with pytest.raises(LangneuronsError, match=r"fr\.txt: cannot be read .*symlink loop"):
        load_corpus(str(path))


def test_corpus_path_that_is_a_symlink_loop_is_refused(tmp_path):
    loop = tmp_path / "loop.jsonl"
    loop.symlink_to(loop)
    with pytest.raises(LangneuronsError, match=r"a broken symlink or a symlink loop"):
        load_corpus(str(loop))


# ------------------------------------------------------------ paper sets without negatives


def paper_set(tmp_path, negatives):
    path = tmp_path / "paper"
    path.mkdir()
    for lang, pos in TWO.items():
        neg = negatives(lang)
        (path / f"{lang}.json").write_text(json.dumps({"concept": lang, "sentences": {
            "positive": pos, "negative": neg}}), encoding="utf-8")
    return path


def test_paper_set_language_without_negatives_is_refused_before_recording(tmp_path):
    """Negatives from a language outside the set only: refused by build_labels, which `find`
    calls before it loads the model."""
    path = paper_set(tmp_path, lambda lang: ["Le chat dort.", "Nous marchons."])
    corpus = load_corpus(f"paper:{path}")
    with pytest.raises(LangneuronsError, match=r"language\(s\) de, en have no negatives"):
        build_labels(corpus)


def test_paper_set_with_non_string_sentences_is_refused(tmp_path):
    path = paper_set(tmp_path, lambda lang: [1, 2])
    with pytest.raises(LangneuronsError, match=r"sentences\.negative must be a list of strings"):
        load_corpus(f"paper:{path}")


# ------------------------------------------------------------ labels and paths in the RUN


@pytest.mark.parametrize("value", ["/../../../../X", "de/..", "a\\b", "..", "de\n", "x\x00", "", "  "])
def test_check_label_refuses_path_parts_and_control_characters(value):
    with pytest.raises(LangneuronsError, match=r"--languages .*(must not hold|must not be empty)"):
        check_label(value, "--languages")


@pytest.mark.parametrize("value", ["de", "pt-BR", "model.layers.3.mlp", "zh_Hans"])
def test_check_label_keeps_plain_labels(value):
    assert check_label(value, "--languages") == value


def test_inside_refuses_paths_that_leave_the_run(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    assert inside(run, "sweep/de-both-0.json") == (run / "sweep" / "de-both-0.json").resolve()
    for escape in ["../X.json", "sweep/../../X.json", "/tmp/X.json", "sweep/" + "/../" * 6 + "X"]:
        with pytest.raises(LangneuronsError, match="outside the run folder"):
            inside(run, escape)
    (run / "link").symlink_to(tmp_path)
    with pytest.raises(LangneuronsError, match="outside the run folder"):
        inside(run, "link/X.json")
    assert not (tmp_path / "X.json").exists()


@pytest.mark.parametrize("name", ["run.json", "expertise.parquet", "sentences.jsonl", "store/meta.json",
                                  "expertise/x.parquet", "sweep/cell.json", "diffmean.npz", "shot_directions.npz", "."])
def test_outputs_that_would_replace_a_run_file_are_refused(tmp_path, name):
    run = tmp_path / "run"
    (run / "store").mkdir(parents=True)
    (run / "run.json").write_text("{}")
    with pytest.raises(LangneuronsError, match=r"--out .*would replace a file of the run"):
        check_not_run_file(run / name, "--out")
    with pytest.raises(LangneuronsError, match=r"would replace a file of the run"):
        check_not_run_file(tmp_path / "elsewhere" / ".." / "run" / name, "--save-intervention", run)


def test_output_naming_an_existing_folder_is_refused(tmp_path):
    (tmp_path / "samples").mkdir()
    with pytest.raises(LangneuronsError, match=r"--out .*samples: is a folder; give a file name"):
        check_not_run_file(tmp_path / "samples", "--out")
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text("{}")
    assert check_not_run_file(run / "top-de.csv", "--out") == (run / "top-de.csv").resolve()


# ------------------------------------------------------------ --seeds bound


def test_seeds_have_a_bound():
    from langneurons.steer.steerable import MAX_SEEDS, parse_seeds

    assert len(parse_seeds(f"1-{MAX_SEEDS}")) == MAX_SEEDS
    for spec in ["1-100000000", "1-60000,1-60000"]:
        with pytest.raises(LangneuronsError, match=r"--seeds .*: more than 100,000 seeds; use fewer"):
            parse_seeds(spec)
