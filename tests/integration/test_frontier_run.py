"""The frontier on a tiny model: baselines, reuse of samples across seed sets, held-out scoring."""

import json

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from conftest import make_model, read_jsonl

from langneurons.errors import LangneuronsError
from langneurons.find.run import find
from langneurons.io import write_json, write_jsonl
from langneurons.steer import frontier as frontier_module
from langneurons.steer import sweep as steering_module
from langneurons.steer.decoding import Decoding
from langneurons.steer.evaluate import openings
from langneurons.steer.frontier import (
    frontier,
    grid,
    load_points,
    reference_prompts,
    setting_of,
)
from langneurons.steer.generate import UNCONDITIONAL
from langneurons.steer.intervene import Intervention, Setting, load_interventions
from langneurons.steer.pareto import same_setting
from langneurons.steer.steerable import open_run, score_cell
from langneurons.steer.sweep import sweep


@pytest.fixture
def steerable(corpus_dir, tmp_path):
    loaded = make_model("gemma3")
    find(tmp_path / "run", corpus=str(corpus_dir), loaded=loaded, progress=False)
    return open_run(tmp_path / "run", loaded=loaded)


def test_a_wider_seed_set_generates_only_the_seeds_it_lacks(steerable, monkeypatch):
    generated = []
    real = frontier_module.sample_records

    def counting(st, ivs, mode, seeds, **kwargs):
        generated.append((tuple(iv.positions for iv in ivs), tuple(seeds)))
        return real(st, ivs, mode, seeds, **kwargs)

    monkeypatch.setattr(frontier_module, "sample_records", counting)
    setting = [Intervention("de", 6, "top", "on_p50", "prefix:2")]
    small, _ = frontier(steerable, "de", setting, [1, 2, 3], batch_size=2, progress=False)
    generated.clear()
    wide, best = frontier(steerable, "de", setting, [1, 2, 3, 4, 5], batch_size=4, progress=False)
    # unforced, reference, the paper's setting and the grid's: each only for seeds 4 and 5
    assert sorted(generated) == sorted([((), (4, 5)), ((), (4, 5)), (("all",), (4, 5)), (("prefix:2",), (4, 5))])
    folder = steerable.run / "frontier" / "de"
    few = read_jsonl(folder / "de-top-6-on_p50-prefix_2-seeds1-3.jsonl")
    many = read_jsonl(folder / "de-top-6-on_p50-prefix_2-seeds1-5.jsonl")
    assert [r["seed"] for r in many] == [1, 2, 3, 4, 5] and many[:3] == few
    # what a fresh generation of all five seeds gives: the same texts
    fresh = real(steerable, setting, "unconditional", [1, 2, 3, 4, 5], batch_size=5, progress=False)
    assert [r["text"] for r in fresh] == [r["text"] for r in many]
    assert set(wide["seeds"]) == {"1-3", "1-5"} and best["seeds"] == "1-5"


def test_reference_continues_the_runs_own_sentences_and_heldout_scores_the_choice(steerable):
    table, best = frontier(steerable, "fr", [Intervention("fr", 6, "top", "mix:0.5", "all")], [1, 2],
                           heldout_seeds=[7, 8], batch_size=2, progress=False)
    sentences = [s["text"] for s in read_jsonl(steerable.run / "sentences.jsonl") if s["lang"] == "fr"]
    reference = read_jsonl(steerable.run / "frontier" / "fr" / "fr-reference-seeds7-8.jsonl")
    assert [r["prompt"] for r in reference] == reference_prompts(steerable, "fr", [7, 8])
    assert reference_prompts(steerable, "fr", [1, len(sentences) + 1]) == [sentences[0]] * 2  # cycling
    held = table[table["seeds"] == "7-8"]
    assert sorted(held["kind"]) == ["forced", "forced", "reference", "unforced"]
    base = held.loc[held["kind"] == "reference", "generated_ppl"].item()
    assert held["ppl_ratio"].tolist() == pytest.approx((held["generated_ppl"] / base).tolist())
    marked = table[table["recommended"]]
    assert len(marked) == 1 and marked["seeds"].item() == "1-2" and marked["value"].item() == best["value"]
    saved = load_interventions(steerable.run / "frontier" / "fr-recommended.json", steerable.info.fingerprint)
    assert (saved.interventions[0].value, saved.interventions[0].n) == (best["value"], best["n"])


