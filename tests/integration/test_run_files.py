"""Issue 32, round 2 on a tiny model folder: outputs never replace a run's files, languages and blocks
are checked against the run, sweep cells are keyed by their samples' source, damaged run files and
models are named, and small mistakes (batch size 0, empty files, mistyped fields) are refused."""

from __future__ import annotations

import json

import pytest
from conftest import make_tokenizer
from typer.testing import CliRunner

from langneurons.cli.app import app
from langneurons.errors import LangneuronsError
from langneurons.find.info import RunInfo
from langneurons.find.store import ResponseStore
from langneurons.schema import SCHEMAS
from langneurons.steer.intervene import load_interventions
from langneurons.steer.prompts import translation_prompts
from langneurons.steer.sweep import SweepSettings

runner = CliRunner()


def invoke(*args):
    result = runner.invoke(app, [str(a) for a in args])
    output = result.output + (result.stderr if result.stderr_bytes is not None else "")
    return result.exit_code, " ".join(output.split())  # the console wraps long lines


def find_args(model, corpus, out):
    return ("find", "--model", model, "--corpus", corpus, "--out", out, "--device", "cpu", "--batch-size", "5")


@pytest.fixture
def cli_run(saved_tiny, corpus_dir, tmp_path):
    code, output = invoke(*find_args(saved_tiny, corpus_dir, tmp_path / "run"))
    assert code == 0, output
    return tmp_path / "run"


def test_outputs_onto_the_runs_own_files_are_refused(cli_run):
    before = {p: p.read_bytes() for p in cli_run.iterdir() if p.is_file() and p.name != ".lock"}
    for args in (("generate", cli_run, "-l", "de", "--n", "4", "--seeds", "1", "--out", cli_run / "run.json"),
                 ("generate", cli_run, "-l", "de", "--n", "4", "--seeds", "1", "--out", cli_run / "x.jsonl",
                  "--save-intervention", cli_run / "run.json"),
                 ("top", cli_run, "-l", "de", "--out", cli_run / "expertise.parquet")):
        code, output = invoke(*args)
        assert code == 2 and "would replace a file of the run" in output, output
    assert {p: p.read_bytes() for p in before} == before
    assert not (cli_run / "x.jsonl").exists()


def test_generate_out_naming_a_folder_is_refused_before_generating(cli_run, tmp_path, monkeypatch):
    import langneurons.steer.sweep as sweep_module

    def never(*_args, **_kwargs):
        raise AssertionError("generated before the --out check")

    monkeypatch.setattr(sweep_module, "sample_records", never)
    code, output = invoke("generate", cli_run, "-l", "de", "--n", "4", "--seeds", "1-3", "--out", tmp_path)
    assert code == 2 and "is a folder; give a file name" in output, output


def test_generate_language_and_blocks_are_checked_against_the_run(cli_run, tmp_path):
    code, output = invoke("generate", cli_run, "-l", "xx", "--n", "4", "--out", tmp_path / "s.jsonl")
    assert code == 2 and "--language xx: not a language of this run (it has de, en, fr, zh)" in output, output
    code, output = invoke("generate", cli_run, "-l", "de", "--n", "4", "--blocks", "99-100",
                          "--out", tmp_path / "s.jsonl")
    assert code == 2 and "blocks '99-100': no neuron of this run lies in these blocks (it has blocks 0-1)" in output
    assert not (tmp_path / "s.jsonl").exists()


def test_sweep_cells_are_keyed_by_seeds_source_and_limit(cli_run):
    code, output = invoke("sweep", cli_run, "--languages", "de", "--ns", "0", "--seeds", "1-2",
                          "--ppl-sentences", "0", "--device", "cpu")
    assert code == 0, output
    code, output = invoke("sweep", cli_run, "--languages", "de", "--ns", "0", "--seeds", "3-5",
                          "--ppl-sentences", "0", "--device", "cpu")
    assert code == 0, output
    rows = [json.loads(p.read_text()) for p in sorted((cli_run / "sweep").glob("*.json"))]
    assert sorted((r["samples_from"], r["samples"]) for r in rows) == [("seeds 1-2", 2), ("seeds 3-5", 3)]
    one = SweepSettings(("de",), (0,), ("both",), ("translation",), (1,), translate_limit=1)
    two = SweepSettings(("de",), (0,), ("both",), ("translation",), (1,), translate_limit=2)
    assert one.key("translation", "de", "both", 0) != two.key("translation", "de", "both", 0)
    assert one.samples_from("translation") == "heldout limit 1"


def test_damaged_run_json_is_named_and_find_rewrites_it(cli_run, saved_tiny, corpus_dir):
    good = RunInfo.read(cli_run)
    (cli_run / "run.json").write_bytes(b'{"model": "x", "dtype": ')
    code, output = invoke("top", cli_run, "-l", "de")
    assert code == 2 and f"{cli_run / 'run.json'} is damaged" in output, output
    code, output = invoke(*find_args(saved_tiny, corpus_dir, cli_run))
    assert code == 0 and "run.json is damaged; this run rewrites it" in output, output
    assert RunInfo.read(cli_run).fingerprint == good.fingerprint
    code, output = invoke("top", cli_run, "-l", "de", "--n", "4")
    assert code == 0, output


