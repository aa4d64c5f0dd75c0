"""Schema versions: decodings and settings round trip, older files migrate in one place, run.json refuses damage."""

import json

import pytest

from langneurons.errors import LangneuronsError
from langneurons.find.info import RunInfo, load_run
from langneurons.schema import SCHEMAS, migrate
from langneurons.steer.decoding import Decoding
from langneurons.steer.frontier import load_points
from langneurons.steer.intervene import Intervention, Setting, load_interventions, save_interventions

RUN = {"model": "tiny", "dtype": "float32", "corpus": "builtin", "languages": ["de", "fr"], "fingerprint": "f" * 64,
       "sites": [{"name": "model.layers.0.mlp.up_proj", "block": 0, "local": "mlp.up_proj", "kind": "mlp",
                  "width": 4, "offset": 0}],
       "neurons": 4, "modules": 1, "blocks": 1, "unique_sentences": 24, "positives_per_language": {"de": 4, "fr": 4},
       "negatives_per_language": {"de": 4, "fr": 4}, "store_dtype": "float32", "batch_size": 16,
       "timings": {"load_seconds": 0.1}}  # as version 1 wrote an `ap` run: no schema, method or lape


def test_a_decoding_and_a_setting_round_trip_and_keep_their_labels():
    rules = Decoding(guard=True, whole_characters=True, opening_temperature=0.5, start=True, start_temperature=1.3)
    assert Decoding.from_dict(rules.to_dict()) == rules
    setting = Setting((Intervention("de", 4, positions="prefix:2"), Intervention("de", 8)), rules)
    assert Setting.from_dict(setting.to_dict()) == setting
    assert setting.label == "de-both-4-on_p50-prefix:2-guard-chars-T0.5-start-S1.3+de-both-8-on_p50-all"
    with pytest.raises(LangneuronsError, match="unknown field"):
        Decoding.from_dict({"guard": True, "tempo": 1})
    with pytest.raises(LangneuronsError, match="guard: only for the tokens of an opening"):
        Setting((Intervention("de", 4),), Decoding(guard=True))


def test_an_intervention_file_of_the_earlier_version_loads_through_the_migration(tmp_path):
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"run": "f" * 64, "interventions": [
        {"language": "de", "n": 4, "positions": "prefix:2", "guard": True, "whole_characters": False,
         "opening_temperature": None, "start": True, "start_temperature": 1.3},
        {"language": "de", "n": 8, "guard": False}]}))
    setting = load_interventions(old, "f" * 64)
    assert setting == Setting((Intervention("de", 4, positions="prefix:2"), Intervention("de", 8)),
                              Decoding(guard=True, start=True, start_temperature=1.3))
    save_interventions(tmp_path / "new.json", setting, "f" * 64)
    saved = json.loads((tmp_path / "new.json").read_text())
    assert saved["schema"] == SCHEMAS["interventions"] and "guard" not in saved["interventions"][0]
    assert load_interventions(tmp_path / "new.json") == setting
    old.write_text(json.dumps({"interventions": [{"language": "de", "n": 4, "positions": "prefix:2",
                                                  "opening_temperature": 0.5},
                                                 {"language": "de", "n": 4, "positions": "prefix:3",
                                                  "opening_temperature": 0.7}]}))
    with pytest.raises(LangneuronsError, match="opening_temperature: the interventions of one setting hold"):
        load_interventions(old)
    old.write_text(json.dumps({"schema": 99, "interventions": []}))
    with pytest.raises(LangneuronsError, match="schema 99"):
        load_interventions(old)


def test_the_shipped_points_files_load(tmp_path):
    from pathlib import Path

    docs = Path(__file__).resolve().parents[2] / "docs" / "frontier-points"
    starts = load_points(docs / "ja-starts.json", "ja")
    assert starts[-1] == Setting((Intervention("ja", 700, positions="prefix:8", blocks="12-17"),),
                                 Decoding(guard=True, start=True, start_temperature=1.3))
    assert starts[-1].label == "ja-both-700-on_p50-prefix:8-blocks12-17-guard-start-S1.3"  # the stored key
    assert all(point.interventions for point in load_points(docs / "ja.json", "ja"))
    path = tmp_path / "points.json"  # a point as Setting.to_dict writes it
    path.write_text(json.dumps({"points": [Setting((Intervention("de", 8, positions="prefix:1"),),
                                                   Decoding(guard=True)).to_dict()]}))
    assert load_points(path, "de")[0].decoding.guard


def test_sample_records_and_scores_of_the_earlier_version_migrate_or_are_made_again():
    sample = {"setting": [{"language": "de", "n": 4, "positions": "prefix:2", "guard": True}], "text": "x",
              "padding": 0, "seed": 1}
    now = migrate("samples", sample)
    assert now["schema"] == SCHEMAS["samples"] and now["decoding"] == {"guard": True}
    assert "guard" not in now["setting"][0]
    assert migrate("samples", {k: v for k, v in sample.items() if k != "padding"}) is None  # stripped: again
    score = {"n": 0, "target_share": 0.5, "padded_share": 0.0}
    assert migrate("score", score)["kind"] == "unforced" and migrate("score", score)["method"] == "ap"
    assert migrate("score", {"n": 4, "target_share": 0.5}) is None
    answer = {**sample, "schema": 2, "mode": "prompts", "prompt": "Q: Name a fruit. Reply in German.\nA:"}
    assert migrate("samples", answer) is None  # ran on past the next turn: made again
    assert migrate("samples", {**answer, "prompt": "Once upon a time"})["schema"] == SCHEMAS["samples"]
    assert migrate("score", {**score, "schema": 2, "task": "prompts"}) is None
    assert migrate("score", {**score, "schema": 2, "task": "translation"})["schema"] == SCHEMAS["score"]


def test_run_info_round_trips_migrates_and_refuses_damage(tmp_path):
    info = RunInfo.from_dict(RUN)
    assert info.method == "ap" and info.lape is None and info.site_records == RUN["sites"]
    assert RunInfo.from_dict(info.to_dict()) == info and info.to_dict()["schema"] == SCHEMAS["run"]
    info.write(tmp_path)
    assert RunInfo.read(tmp_path) == info
    with pytest.raises(LangneuronsError, match=r"damaged.*rerun `langneurons find --out"):
        RunInfo.from_dict({k: v for k, v in RUN.items() if k != "sites"}, tmp_path)
    with pytest.raises(LangneuronsError, match=r"schema 7.*rerun `langneurons find --out"):
        RunInfo.from_dict({**RUN, "schema": 7}, tmp_path)
    (tmp_path / "run.json").write_text("{not json")
    with pytest.raises(LangneuronsError, match="damaged"):
        load_run(tmp_path)