def test_a_point_of_several_interventions_is_scored_and_recommended_as_a_whole(steerable, tmp_path):
    opening = (Intervention("de", 40, "both", "on_p50", "prefix:1"),
               Intervention("de", 8, "both", "on_p50", "prefix:2"))
    table, best = frontier(steerable, "de", [opening], [1, 2], batch_size=2, progress=False)
    row = table[table["also"] != ""].iloc[0]
    assert (row["n"], row["positions"], row["also"]) == (40, "prefix:1", "de-both-8-on_p50-prefix:2")
    assert setting_of(row) == Setting(opening)
    stem = "de-both-40-on_p50-prefix_1+de-both-8-on_p50-prefix_2"
    samples = read_jsonl(steerable.run / "frontier" / "de" / f"{stem}-seeds1-2.jsonl")
    fresh = frontier_module.sample_records(steerable, list(opening), "unconditional", [1, 2], batch_size=2,
                                           progress=False)
    assert [r["text"] for r in samples] == [r["text"] for r in fresh]
    saved = load_interventions(steerable.run / "frontier" / "de-recommended.json")
    assert saved == setting_of(best)


def test_a_guarded_opening_is_its_own_point_and_survives_the_table(steerable):
    settings = grid("de", ["on_p50"], ["all", "prefix:2"], ["both"], [40], [""], guards=[False, True])
    assert [(s.interventions[0].positions, s.decoding.guard) for s in settings] == [
        ("all", False), ("prefix:2", False), ("prefix:2", True)]
    table, best = frontier(steerable, "de", settings, [1, 2], batch_size=2, progress=False)
    openings = table[(table["kind"] == "forced") & (table["positions"] == "prefix:2")]
    assert sorted(openings["guard"]) == [False, True]
    assert [setting_of(row) for _, row in openings.iterrows()] == [
        Setting((Intervention("de", 40, positions="prefix:2"),), Decoding(guard=bool(g))) for g in openings["guard"]]
    samples = read_jsonl(steerable.run / "frontier" / "de" / "de-both-40-on_p50-prefix_2-guard-seeds1-2.jsonl")
    assert samples[0]["decoding"]["guard"] is True
    assert load_interventions(steerable.run / "frontier" / "de-recommended.json").decoding.guard == best["guard"]


def test_a_whole_characters_point_is_its_own_setting(steerable):
    edit = (Intervention("de", 40, positions="prefix:2"),)
    plain, ruled = Setting(edit), Setting(edit, Decoding(whole_characters=True))
    table, _ = frontier(steerable, "de", [plain, ruled], [1, 2], batch_size=2, progress=False)
    openings = table[(table["kind"] == "forced") & (table["positions"] == "prefix:2")]
    assert sorted(openings["whole_characters"]) == [False, True]
    assert {setting_of(row) for _, row in openings.iterrows()} == {plain, ruled}
    assert not table.loc[table["kind"] != "forced", "whole_characters"].any()  # baselines decode as docs/method.md §6


def test_opening_temperatures_are_a_grid_axis_and_their_points_survive_the_table(steerable):
    settings = grid("de", ["on_p50"], ["all", "prefix:2"], ["both"], [40], [""], temperatures=[None, 0.5])
    assert [(s.interventions[0].positions, s.decoding.opening_temperature) for s in settings] == [
        ("all", None), ("prefix:2", None), ("prefix:2", 0.5)]  # no temperature for positions all
    table, best = frontier(steerable, "de", settings, [1, 2], batch_size=2, progress=False)
    openings = table[(table["kind"] == "forced") & (table["positions"] == "prefix:2")]
    assert {setting_of(row) for _, row in openings.iterrows()} == set(settings[1:])
    assert same_setting(table, openings.iloc[0]).sum() == 1  # a missing temperature matches only a missing one
    assert table.loc[table["paper"], "opening_temperature"].isna().all()
    saved = load_interventions(steerable.run / "frontier" / "de-recommended.json").decoding
    assert saved.opening_temperature == (None if pd.isna(best["opening_temperature"]) else best["opening_temperature"])


