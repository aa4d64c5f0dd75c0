"""`find` end to end on tiny models: outputs, batch invariance, resume and refusal to mix runs."""

import json

import numpy as np
import pandas as pd
import pytest
from conftest import make_model, read_jsonl

from langneurons.errors import LangneuronsError
from langneurons.find.run import find, load_run
from langneurons.find.store import ResponseStore
from langneurons.find.tables import COLUMNS, select


def test_outputs_have_the_reference_format(tiny, corpus_dir, tmp_path):
    info = find(tmp_path / "run", corpus=str(corpus_dir), loaded=tiny, batch_size=4, progress=False)
    assert info.unique_sentences == 24 and info.modules * 0 == 0
    for lang in ("en", "de", "fr", "zh"):
        table = pd.read_csv(tmp_path / "run" / "expertise" / f"{lang}.csv")
        assert list(table.columns) == COLUMNS and len(table) == info.neurons
        assert (table["concept"] == lang).all() and table["ap"].between(0, 1).all()
    sentences = read_jsonl(tmp_path / "run" / "sentences.jsonl")
    assert len(sentences) == 24 and sentences[0]["positive_for"] == [sentences[0]["lang"]]
    assert len(sentences[0]["negative_for"]) == 3


def test_batched_equals_batch_size_one(tiny, corpus_dir, tmp_path):
    a = find(tmp_path / "a", corpus=str(corpus_dir), loaded=tiny, batch_size=8, progress=False)
    b = find(tmp_path / "b", corpus=str(corpus_dir), loaded=tiny, batch_size=1, progress=False)
    assert a.fingerprint == b.fingerprint
    sa = ResponseStore.open(tmp_path / "a" / "store", a.fingerprint, {}, 0)
    sb = ResponseStore.open(tmp_path / "b" / "store", b.fingerprint, {}, 0)
    for name in sa.files:
        np.testing.assert_allclose(sa.responses(name), sb.responses(name), rtol=1e-5, atol=1e-6)


def test_resume_computes_only_missing_rows(tiny_llama, corpus_dir, tmp_path):
    first = find(tmp_path / "run", corpus=str(corpus_dir), loaded=tiny_llama, batch_size=4, progress=False)
    full = pd.read_parquet(tmp_path / "run" / "expertise.parquet")
    store = ResponseStore.open(tmp_path / "run" / "store", first.fingerprint, {}, 0)
    store.done[[0, 5, 9]] = False  # as if the run had been killed before these rows
    store.flush()
    again = find(tmp_path / "run", corpus=str(corpus_dir), loaded=tiny_llama, batch_size=4, progress=False)
    assert again.timings["sentences_computed"] == 3 and again.timings["batches_computed"] == 1
    pd.testing.assert_frame_equal(full, pd.read_parquet(tmp_path / "run" / "expertise.parquet"), atol=1e-6)
    done = find(tmp_path / "run", corpus=str(corpus_dir), loaded=tiny_llama, progress=False)
    assert done.timings["batches_computed"] == 0


def test_refuses_to_mix_runs(corpus_dir, tmp_path):
    find(tmp_path / "run", corpus=str(corpus_dir), loaded=make_model("llama", seed=0), progress=False)
    with pytest.raises(LangneuronsError, match="another model, corpus or settings"):
        find(tmp_path / "run", corpus=str(corpus_dir), loaded=make_model("llama", seed=1), progress=False)
    with pytest.raises(LangneuronsError, match="another model, corpus or settings"):
        find(tmp_path / "run", corpus=str(corpus_dir), languages=["en", "de"],
             loaded=make_model("llama", seed=0), progress=False)


def test_selection(tiny_llama, corpus_dir, tmp_path):
    find(tmp_path / "run", corpus=str(corpus_dir), loaded=tiny_llama, progress=False)
    _, table = load_run(tmp_path / "run")
    de = table[table.concept == "de"]
    both = select(table, "de", 10, "both")
    assert len(both) == 10 and both["neuron"].is_unique
    assert set(both[both.side == "top"]["neuron"]) == set(select(table, "de", 5, "top")["neuron"])
    assert both[both.side == "top"]["ap"].min() >= de["ap"].quantile(0.9) - 1e-12
    assert select(table, "de", 0, "both").empty
    with pytest.raises(LangneuronsError, match="between 0 and the neuron count"):
        select(table, "de", -1, "top")
    with pytest.raises(LangneuronsError, match="between 0 and the neuron count"):
        select(table, "de", len(de) + 1, "top")


def test_expertise_matches_sklearn_on_recorded_responses(tiny_llama, corpus_dir, tmp_path):
    from sklearn.metrics import average_precision_score

    info = find(tmp_path / "run", corpus=str(corpus_dir), loaded=tiny_llama, progress=False)
    _, table = load_run(tmp_path / "run")
    store = ResponseStore.open(tmp_path / "run" / "store", info.fingerprint, {}, 0)
    rows_of = json.loads((tmp_path / "run" / "run.json").read_text())["sites"][4]  # an MLP site
    responses = np.asarray(store.responses(rows_of["name"]))
    sentences = read_jsonl(tmp_path / "run" / "sentences.jsonl")
    rows = [s["id"] for s in sentences if "fr" in s["positive_for"] + s["negative_for"]]
    labels = [("fr" in sentences[r]["positive_for"]) for r in rows]
    fr = table[(table.concept == "fr") & (table.layer == rows_of["name"])].sort_values("unit")
    expected = [average_precision_score(labels, responses[rows, u]) for u in range(rows_of["width"])]
    assert np.abs(fr["ap"].to_numpy() - expected).max() <= 1e-9
