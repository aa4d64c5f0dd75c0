"""`find --method lape|both` end to end on tiny models: one pass, same results as separate runs,
exact counts, resume, LAPE interventions, comparison, stability and report."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import SAMPLE, make_model

from langneurons.errors import LangneuronsError
from langneurons.find.record import COUNT, TOKENS
from langneurons.find.run import find
from langneurons.find.store import ResponseStore
from langneurons.hooks import hooks
from langneurons.model import activation_sites
from langneurons.report.write import write_report
from langneurons.steer.apply import steer
from langneurons.steer.intervene import Intervention, load_interventions
from langneurons.steer.steerable import method_defaults, open_run, sample_records
from langneurons.study.compare import compare
from langneurons.study.stability import stability


def counted_find(out, corpus, loaded, method, batch_size=4):
    """find(), also counting the forward passes through the decoder stack."""
    calls = []
    handle = loaded.model.base_model.register_forward_hook(lambda *_: calls.append(1))
    try:
        info = find(out, corpus=str(corpus), loaded=loaded, batch_size=batch_size, progress=False, method=method,
                    lape_top_rate=0.1)
    finally:
        handle.remove()
    return info, len(calls)


@pytest.fixture
def both_run(corpus_dir, tmp_path):
    loaded = make_model("llama")
    info, _ = counted_find(tmp_path / "both", corpus_dir, loaded, "both")
    return tmp_path / "both", info, loaded


def test_both_is_ap_plus_lape_in_one_pass(tiny, corpus_dir, tmp_path):
    ap, ap_calls = counted_find(tmp_path / "ap", corpus_dir, tiny, "ap")
    lape, lape_calls = counted_find(tmp_path / "lape", corpus_dir, tiny, "lape")
    both, both_calls = counted_find(tmp_path / "both", corpus_dir, tiny, "both")
    assert ap_calls == lape_calls == both_calls == both.timings["batches_computed"] == 6  # 24 sentences / 4
    assert ap.method == "ap" and ap.lape is None and not (tmp_path / "ap" / "lape.parquet").exists()
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "ap" / "expertise.parquet"),
                                  pd.read_parquet(tmp_path / "both" / "expertise.parquet"))
    for name in ("lape.parquet", "activation_expertise.parquet"):
        pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "lape" / name), pd.read_parquet(tmp_path / "both" / name))
    assert not (tmp_path / "lape" / "store").exists() and not (tmp_path / "lape" / "expertise.parquet").exists()
    assert both.method == "both" and lape.lape == both.lape
    summary = both.lape
    assert 0 < summary["selected"] <= round(0.1 * summary["neurons"])  # fewer when fewer units pass τ
    assert sum(summary["per_language"].values()) >= summary["selected"]
    for lang in both.languages:
        table = pd.read_csv(tmp_path / "both" / "lape" / f"{lang}.csv")
        assert list(table.columns) == ["layer", "block", "unit", "neuron", "lape", "lape_norm",
                                       *(f"p_{l}" for l in both.languages), "language"]
        assert (table["language"] == lang).all() and len(table) == summary["per_language"][lang]


def test_counts_equal_a_brute_force_count_per_sentence(both_run):
    run, info, loaded = both_run
    store = ResponseStore.open(run / "lape_store", info.lape["fingerprint"], {}, 0)
    act = activation_sites(loaded.model)
    texts = [json.loads(line)["text"] for line in (run / "sentences.jsonl").read_text().splitlines()]
    for row in (0, 7, 23):
        ids = loaded.tokenizer([texts[row]], return_tensors="pt")
        outputs = {}
        with torch.inference_mode(), hooks(loaded.model, {s.name: (lambda out, n=s.name: outputs.__setitem__(n, out[0]))
                                                           for s in act}):
            loaded.model.base_model(**ids)
        assert store.responses(TOKENS)[row, 0] == ids["input_ids"].shape[1]
        for site in act:
            assert np.array_equal(store.responses(site.name + COUNT)[row], (outputs[site.name] > 0).sum(0).numpy())
            np.testing.assert_allclose(store.responses(site.name)[row], outputs[site.name].mean(0).numpy(), atol=1e-6)


def test_resume_and_method_changes(both_run, corpus_dir, tmp_path):
    run, info, loaded = both_run
    full = pd.read_parquet(run / "lape.parquet")
    store = ResponseStore.open(run / "lape_store", info.lape["fingerprint"], {}, 0)
    store.done[[2, 11, 19]] = False  # killed after the AP rows, before the LAPE rows
    store.flush()
    again, calls = counted_find(run, corpus_dir, loaded, "both")
    assert again.timings["sentences_computed"] == 3 and calls == 1
    pd.testing.assert_frame_equal(full, pd.read_parquet(run / "lape.parquet"))
    with pytest.raises(LangneuronsError, match="holds a --method both run; --method ap would leave its LAPE"):
        counted_find(run, corpus_dir, loaded, "ap")
    ap, _ = counted_find(tmp_path / "grow", corpus_dir, loaded, "ap")
    grown, calls = counted_find(tmp_path / "grow", corpus_dir, loaded, "both")  # adds LAPE to an AP run
    assert calls == 6 and grown.fingerprint == ap.fingerprint
    pd.testing.assert_frame_equal(full, pd.read_parquet(tmp_path / "grow" / "lape.parquet"))
    with pytest.raises(LangneuronsError, match="--method 'every' is not one of ap, lape, both, diffmean, all"):
        counted_find(tmp_path / "x", corpus_dir, loaded, "every")


def test_lape_interventions(both_run, tmp_path):
    run, info, loaded = both_run
    steerable = open_run(run, loaded=loaded)
    activation = steerable.activation
    de = activation[(activation.concept == "de") & activation.lape_set].sort_values(["lape", "neuron"])
    plan = steerable.plan([Intervention("de", len(de), "top", "on_p50", method="lape")])
    assert set(plan.edits) <= {s["name"] for s in info.lape["sites"]} and plan.n_units == len(de)
    for layer, per in plan.edits.items():
        index, keep, add = per["all"].index, per["all"].keep, per["all"].add
        expected = de[de.layer == layer].set_index("unit").loc[index.tolist(), "on_p50"].to_numpy()
        assert keep.eq(0).all() and np.allclose(add.numpy(), expected, atol=1e-6)
    ids = loaded.tokenizer(["The cat sleeps."], return_tensors="pt")
    zero = steerable.plan([Intervention("de", len(de), "top", "zero", method="lape")])
    name = next(iter(zero.edits))
    seen = {}
    spy = {name: lambda out: seen.__setitem__("x", out.clone())}
    with torch.inference_mode(), steer(loaded.model, zero), hooks(loaded.model, spy):
        steered = loaded.model(**ids).logits
    assert seen["x"][..., zero.edits[name]["all"].index].abs().sum() == 0
    with torch.inference_mode():
        assert not torch.equal(steered, loaded.model(**ids).logits)
    with pytest.raises(LangneuronsError, match="ranks by AP; LAPE neurons are chosen with top"):
        Intervention("de", 2, "both", method="lape")
    with pytest.raises(LangneuronsError, match=f"de has {len(de)} LAPE neurons"):
        steerable.plan([Intervention("de", len(de) + 1, "top", method="lape")])
    records = sample_records(steerable, [Intervention("de", 2, "random", method="lape")], "unconditional", [1, 2],
                             batch_size=2, progress=False)
    assert len(records) == 2 and records[0]["setting"][0]["method"] == "lape"
    old = tmp_path / "old.json"  # an intervention file from before the method field
    old.write_text(json.dumps({"run": info.fingerprint, "interventions": [{"language": "de", "n": 4}]}))
    assert load_interventions(old).interventions[0].method == "ap"


def test_compare_stability_and_report(both_run):
    run, info, loaded = both_run
    tables = compare(run, sentences=2, steerable=open_run(run, loaded=loaded), progress=False)
    overlap = tables["compare_overlap"].set_index("language")
    assert overlap["n"].to_dict() == info.lape["per_language"]
    assert overlap["jaccard_gate"].between(0, 1).all() and (overlap["shared_gate"] <= overlap["n"]).all()
    ppl = tables["compare_perplexity"]
    assert len(ppl) == 4 + 2 * 4 * 4 and (ppl["perplexity"] > 1).all()
    layers = tables["compare_layers"]
    assert layers.groupby(["method", "language"])["count"].sum().unstack(0).eq(overlap["n"], axis=0).all().all()
    result = stability(run, resamples=3, progress=False)
    summary = result["stability_summary"]
    assert set(summary["method"]) == {"ap", "lape"} and summary["mean_jaccard"].dropna().between(0, 1).all()
    freq = result["stability_frequency"]
    assert freq["frequency"].between(0, 1).all() and freq.groupby(["method", "language"])["in_full"].sum().gt(0).any()
    assert {"max_ap", "p95_ap", "min_lape", "neurons"} <= set(result["stability_control"]["statistic"])
    html = write_report(run).read_text()
    assert "AP and LAPE compared" in html and "methods-perplexity-lape" in html and "methods-stability" in html
    assert (run / "analysis" / "compare_overlap.csv").exists()


def test_lape_only_run_steers_and_explains_what_it_lacks(corpus_dir, tmp_path):
    loaded = make_model("llama")
    counted_find(tmp_path / "lape", corpus_dir, loaded, "lape")
    steerable = open_run(tmp_path / "lape", loaded=loaded)
    assert steerable.expertise is None and steerable.plan([Intervention("de", 1, "top", "zero", method="lape")]).n_units == 1
    with pytest.raises(LangneuronsError, match="method ap: this run has no AP results"):
        steerable.plan([Intervention("de", 1)])
    with pytest.raises(LangneuronsError, match="a --method lape run has no AP results, which this needs"):
        write_report(tmp_path / "lape")
    counted_find(tmp_path / "ap", corpus_dir, loaded, "ap")
    ap_only = open_run(tmp_path / "ap", loaded=loaded)
    with pytest.raises(LangneuronsError, match="method lape: this run has no LAPE results"):
        ap_only.plan([Intervention("de", 1, "top", method="lape")])
    with pytest.raises(LangneuronsError, match="no LAPE results; run `langneurons find --method both"):
        method_defaults(ap_only, "lape", "de", None, None)
    with pytest.raises(LangneuronsError, match="no LAPE results; run `langneurons find --method both"):
        compare(tmp_path / "ap", steerable=ap_only)


def test_stability_guards(both_run):
    run, _, _ = both_run
    with pytest.raises(LangneuronsError, match="--resamples 1: at least 2"):
        stability(run, resamples=1)
    sentences = run / "sentences.jsonl"
    sentences.write_text(sentences.read_text().replace("Katze", "Hund"))
    with pytest.raises(LangneuronsError, match="changed since `find`"):
        stability(run, resamples=2, progress=False)


def test_hooks_count_only_real_tokens_in_padded_batches(corpus_dir, tmp_path):
    loaded = make_model("gpt2")
    counted_find(tmp_path / "b1", corpus_dir, loaded, "lape", batch_size=1)
    info, _ = counted_find(tmp_path / "b4", corpus_dir, loaded, "lape")
    one = ResponseStore.open(tmp_path / "b1" / "lape_store", info.lape["fingerprint"], {}, 0)
    four = ResponseStore.open(tmp_path / "b4" / "lape_store", info.lape["fingerprint"], {}, 0)
    lengths = [len(loaded.tokenizer(s)["input_ids"]) for lang in SAMPLE.values() for s in lang]
    assert sorted(one.responses(TOKENS)[:, 0].tolist()) == sorted(lengths)
    for name in one.files:
        np.testing.assert_allclose(one.responses(name), four.responses(name), atol=1e-6)


def test_cli_method_flags(saved_tiny, corpus_dir, tmp_path):
    from typer.testing import CliRunner

    from langneurons.cli.app import app

    def invoke(*args):
        result = CliRunner().invoke(app, [str(a) for a in args])
        return result.exit_code, result.output + (result.stderr if result.stderr_bytes is not None else "")

    out = tmp_path / "run"
    code, output = invoke("find", "--model", saved_tiny, "--corpus", corpus_dir, "--out", out, "--device", "cpu",
                          "--method", "both", "--lape-top-rate", "0.1")
    assert code == 0 and "LAPE: 10 of 96 activation units" in output, output
    sizes = json.loads((out / "run.json").read_text())["lape"]["per_language"]
    code, output = invoke("generate", out, "-l", "de", "--method", "lape", "--value", "zero", "--seeds", "1-2",
                          "--out", tmp_path / "s.jsonl")
    assert code == 0, output
    setting = json.loads((tmp_path / "s.jsonl").read_text().splitlines()[0])["setting"][0]
    assert setting["method"] == "lape" and setting["n"] == sizes["de"] and setting["selection"] == "top"
    code, output = invoke("perplexity", out, "-l", "de", "--method", "lape", "--sentences", "2")
    assert code == 0 and f"de top {sizes['de']} lape" in output, output
    code, output = invoke("sweep", out, "--languages", "de", "--ns", f"0,{sizes['de']}", "--seeds", "1",
                          "--ppl-sentences", "0", "--method", "lape")
    assert code == 0 and "lape" in (out / "sweep.csv").read_text(), output
    code, output = invoke("compare", out, "--sentences", "2")
    assert code == 0 and "jaccard_gate" in output, output
    code, output = invoke("stability", out, "--resamples", "2")
    assert code == 0 and "mean_jaccard" in output, output
    for args, message in ((["--method", "every"], "'every' is not one of 'ap',"),
                          (["--lape-top-rate", "0"], "--lape-top-rate 0.0: must be in (0, 1]")):
        code, output = invoke("find", "--model", saved_tiny, "--corpus", corpus_dir, "--out", tmp_path / "x", *args)
        assert code == 2 and message in output, output
    code, output = invoke("generate", out, "-l", "de", "--method", "lape", "--n", "999", "--out", tmp_path / "t.jsonl")
    assert code == 2 and "LAPE neurons; use --n" in output, output