def test_damaged_expertise_and_store_files_are_named(cli_run, saved_tiny, corpus_dir):
    (cli_run / "expertise.parquet").write_bytes(b"PAR1 not really")
    code, output = invoke("top", cli_run, "-l", "de")
    assert code == 2 and "expertise.parquet is damaged" in output, output
    meta = cli_run / "store" / "meta.json"
    text = meta.read_text()
    meta.write_text(text[: len(text) // 2])
    code, output = invoke(*find_args(saved_tiny, corpus_dir, cli_run))
    assert code == 2 and "meta.json is damaged" in output and "delete the folder" in output, output
    meta.write_text(text)
    array = next(p for p in (cli_run / "store").glob("*.npy") if not p.name.startswith("done"))
    array.write_bytes(array.read_bytes()[:200])
    with pytest.raises(LangneuronsError, match=rf"{array.name} is damaged"):
        info = json.loads(text)
        ResponseStore.open(cli_run / "store", info["fingerprint"], info["widths"], info["n_rows"])


def test_relative_model_path_is_stored_absolute(saved_tiny, corpus_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(saved_tiny.parent)
    code, output = invoke(*find_args(f"./{saved_tiny.name}", corpus_dir, tmp_path / "run"))
    assert code == 0, output
    assert RunInfo.read(tmp_path / "run").model == str(saved_tiny.resolve())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    code, output = invoke("generate", tmp_path / "run", "-l", "de", "--n", "4", "--seeds", "1-2",
                          "--out", "s.jsonl", "--device", "cpu")
    assert code == 0 and (elsewhere / "s.jsonl").is_file(), output


def test_encoder_only_truncated_and_misplaced_models_are_refused(saved_tiny, tmp_path):
    from transformers import BertConfig, BertForMaskedLM

    bert = BertForMaskedLM(BertConfig(vocab_size=400, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                      intermediate_size=48))
    bert.save_pretrained(tmp_path / "bert")
    make_tokenizer().save_pretrained(tmp_path / "bert")
    code, output = invoke("sites", "--model", tmp_path / "bert", "--device", "cpu")
    assert code == 2 and "an encoder-only model (bert, BertForMaskedLM), not a causal language model" in output
    weights = saved_tiny / "model.safetensors"
    data = weights.read_bytes()
    code, output = invoke("sites", "--model", saved_tiny, "--device-map", '{"": "gpu7"}')
    assert code == 2 and "--device-map: device 'gpu7' of '' is not" in output, output
    weights.write_bytes(data[: len(data) // 2])
    code, output = invoke("sites", "--model", saved_tiny, "--device", "cpu")
    assert code == 2 and "a weights file is damaged or truncated" in output, output


@pytest.mark.parametrize("command", ["generate", "sweep", "frontier", "find"])
def test_batch_size_zero_is_refused(command, tmp_path):
    extra = {"generate": ["RUN", "-l", "de", "--out", tmp_path / "s.jsonl"], "sweep": ["RUN"],
             "frontier": ["RUN", "-l", "de"], "find": ["--out", tmp_path / "r"]}[command]
    code, output = invoke(command, *extra, "--batch-size", "0")
    assert code == 2 and "--batch-size" in output and "should be greater than or equal to 1" in output, output


def test_batch_size_zero_is_refused_by_the_python_api():
    with pytest.raises(LangneuronsError, match=r"--batch-size 0: must be 1 or more"):
        SweepSettings(("de",), (0,), ("both",), ("unconditional",), (1,), batch_size=0)


def test_limit_zero_and_empty_translate_file_are_refused(tmp_path):
    code, output = invoke("generate", "RUN", "-l", "de", "--translate", "heldout", "--limit", "0",
                          "--out", tmp_path / "s.jsonl")
    assert code == 2 and "--limit" in output and "should be greater than or equal to 1" in output, output
    with pytest.raises(LangneuronsError, match=r"--limit 0: must be 1 or more"):
        translation_prompts("de", "heldout", limit=0)
    empty = tmp_path / "pairs.jsonl"
    empty.write_text("\n")
    with pytest.raises(LangneuronsError, match=r"pairs.jsonl: the file has no sentence pairs"):
        translation_prompts("de", str(empty))


def test_evaluate_refuses_an_empty_file_and_rows_without_text(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    code, output = invoke("evaluate", empty, "-l", "de")
    assert code == 2 and "empty.jsonl: no samples in the file" in output and "target_share" not in output
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"text": "Guten Tag"}\n{"txt": "Hallo"}\n')
    code, output = invoke("evaluate", rows, "-l", "de")
    assert code == 2 and 'rows.jsonl:2: a sample needs a "text" field' in output, output


@pytest.mark.parametrize("field,value,message", [
    ("n", "abc", "intervention field n 'abc': must be a whole number"),
    ("seed", 1.5, "intervention field seed 1.5: must be a whole number"),
    ("value", 3, "intervention field value 3: must be text"),
])
def test_mistyped_intervention_fields_are_named(tmp_path, field, value, message):
    path = tmp_path / "iv.json"
    path.write_text(json.dumps({"interventions": [{"language": "de", "n": 4, field: value}]}))
    with pytest.raises(LangneuronsError, match=message.replace("(", r"\(")):
        load_interventions(path)
    path.write_text(json.dumps({"schema": SCHEMAS["interventions"], "interventions": [{"language": "de", "n": 4}],
                                "decoding": {"guard": "yes"}}))
    with pytest.raises(LangneuronsError, match="decoding field guard 'yes': must be true or false"):
        load_interventions(path)