def test_the_start_rule_and_its_temperature_are_grid_axes_and_survive_the_table(steerable):
    settings = grid("de", ["on_p50"], ["all", "prefix:2"], ["both"], [40], [""], starts=[False, True],
                    start_temperatures=[None, 1.3])
    assert [(s.interventions[0].positions, s.decoding.start, s.decoding.start_temperature) for s in settings] == [
        ("all", False, None), ("prefix:2", False, None), ("prefix:2", True, None), ("prefix:2", True, 1.3)]
    table, best = frontier(steerable, "de", settings, [1, 2], batch_size=2, progress=False)
    openings = table[(table["kind"] == "forced") & (table["positions"] == "prefix:2")]
    assert {setting_of(row) for _, row in openings.iterrows()} == set(settings[1:])
    assert all(same_setting(table, row).sum() == 1 for _, row in openings.iterrows())
    assert not table.loc[table["paper"], "start"].any() and table.loc[table["paper"], "start_temperature"].isna().all()
    samples = read_jsonl(steerable.run / "frontier" / "de" / "de-both-40-on_p50-prefix_2-start-S1.3-seeds1-2.jsonl")
    assert [r["decoding"]["start_temperature"] for r in samples] == [1.3, 1.3]


def test_points_files_are_checked(tmp_path):
    path = tmp_path / "points.json"
    path.write_text(json.dumps({"points": [[{"n": 8, "positions": "prefix:1"}]]}))  # language: -l
    assert load_points(path, "de") == [Setting((Intervention("de", 8, positions="prefix:1"),))]
    assert load_points(path, "fr") == [Setting((Intervention("fr", 8, positions="prefix:1"),))]
    path.write_text(json.dumps({"points": [[{"language": "de", "n": 8}], []]}))
    with pytest.raises(LangneuronsError, match="point 1 is empty or forces another language than fr"):
        load_points(path, "fr")
    with pytest.raises(LangneuronsError, match="point 2 is empty"):
        load_points(path, "de")
    path.write_text("[1, 2]")
    with pytest.raises(LangneuronsError, match="not a points file"):
        load_points(path, "de")


def test_a_sample_that_ends_in_blanks_keeps_its_padding_and_counts_as_degenerate(steerable):
    """The model writes "xxx" and then only spaces: the stored text is "xxx", its 61 blanks are
    the padding, and the sample is degenerate although its text shows no repetition."""
    tok, head = steerable.loaded.tokenizer, steerable.loaded.model.lm_head
    letter, space = tok.convert_tokens_to_ids("x"), tok.convert_tokens_to_ids("Ġ")
    steps = []

    def force(module, args, logits):
        steps.append(1)
        return logits + 1e4 * F.one_hot(torch.tensor(letter if len(steps) <= 3 else space), logits.shape[-1])

    with head.register_forward_hook(force):
        records = frontier_module.sample_records(steerable, [], "unconditional", [1], progress=False)
    assert (records[0]["text"], records[0]["padding"]) == ("xxx", UNCONDITIONAL.max_new_tokens - 3)
    row = score_cell(records, "en", None)
    assert row["degenerate_share"] == row["padded_share"] == 1.0 and row["usable_share"] == 0.0
    older = [{k: v for k, v in r.items() if k != "padding"} for r in records]
    assert score_cell(older, "en", None)["degenerate_share"] == 0.0  # stored without it: not known


