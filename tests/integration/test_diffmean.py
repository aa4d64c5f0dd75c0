"""`find --method diffmean|all` on tiny models: the residual means recorded in the same pass, the
directions against a brute-force computation, resume; the DiffMean intervention; the GGUF export."""

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import make_model

from langneurons.errors import LangneuronsError
from langneurons.find.diffmean import Directions
from langneurons.find.info import RunInfo
from langneurons.find.run import find
from langneurons.io import read_jsonl
from langneurons.model import find_blocks


def counted_find(out, corpus, loaded, method, batch_size=4):
    calls = []
    handle = loaded.model.base_model.register_forward_hook(lambda *_: calls.append(1))
    try:
        info = find(out, corpus=str(corpus), loaded=loaded, batch_size=batch_size, progress=False, method=method,
                    lape_top_rate=0.1)
    finally:
        handle.remove()
    return info, len(calls)


@pytest.fixture
def all_run(corpus_dir, tmp_path):
    loaded = make_model("llama")
    info, _ = counted_find(tmp_path / "all", corpus_dir, loaded, "all")
    return tmp_path / "all", info, loaded


def brute_states(loaded, texts):
    """Per block, each sentence's mean output state and mean per-token norm over the tokens after the
    first (BOS), one sentence at a time (no padding)."""
    _, blocks = find_blocks(loaded.model)
    means = [[] for _ in blocks]
    norms = [[] for _ in blocks]
    for text in texts:
        ids = loaded.tokenizer(text)["input_ids"]
        captured = {}
        handles = [b.register_forward_hook(lambda _m, _a, out, i=i: captured.__setitem__(
            i, (out[0] if isinstance(out, tuple) else out)[0].detach())) for i, b in enumerate(blocks)]
        try:
            with torch.no_grad():
                loaded.model.base_model(input_ids=torch.tensor([ids]))
        finally:
            for h in handles:
                h.remove()
        for i in range(len(blocks)):
            means[i].append(captured[i][1:].mean(0).numpy())
            norms[i].append(captured[i][1:].norm(dim=-1).mean().item())
    return np.array(means), np.array(norms)


@pytest.mark.parametrize("family", ["llama", "gemma3", "gpt2"])
def test_diffmean_in_one_pass_matches_brute_force(family, corpus_dir, tmp_path):
    loaded = make_model(family)
    info, calls = counted_find(tmp_path / "run", corpus_dir, loaded, "diffmean")
    assert calls == info.timings["batches_computed"] == 6 and info.method == "diffmean"
    assert info.lape is None and info.diffmean["blocks"] == info.blocks
    assert not (tmp_path / "run" / "store").exists() and not (tmp_path / "run" / "expertise.parquet").exists()
    sentences = read_jsonl(tmp_path / "run" / "sentences.jsonl")
    means, norms = brute_states(loaded, [s["text"] for s in sentences])
    d = Directions.read(tmp_path / "run")
    assert d.languages == tuple(info.languages) and d.diffmean.shape == (len(d.languages), info.blocks, 32)
    for li, lang in enumerate(d.languages):
        pos = [s["id"] for s in sentences if lang in s["positive_for"]]
        neg = [s["id"] for s in sentences if lang in s["negative_for"]]
        centre = np.mean([means[:, [s["id"] for s in sentences if l in s["positive_for"]]].mean(1)
                          for l in d.languages], axis=0)
        np.testing.assert_allclose(d.diffmean[li], means[:, pos].mean(1) - means[:, neg].mean(1), atol=2e-5)
        np.testing.assert_allclose(d.recover[li], means[:, pos].mean(1) - centre, atol=2e-5)
        np.testing.assert_allclose(d.means[li], means[:, pos].mean(1), atol=2e-5)
    np.testing.assert_allclose(d.typical_norm, norms.mean(1), rtol=1e-4)
    summary = pd.read_parquet(tmp_path / "run" / "diffmean.parquet")
    assert len(summary) == len(d.languages) * info.blocks and (summary["schema"] == 2).all()
    np.testing.assert_allclose(summary["diffmean_norm"], np.linalg.norm(d.diffmean, axis=-1).ravel(), rtol=1e-5)