def test_sweep_cells_stored_without_padding_are_generated_and_scored_again(steerable, monkeypatch):
    sweep(steerable, ["de"], [0, 4], ["top"], ["unconditional"], [1, 2], ppl_sentences=0, progress=False)
    folder = steerable.run / "sweep"
    for path in folder.glob("*.jsonl"):  # as an older version wrote them (without a schema)
        write_jsonl(path, [{k: v for k, v in r.items() if k not in ("padding", "schema")} for r in read_jsonl(path)])
    for path in folder.glob("*.json"):
        write_json(path, {k: v for k, v in json.loads(path.read_text()).items() if k not in ("padded_share", "schema")})
    generated = []
    real = steering_module.sample_records

    def counting(st, ivs, mode, seeds, *args, **kwargs):
        generated.append(tuple(iv.n for iv in ivs))
        return real(st, ivs, mode, seeds, *args, **kwargs)

    monkeypatch.setattr(steering_module, "sample_records", counting)
    table = sweep(steerable, ["de"], [0, 4], ["top"], ["unconditional"], [1, 2], ppl_sentences=0, progress=False)
    assert generated == [(0,), (4,)] and table["padded_share"].notna().all()
    assert all("padding" in r for path in folder.glob("*.jsonl") for r in read_jsonl(path))
    generated.clear()
    sweep(steerable, ["de"], [0, 4], ["top"], ["unconditional"], [1, 2], ppl_sentences=0, progress=False)
    assert generated == []  # scored by this version: finished


def test_samples_stored_without_padding_are_generated_again(steerable, monkeypatch):
    frontier(steerable, "de", [], [1, 2], batch_size=2, progress=False)
    folder = steerable.run / "frontier"
    for path in folder.rglob("*.jsonl"):  # samples and scores as an older version wrote them (no schema)
        write_jsonl(path, [{k: v for k, v in r.items() if k not in ("padding", "schema")} for r in read_jsonl(path)])
    for path in (folder / "de").glob("*.json"):
        write_json(path, {k: v for k, v in json.loads(path.read_text()).items() if k not in ("padded_share", "schema")})
    generated = []
    real = frontier_module.sample_records

    def counting(st, ivs, mode, seeds, **kwargs):
        generated.append(tuple(seeds))
        return real(st, ivs, mode, seeds, **kwargs)

    monkeypatch.setattr(frontier_module, "sample_records", counting)
    frontier(steerable, "de", [], [1, 2], batch_size=2, progress=False)
    assert generated == [(1, 2)] * 3  # unforced, reference, the paper's setting
    assert all("padding" in r for path in folder.rglob("*.jsonl") for r in read_jsonl(path))


def test_scores_stored_before_openings_were_counted_gain_them_from_their_samples(steerable, monkeypatch):
    table, _ = frontier(steerable, "de", [], [1, 2, 3], batch_size=3, progress=False)
    folder = steerable.run / "frontier" / "de"
    samples = {"unforced": folder.parent / "unforced-seeds1-3.jsonl", "reference": folder / "de-reference-seeds1-3.jsonl",
               "forced": next(folder.glob("de-both-*-on_p50-all-seeds1-3.jsonl"))}  # the paper's N, clipped
    for _, row in table.iterrows():  # each row's figure is its stored samples' openings
        texts = [r["text"] for r in read_jsonl(samples[row["kind"]])]
        assert row["opening_top_share"] == openings(texts, "de")["opening_top_share"]
    for path in folder.glob("*.json"):  # as a version that did not count openings wrote them
        write_json(path, {k: v for k, v in json.loads(path.read_text()).items() if not k.startswith("opening")})
    monkeypatch.setattr(frontier_module, "sample_records", lambda *a, **k: pytest.fail("generated again"))
    monkeypatch.setattr(frontier_module, "perplexity", lambda *a, **k: pytest.fail("scored again"))
    again, _ = frontier(steerable, "de", [], [1, 2, 3], batch_size=3, progress=False)
    columns = ["kind", "generated_ppl", "opening_top_share", "openings_per_text"]
    assert again[columns].sort_values("kind").reset_index(drop=True).equals(
        table[columns].sort_values("kind").reset_index(drop=True))