def test_all_is_ap_lape_diffmean_in_one_pass_and_resumes(corpus_dir, tmp_path):
    loaded = make_model("llama")
    both, _ = counted_find(tmp_path / "both", corpus_dir, loaded, "both")
    info, calls = counted_find(tmp_path / "all", corpus_dir, loaded, "all")
    assert calls == 6 and info.method == "all" and info.lape == both.lape and info.diffmean is not None
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "both" / "expertise.parquet"),
                                  pd.read_parquet(tmp_path / "all" / "expertise.parquet"))
    first = Directions.read(tmp_path / "all")
    again, calls = counted_find(tmp_path / "all", corpus_dir, loaded, "all")
    assert calls == 0 and again.timings["sentences_computed"] == 0
    np.testing.assert_array_equal(first.diffmean, Directions.read(tmp_path / "all").diffmean)
    stored = (tmp_path / "all" / "diffmean.npz").read_bytes()
    (tmp_path / "all" / "diffmean.npz").write_bytes(stored[: len(stored) // 2])  # truncated from outside
    with pytest.raises(LangneuronsError, match="diffmean.npz is damaged"):
        Directions.read(tmp_path / "all")
    (tmp_path / "all" / "diffmean.npz").write_bytes(stored)
    # both → all records only the residual store, in one pass over the stored rows
    info, calls = counted_find(tmp_path / "both", corpus_dir, loaded, "all")
    assert calls == 6 and info.method == "all"
    np.testing.assert_allclose(first.diffmean, Directions.read(tmp_path / "both").diffmean, atol=1e-5)
    with pytest.raises(LangneuronsError, match="--method all"):
        counted_find(tmp_path / "all", corpus_dir, loaded, "diffmean")
    assert RunInfo.read(tmp_path / "all").methods == ("ap", "lape", "diffmean")


def test_padding_is_excluded(corpus_dir, tmp_path):
    loaded = make_model("gemma3")
    one, _ = counted_find(tmp_path / "one", corpus_dir, loaded, "diffmean", batch_size=1)
    many, _ = counted_find(tmp_path / "many", corpus_dir, loaded, "diffmean", batch_size=8)
    a, b = Directions.read(tmp_path / "one"), Directions.read(tmp_path / "many")
    np.testing.assert_allclose(a.diffmean, b.diffmean, atol=2e-5)
    np.testing.assert_allclose(a.typical_norm, b.typical_norm, rtol=1e-5)


@pytest.fixture(scope="module")
def gemma_run(tmp_path_factory):
    from conftest import SAMPLE

    folder = tmp_path_factory.mktemp("dm")
    corpus = folder / "corpus"
    corpus.mkdir()
    for lang, sentences in SAMPLE.items():
        (corpus / f"{lang}.txt").write_text("\n".join(sentences) + "\n", encoding="utf-8")
    loaded = make_model("gemma3")
    counted_find(folder / "run", corpus, loaded, "diffmean")
    return folder / "run", loaded


def block_outputs(loaded, ids, steering=None, fed=0):
    """Each block's output hidden state for one forward of `ids`, under `steering` (a Plan)."""
    from langneurons.hooks import hooks
    from langneurons.steer.apply import steer

    path, blocks = find_blocks(loaded.model)
    seen = {}
    grab = lambda i: (lambda out: seen.__setitem__(i, (out[0] if isinstance(out, tuple) else out).clone()))
    with steer(loaded.model, steering) as state, hooks(loaded.model, {f"{path}.{i}": grab(i)
                                                                        for i in range(len(blocks))}):
        state.fed = fed
        with torch.no_grad():
            loaded.model(input_ids=ids)
    return seen


def test_shift_adds_alpha_norm_direction_at_its_block_and_positions(gemma_run):
    from langneurons.steer.intervene import Intervention, parse_strength
    from langneurons.steer.steerable import open_run

    run, loaded = gemma_run
    steerable = open_run(run, loaded=loaded)
    d = steerable.directions
    ids = torch.tensor([loaded.tokenizer("Die Katze schläft.")["input_ids"]])
    plain = block_outputs(loaded, ids)
    iv = Intervention("de", value="add:3", blocks="1", method="diffmean")
    assert parse_strength(iv.value) == ("add", 3.0) and iv.label == "de-diffmean-add:3-all-blocks1"
    v = d.vector("de", 1)
    expected = torch.from_numpy(3 * d.typical_norm[1] * v / np.linalg.norm(v))
    edited = block_outputs(loaded, ids, steerable.plan([iv]))
    torch.testing.assert_close(edited[0], plain[0], rtol=0, atol=0)  # before the block: untouched
    torch.testing.assert_close(edited[1] - plain[1], expected.expand_as(plain[1]), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(edited[2], plain[2])  # later blocks read the edited stream
    # positions: `generated` edits nothing in the prompt pass, everything once tokens are fed back
    later = steerable.plan([Intervention("de", value="add:3", positions="generated", blocks="1", method="diffmean")])
    torch.testing.assert_close(block_outputs(loaded, ids, later)[1], plain[1], rtol=0, atol=0)
    torch.testing.assert_close(block_outputs(loaded, ids, later, fed=1)[1] - plain[1], expected.expand_as(plain[1]),
                               rtol=1e-5, atol=1e-5)
    # norm restoration: the direction's angle, the state's own norm
    restored = block_outputs(loaded, ids, steerable.plan([Intervention("de", value="add:3", blocks="1",
                                                                         method="diffmean", restore_norm=True)]))
    torch.testing.assert_close(restored[1].norm(dim=-1), plain[1].norm(dim=-1), rtol=1e-5, atol=1e-5)
    added = plain[1] + expected
    torch.testing.assert_close(restored[1], added * (plain[1].norm(dim=-1, keepdim=True) /
                                                     added.norm(dim=-1, keepdim=True)), rtol=1e-5, atol=1e-5)
    # a range of blocks, and the source language's direction subtracted
    two = steerable.plan([Intervention("de", value="add:1", blocks="0-1", method="diffmean", subtract="en")])
    assert set(two.edits) == {d.blocks[0], d.blocks[1]}
    u = d.vector("de", 0) - d.vector("en", 0)
    torch.testing.assert_close(two.edits[d.blocks[0]]["all"].vector,
                               torch.from_numpy((d.typical_norm[0] * u / np.linalg.norm(u)).astype(np.float32)))
    with pytest.raises(LangneuronsError, match="blocks 0-2"):
        steerable.plan([Intervention("de", value="add:1", blocks="7", method="diffmean")])


def test_clamp_raises_each_state_along_the_direction_to_the_language_level(gemma_run, tmp_path):
    from dataclasses import replace

    from langneurons.steer.intervene import Intervention
    from langneurons.steer.steerable import open_run

    run, loaded = gemma_run
    steerable = open_run(run, loaded=loaded)
    d = steerable.directions
    ids = torch.tensor([loaded.tokenizer("The cat sleeps on the warm mat.")["input_ids"]])
    plain = block_outputs(loaded, ids)
    v = d.vector("de", 1).astype(np.float64)
    unit = torch.from_numpy((v / np.linalg.norm(v)).astype(np.float32))
    own = d.vector("de", 1, "means").astype(np.float64)
    for beta in (0.0, 1.0, 5.0):
        level = float((own - v) @ (v / np.linalg.norm(v)) + beta * np.linalg.norm(v))  # β 1: the mean of German
        edited = block_outputs(loaded, ids, steerable.plan([Intervention("de", value=f"clamp:{beta:g}", blocks="1",
                                                                         method="diffmean")]))
        before, after = plain[1] @ unit, edited[1] @ unit
        torch.testing.assert_close(after, torch.clamp(before, min=level), rtol=1e-4, atol=1e-4)
        # only the component along v̂ moves
        torch.testing.assert_close(edited[1] - after[..., None] * unit, plain[1] - before[..., None] * unit,
                                   rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(edited[0], plain[0], rtol=0, atol=0)
    assert bool((plain[1] @ unit < level).any())  # β 5 lies above the states: it edits them
    restored = block_outputs(loaded, ids, steerable.plan([Intervention("de", value="clamp:5", blocks="1",
                                                                       method="diffmean", restore_norm=True)]))
    torch.testing.assert_close(restored[1].norm(dim=-1), plain[1].norm(dim=-1), rtol=1e-5, atol=1e-5)
    with pytest.raises(LangneuronsError, match="same positions"):
        steerable.plan([Intervention("de", value="clamp:1", blocks="1", method="diffmean"),
                        Intervention("fr", value="add:1", blocks="1", method="diffmean")])
    # a run recorded before the language means (diffmean.npz schema 1) still adds, and says how to clamp
    old = tmp_path / "old"
    old.mkdir()
    replace(d, means=None).write(old)
    with np.load(old / "diffmean.npz") as data:
        arrays = {k: data[k] for k in data.files}
    np.savez(old / "diffmean.npz", **{**arrays, "schema": np.int64(1)})
    dated = Directions.read(old)
    assert dated.means is None and np.array_equal(dated.diffmean, d.diffmean)
    with pytest.raises(LangneuronsError, match="predate the language means"):
        dated.vector("de", 1, "means")


def test_diffmean_interventions_are_checked_and_round_trip(gemma_run, tmp_path):
    from langneurons.steer.decoding import Decoding
    from langneurons.steer.intervene import (
        Intervention,
        Setting,
        load_interventions,
        save_interventions,
    )

    for kwargs, message in [({"n": 5}, "n 5: not used by method diffmean"),
                            ({"selection": "top"}, "selection 'top': not used"),
                            ({"modules": "mlp"}, "modules 'mlp': not used"),
                            ({"blocks": ""}, "needs the block"),
                            ({"value": "on_p50"}, "add:α"), ({"value": "add:x"}, "add:α"),
                            ({"value": "clamp:x"}, "clamp:β"), ({"value": "clamp"}, "clamp:β"),
                            ({"subtract": "de"}, "the target language itself")]:
        with pytest.raises(LangneuronsError, match=message):
            Intervention("de", **{"value": "add:2", "blocks": "1", "method": "diffmean", **kwargs})
    for field in ({"restore_norm": True}, {"subtract": "en"}):
        with pytest.raises(LangneuronsError, match="only for method diffmean"):
            Intervention("de", 10, **field)
    setting = Setting((Intervention("de", value="add:2", positions="first:4", blocks="1-2", method="diffmean",
                                    restore_norm=True, subtract="en"),), Decoding())
    save_interventions(tmp_path / "iv.json", setting, "fp")
    assert load_interventions(tmp_path / "iv.json", "fp") == setting
    with pytest.raises(LangneuronsError, match="restore_norm 'yes'"):
        Intervention.from_dict({**setting.interventions[0].to_dict(), "restore_norm": "yes"})


def test_cli_generate_defaults_flags_and_export(saved_tiny, corpus_dir, tmp_path):
    import json

    from gguf import GGUFReader
    from typer.testing import CliRunner

    from langneurons.cli.app import app
    from langneurons.steer.intervene import recommended_path
    from langneurons.steer.intervene import Intervention, Setting, save_interventions

    def invoke(*args):
        result = CliRunner().invoke(app, [str(a) for a in args])
        return result.exit_code, result.output + (result.stderr if result.stderr_bytes is not None else "")

    run = tmp_path / "run"
    code, output = invoke("find", "--model", saved_tiny, "--corpus", corpus_dir, "--out", run, "--device", "cpu",
                          "--method", "diffmean")
    assert code == 0 and "DiffMean: language directions of 2 blocks" in output, output

    def generated(*flags):
        code, output = invoke("generate", run, "-l", "de", "--method", "diffmean", "--seeds", "1-2",
                              "--out", tmp_path / "s.jsonl", *flags)
        assert code == 0, output
        return json.loads((tmp_path / "s.jsonl").read_text().splitlines()[0])["setting"]

    def guarded(*flags):
        generated(*flags)
        return json.loads((tmp_path / "s.jsonl").read_text().splitlines()[0])["decoding"]["guard"]

    # the documented defaults: clamp:1 at blocks 2/3 to 9/10 of the depth (block 1 of 2), norms restored,
    # a guarded three-token opening that starts like German sentences
    assert generated() == [Intervention("de", value="clamp:1", positions="prefix:3", blocks="1",
                                        method="diffmean", restore_norm=True).to_dict()]
    rules = json.loads((tmp_path / "s.jsonl").read_text().splitlines()[0])["decoding"]
    assert rules["guard"] and rules["start"] and rules["own_starts"]
    assert guarded() and not guarded("--positions", "all")  # the guard goes with the opening
    assert generated("--positions", "all")[0]["positions"] == "all"
    held = generated("--hold", "clamp:0.5")  # the same direction as a floor on every new token after the opening
    assert [(iv["value"], iv["positions"], iv["blocks"]) for iv in held] == [("clamp:1", "prefix:3", "1"),
                                                                          ("clamp:0.5", "generated", "1")]
    code, output = invoke("generate", run, "-l", "de", "--method", "diffmean", "--hold", "clamp:x", "--seeds", "1",
                          "--out", tmp_path / "x.jsonl")
    assert code != 0 and "hold 'clamp:x'" in output, output
    assert generated("--blocks", "0-1", "--alpha", "2", "--no-restore-norm", "--subtract", "en")[0] | {} == \
        Intervention("de", value="add:2", positions="prefix:3", blocks="0-1", method="diffmean", subtract="en").to_dict()
    assert generated("--value", "add:3")[0]["value"] == "add:3"
    assert generated("--value", "clamp:1.5")[0]["value"] == "clamp:1.5"
    code, output = invoke("generate", run, "-l", "de", "--method", "diffmean", "--value", "clamp:1", "--alpha", "2",
                          "--seeds", "1", "--out", tmp_path / "x.jsonl")
    assert code != 0 and "give one strength" in output
    # a frontier's recommendation in the RUN replaces the defaults
    info = RunInfo.read(run)
    chosen = Setting((Intervention("de", value="add:1.5", positions="generated", blocks="1", method="diffmean"),))
    recommended_path(run, "de", "diffmean").parent.mkdir(parents=True, exist_ok=True)
    save_interventions(recommended_path(run, "de", "diffmean"), chosen, info.fingerprint)
    assert generated() == [chosen.interventions[0].to_dict()]
    code, output = invoke("generate", run, "-l", "de", "--alpha", "2", "--seeds", "1", "--out", tmp_path / "x.jsonl")
    assert code != 0 and "only with --method diffmean" in output
    code, output = invoke("generate", run, "-l", "de", "--hold", "clamp:1", "--seeds", "1", "--out", tmp_path / "x.jsonl")
    assert code != 0 and "only with --method diffmean" in output
    code, output = invoke("sweep", run, "--method", "diffmean")
    assert code != 0 and "no N to sweep" in output

    # export: the recommended setting as llama.cpp reads it
    code, output = invoke("export", run, "-l", "de", "--out", tmp_path / "de.gguf")
    assert code == 0, output
    reader = GGUFReader(str(tmp_path / "de.gguf"))
    field = lambda key: reader.fields[key].parts[reader.fields[key].data[0]]
    assert bytes(field("general.architecture")).decode() == "controlvector"
    assert bytes(field("controlvector.model_hint")).decode() == info.model
    assert int(field("controlvector.layer_count")[0]) == info.blocks - 1 == 1
    assert [t.name for t in reader.tensors] == ["direction.1"]  # never direction.0
    tensor = reader.tensors[0]
    assert tuple(tensor.shape) == (32,) and tensor.data.dtype == np.float32
    d = Directions.read(run)
    v = d.vector("de", 1)
    np.testing.assert_allclose(tensor.data, 1.5 * d.typical_norm[1] * v / np.linalg.norm(v), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(tensor.data), 1.5 * d.typical_norm[1], rtol=1e-5)
    code, output = invoke("export", run, "-l", "de", "--blocks", "0", "--out", tmp_path / "bad.gguf")
    assert code != 0 and "block 0" in output
    code, output = invoke("export", run, "-l", "de", "--method", "ap", "--out", tmp_path / "bad.gguf")
    assert code != 0 and "only a diffmean steering" in output
    clamped = Setting((Intervention("de", value="clamp:1", blocks="1", method="diffmean"),))
    save_interventions(tmp_path / "clamp.json", clamped, info.fingerprint)
    code, output = invoke("export", run, "-l", "de", "--interventions", tmp_path / "clamp.json", "--out", tmp_path / "c.gguf")
    assert code == 0 and "can only add a vector" in output, output
    clamp_tensor = GGUFReader(str(tmp_path / "c.gguf")).tensors[0]  # β·‖v‖·v̂: what the clamp adds at the others' mean
    np.testing.assert_allclose(clamp_tensor.data, v.astype(np.float32), rtol=1e-4, atol=1e-6)


def invoke(*args):
    """Run the CLI; its exit code and everything it printed."""
    from typer.testing import CliRunner

    from langneurons.cli.app import app

    result = CliRunner().invoke(app, [str(a) for a in args])
    return result.exit_code, result.output + (result.stderr if result.stderr_bytes is not None else "")


def test_frontier_searches_diffmean_from_its_defaults(saved_tiny, corpus_dir, tmp_path):
    import json

    from langneurons.steer.intervene import recommended_path

    run = tmp_path / "run"
    assert invoke("find", "--model", saved_tiny, "--corpus", corpus_dir, "--out", run, "--device", "cpu",
                  "--method", "diffmean")[0] == 0
    code, output = invoke("frontier", run, "-l", "de", "--method", "diffmean", "--seeds", "1-2", "--batch-size", "8")
    assert code == 0 and "method=diffmean" in output, output
    table = pd.read_csv(run / "frontier" / "de.csv")
    forced = table[table["kind"] == "forced"]
    holds = forced[forced["also"].fillna("") != ""]  # then the choice's opening followed by each default hold
    assert len(forced) == 32 + 2 and set(forced["method"]) == {"diffmean"}  # (4 α + 4 β) × block 1 × norm × start, no AP
    assert len(holds) == 2 and holds["also"].str.contains("-generated-").all()
    assert sorted(holds["also"].str.extract(r"diffmean-(clamp:[\d.]+)-")[0]) == ["clamp:0.5", "clamp:1"]
    assert set(forced["positions"]) == {"prefix:3"} and forced["guard"].all()  # a guarded three-token opening
    assert set(forced["start"]) == {False, True} and (forced["start"] == forced["own_starts"]).all()
    assert set(forced["value"]) == {"add:0.05", "add:0.1", "add:0.2", "add:0.3", "clamp:0.5", "clamp:1", "clamp:1.5",
                                    "clamp:2"} and set(forced["restore_norm"]) == {True, False}
    chosen = json.loads(recommended_path(run, "de", "diffmean").read_text())["interventions"]
    assert chosen[0]["method"] == "diffmean" and not (run / "frontier" / "de-recommended.json").exists()
    code, output = invoke("generate", run, "-l", "de", "--method", "diffmean", "--seeds", "1", "--out", tmp_path / "s.jsonl")
    assert code == 0 and json.loads((tmp_path / "s.jsonl").read_text())["setting"] == chosen
    code, output = invoke("frontier", run, "-l", "de", "--holds", "clamp:1")
    assert code != 0 and "only with --method diffmean" in output
    code, output = invoke("frontier", run, "-l", "de", "--method", "diffmean", "--holds", "clamp:x")
    assert code != 0 and "--holds 'clamp:x'" in output


def test_frontier_shares_one_shape_across_languages(saved_tiny, corpus_dir, tmp_path):
    import json

    from langneurons.steer.intervene import recommended_path

    run = tmp_path / "run"
    assert invoke("find", "--model", saved_tiny, "--corpus", corpus_dir, "--out", run, "--device", "cpu",
                  "--method", "all")[0] == 0
    assert invoke("frontier", run, "-l", "de", "--method", "diffmean", "--alphas", "0.1", "--clamps", "",
                  "--positions", "prefix:2", "--seeds", "1-2", "--batch-size", "8")[0] == 0  # a point of the RUN's that is not in the screen
    code, output = invoke("frontier", run, "-l", "de,fr", "--method", "diffmean", "--alphas", "0.1,0.3",
                          "--clamps", "1,2", "--seeds", "1-2", "--heldout-seeds", "3-4", "--batch-size", "8")
    assert code == 0 and "shared shape" in output, output
    shapes = pd.read_csv(run / "frontier" / "diffmean-shape.csv")
    assert set(shapes["language"]) == {"de", "fr"} and len(shapes) == 16  # 2 languages × 2 edits × block 1 × norm × start
    # the default positions: a guarded opening; the earlier prefix:2 point is not a shape of the screen
    assert set(shapes["positions"]) == {"prefix:3"} and shapes["guard"].all()
    assert set(shapes["value"]) == {"add:0.1", "clamp:1"}  # each edit's shapes at its middle strength
    assert (shapes["edit"] == shapes["value"].str.partition(":")[0]).all()
    chosen = shapes[shapes["chosen"]]
    assert len(chosen) == 2 and chosen[["restore_norm", "edit", "start"]].nunique().eq(1).all()
    edit = chosen["edit"].iloc[0]
    settings = {lang: json.loads(recommended_path(run, lang, "diffmean").read_text())["interventions"][0] for lang in ("de", "fr")}
    assert {s["restore_norm"] for s in settings.values()} == {bool(chosen["restore_norm"].iloc[0])}
    assert {s["blocks"] for s in settings.values()} == {str(chosen["blocks"].iloc[0])}
    assert all(json.loads(recommended_path(run, lang, "diffmean").read_text())["decoding"]["guard"] for lang in ("de", "fr"))
    assert {s["value"].partition(":")[0] for s in settings.values()} == {edit}
    within = {"add": {"add:0.1", "add:0.3"}, "clamp": {"clamp:1", "clamp:2"}}[edit]
    for lang in ("de", "fr"):  # α searched within the shape; the choice scored on the held-out seeds, no paper point
        table = pd.read_csv(run / "frontier" / f"{lang}.csv")
        heldout = table[table["seeds"] == "3-4"]
        assert set(heldout["kind"]) == {"unforced", "reference", "forced"} and len(heldout) == 3
        assert set(table[(table["seeds"] == "1-2") & (table["method"] == "diffmean")]["value"]) == {"add:0.1", "clamp:1"} | within
    code, output = invoke("frontier", run, "-l", "de,fr", "--seeds", "1-2")
    assert code == 2 and "one language at a time" in output


def test_frontier_searches_lape_units_and_keeps_its_own_recommendation(saved_tiny, corpus_dir, tmp_path):
    import json

    from typer.testing import CliRunner

    from langneurons.cli.app import app

    run = tmp_path / "run"
    runner = CliRunner()
    assert runner.invoke(app, ["find", "--model", str(saved_tiny), "--corpus", str(corpus_dir), "--out", str(run),
                               "--device", "cpu", "--method", "both", "--lape-top-rate", "0.1"]).exit_code == 0
    result = runner.invoke(app, ["frontier", str(run), "-l", "de", "--method", "lape", "--positions", "prefix:2",
                                 "--seeds", "1-2", "--batch-size", "8"])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(run / "frontier" / "de.csv")
    forced = table[table["kind"] == "forced"]
    lape = forced[forced["method"] == "lape"]
    assert len(lape) == 1 and lape["selection"].iloc[0] == "top" and lape["n"].iloc[0] > 0
    assert set(forced["method"]) == {"ap", "lape"}  # the paper's AP setting is scored beside it
    chosen = json.loads((run / "frontier" / "de-lape-recommended.json").read_text())["interventions"][0]
    assert chosen["method"] == "lape" and not (run / "frontier" / "de-recommended.json").exists()


def test_methods_scores_each_method_on_the_same_seeds_and_aligns_directions(saved_tiny, corpus_dir, tmp_path):
    from typer.testing import CliRunner

    from langneurons.cli.app import app
    from langneurons.steer.intervene import Intervention, Setting, save_interventions

    run, published = tmp_path / "run", tmp_path / "published"
    published.mkdir()
    runner = CliRunner()
    assert runner.invoke(app, ["find", "--model", str(saved_tiny), "--corpus", str(corpus_dir), "--out", str(run),
                               "--device", "cpu", "--method", "all", "--lape-top-rate", "0.1"]).exit_code == 0
    assert runner.invoke(app, ["frontier", str(run), "-l", "de", "--method", "diffmean", "--alphas", "0.1",
                               "--restore-norms", "on", "--seeds", "1", "--batch-size", "8"]).exit_code == 0
    save_interventions(published / "de-ap.json", Setting((Intervention("de", 40, "top", "on_p50", "prefix:2"),)), None)
    result = runner.invoke(app, ["methods", str(run), "-l", "de", "--seeds", "3-4", "--settings", str(published),
                                 "--sentences", "3"])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(run / "analysis" / "steering_methods.csv")
    assert list(table["method"]) == ["ap", "diffmean"] and set(table["seeds"]) == {"3-4"}
    assert (table["samples"] == 2).all() and table["depth"].between(0, 1).all()
    assert np.isclose(table.loc[table["method"] == "diffmean", "depth"].iloc[0], 1.0)  # block 1 of 2
    aligned = pd.read_csv(run / "analysis" / "diffmean_alignment.csv")
    assert list(aligned["language"]) == ["de"] and aligned["block"].iloc[0] == 1
    assert aligned[["cos_ap", "cos_random_mean", "cos_other"]].abs().le(1).all().all()
    assert aligned["ap_shift_norm"].iloc[0] > 0 and aligned["best_other_language"].iloc[0] != "de"
    result = runner.invoke(app, ["methods", str(run), "-l", "fr", "--seeds", "3-4"])
    assert result.exit_code == 2 and "no steering setting to compare" in result.output
    assert runner.invoke(app, ["report", str(run)]).exit_code == 0
    page = (run / "report.html").read_text(encoding="utf-8")
    assert "Three steering methods" in page and "methods-de" in page and "direction v at the chosen block" in page
