"""The command line end to end on a tiny model folder, and its error messages (no tracebacks)."""

import json
import re

import pandas as pd
import pytest
from conftest import read_jsonl
from typer.testing import CliRunner

from langneurons.cli.app import app
from langneurons.steer.intervene import load_interventions

runner = CliRunner()


def invoke(*args):
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.output + (result.stderr if result.stderr_bytes is not None else "")


@pytest.fixture
def cli_run(saved_tiny, corpus_dir, tmp_path):
    out = tmp_path / "run"
    code, output = invoke("find", "--model", saved_tiny, "--corpus", corpus_dir, "--out", out,
                          "--device", "cpu", "--batch-size", "5")
    assert code == 0, output
    return out


def test_find_top_generate_evaluate_sweep(cli_run, tmp_path):
    info = json.loads((cli_run / "run.json").read_text())
    assert info["neurons"] == 448 and info["unique_sentences"] == 24
    code, output = invoke("top", cli_run, "-l", "de", "--n", "6", "--selection", "both", "--out", tmp_path / "de.csv")
    assert code == 0 and "6 neurons (both) for de" in output
    samples = tmp_path / "samples.jsonl"
    code, output = invoke("generate", cli_run, "-l", "de", "--n", "10", "--seeds", "1-3", "--out", samples)
    assert code == 0, output
    rows = read_jsonl(samples)
    assert [r["seed"] for r in rows] == [1, 2, 3] and rows[0]["setting"][0]["n"] == 10
    ruled = tmp_path / "ruled.jsonl"
    code, output = invoke("generate", cli_run, "-l", "de", "--n", "10", "--seeds", "1-3", "--whole-characters",
                          "--out", ruled)  # the tiny tokenizer has no byte tokens: the same texts
    assert code == 0 and [r["text"] for r in read_jsonl(ruled)] == [r["text"] for r in rows], output
    assert read_jsonl(ruled)[0]["decoding"]["whole_characters"] is True
    code, output = invoke("generate", cli_run, "-l", "de", "--n", "10", "--seeds", "1-3", "--no-loops",
                          "--out", ruled)
    assert code == 0 and read_jsonl(ruled)[0]["decoding"]["no_loops"] is True, output
    setting = tmp_path / "setting.json"
    code, output = invoke("generate", cli_run, "-l", "de", "--n", "10", "--seeds", "1", "--out", ruled,
                          "--save-intervention", setting)
    code, output = invoke("generate", cli_run, "--interventions", setting, "--seeds", "1", "--no-loops", "--out", ruled)
    assert code == 0 and read_jsonl(ruled)[0]["decoding"]["no_loops"] is True, output  # added to a saved setting
    code, output = invoke("evaluate", samples, "-l", "de")
    assert code == 0 and "target_share" in output
    code, output = invoke("sweep", cli_run, "--languages", "de,fr", "--ns", "0,4", "--seeds", "1-2",
                          "--ppl-sentences", "2", "--modes", "unconditional,translation", "--limit", "2")
    assert code == 0, output
    table = (cli_run / "sweep.csv").read_text().splitlines()
    assert len(table) == 1 + 2 * 2 * 2  # modes x languages x N
    before = {p.name: p.stat().st_mtime_ns for p in (cli_run / "sweep").glob("*.json")}
    code, _ = invoke("sweep", cli_run, "--languages", "de,fr", "--ns", "0,4", "--seeds", "1-2",
                     "--ppl-sentences", "2", "--modes", "unconditional,translation", "--limit", "2")
    assert code == 0 and before == {p.name: p.stat().st_mtime_ns for p in (cli_run / "sweep").glob("*.json")}


@pytest.mark.parametrize(
    "args, message",
    [
        (["find", "--out", "{tmp}/r", "--corpus", "{tmp}/missing"], "no such file or folder"),
        (["find", "--out", "{tmp}/r", "--corpus", "{corpus}", "--languages", "en,xx"], "xx not in corpus"),
        (["find", "--out", "{tmp}/r", "--corpus", "{corpus}", "--model", "nobody/no-such-model"],
         "not in the local Hugging Face cache"),
        (["find", "--out", "{tmp}/r", "--corpus", "{corpus}", "--model", "{tmp}/bad.gguf"], "not a GGUF file"),
        (["find", "--out", "{tmp}/r", "--corpus", "{corpus}", "--device", "cuda"], "no CUDA GPU"),
        (["find", "--out", "{tmp}/r", "--corpus", "{corpus}", "--dtype", "float8"], "'float8' is not one of"),
        (["find", "--out", "{tmp}/afile/r", "--corpus", "{corpus}"], "choose another --out"),
        (["find", "--out", "{tmp}/r", "--corpus", "{corpus}", "--positives", "0"], "--positives 0"),
    ],
)
def test_errors_are_one_clear_line(args, message, corpus_dir, tmp_path):
    (tmp_path / "bad.gguf").write_bytes(b"not really a gguf file")
    (tmp_path / "afile").write_text("x")
    args = [a.format(tmp=tmp_path, corpus=corpus_dir) for a in args]
    code, output = invoke(*args)
    assert code == 2 and message in output and "Traceback" not in output


def test_truncated_gguf_is_reported(tmp_path, corpus_dir):
    (tmp_path / "cut.gguf").write_bytes(b"GGUF\x03\x00\x00\x00\x05")
    code, output = invoke("find", "--out", tmp_path / "r", "--corpus", corpus_dir, "--model", tmp_path / "cut.gguf")
    assert code == 2 and "corrupt or truncated" in output


def test_run_errors(cli_run, tmp_path):
    code, output = invoke("top", cli_run, "-l", "de", "--n", "-1")
    assert code == 2 and "between 0 and the neuron count" in output
    code, output = invoke("top", cli_run, "-l", "de", "--n", "100000")
    assert code == 2 and "between 0 and the neuron count" in output
    code, output = invoke("top", tmp_path / "nothing", "-l", "de")
    assert code == 2 and "not a finished run" in output
    code, output = invoke("generate", cli_run, "-l", "de", "--seeds", "x", "--out", tmp_path / "s.jsonl")
    assert code == 2 and "--seeds 'x'" in output


def test_disk_full_is_reported(monkeypatch, corpus_dir, tmp_path):
    import errno
    import os

    def full(*_args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full)
    from conftest import make_model

    from langneurons.errors import LangneuronsError
    from langneurons.find.run import find

    with pytest.raises(LangneuronsError, match="disk full while writing"):
        find(tmp_path / "r", corpus=str(corpus_dir), loaded=make_model("llama"), progress=False)


def test_same_command_gives_byte_identical_generations(cli_run, tmp_path):
    outputs = []
    for name in ("a.jsonl", "b.jsonl"):
        code, output = invoke("generate", cli_run, "-l", "fr", "--n", "8", "--seeds", "1-4",
                              "--batch-size", "3", "--out", tmp_path / name)
        assert code == 0, output
        outputs.append((tmp_path / name).read_bytes())
    assert outputs[0] == outputs[1]


def test_frontier_command(cli_run):
    code, output = invoke("frontier", cli_run, "-l", "de", "--values", "on_p50,mix:0.5", "--positions", "all,first:2",
                          "--selections", "both", "--ns", "4", "--guards", "off,on", "--seeds", "1-3",
                          "--heldout-seeds", "11-13")
    assert code == 0, output
    table = pd.read_csv(cli_run / "frontier" / "de.csv", dtype={"seeds": str})
    choice, held = table[table["seeds"] == "1-3"], table[table["seeds"] == "11-13"]
    # the grid (the guard only for the first:2 openings), the paper's setting (N capped at the model's
    # neurons) and both baselines on the choice seeds
    assert sorted(choice["kind"]) == ["forced"] * 7 + ["reference", "unforced"]
    assert sorted(choice.loc[choice["guard"], "positions"]) == ["first:2", "first:2"]
    assert choice["paper"].sum() == 1 and choice.loc[choice["paper"], "n"].item() == 448
    # the recommendation and the paper's setting again on the held-out seeds
    assert sorted(held["kind"]) == ["forced"] * 2 + ["reference", "unforced"] and held["paper"].sum() == 1
    chosen = re.search(r"setting: value=(\S+) positions=(\S+)", output).groups()
    assert tuple(held.loc[~held["paper"], ["value", "positions"]].iloc[0]) == chosen
    assert "seeds 11-13: share" in output
    row = held[~held["paper"]].iloc[0]  # the held-out line shows each share with its bootstrap interval
    line = re.search(r"seeds 11-13: share (.*) - (meets|misses) the goal", output).group(1)
    assert f"[{row['target_low']:.2f}-{row['target_high']:.2f}]" in line
    assert (f"degenerate {row['degenerate_share']:.2f} [{row['degenerate_low']:.2f}-{row['degenerate_high']:.2f}]"
            f" ({row['padded_share']:.2f} ended in 8+ blanks), {row['opening_top_share']:.2f} open like the most"
            f" common opening (3 samples") in line
    ivs = load_interventions(cli_run / "frontier" / "de-recommended.json").interventions
    assert (ivs[0].value, ivs[0].positions) == chosen
    code, output = invoke("generate", cli_run, "--interventions", cli_run / "frontier" / "de-recommended.json",
                          "--seeds", "1-2", "--out", cli_run / "rec.jsonl")
    assert code == 0, output
    # unforced samples are the same for every language: fr scores de's instead of generating again
    code, output = invoke("frontier", cli_run, "-l", "fr", "--values", "on_p50", "--positions", "all",
                          "--selections", "both", "--ns", "4", "--seeds", "1-3")
    assert code == 0, output
    assert (cli_run / "frontier" / "unforced-seeds1-3.jsonl").exists()
    assert not list((cli_run / "frontier" / "fr").glob("*unforced*.jsonl"))
    reference = read_jsonl(cli_run / "frontier" / "fr" / "fr-reference-seeds1-3.jsonl")
    sentences = [s["text"] for s in read_jsonl(cli_run / "sentences.jsonl") if s["lang"] == "fr"]
    assert [r["prompt"] for r in reference] == sentences[:3]  # seed s continues sentence s
    code, output = invoke("report", cli_run)
    assert code == 0, output
    page = (cli_run / "report.html").read_text()
    assert "Steering that keeps the text fluent" in page and (cli_run / "figures" / "frontier-de.png").exists()
    assert "held_out_share" in page and "11-13" in page and "paper_share" in page
    code, output = invoke("frontier", cli_run, "-l", "de", "--guards", "yes")
    assert code != 0 and "--guards 'yes': use off, on or off,on" in output
    for bad in ("0", "cold", ""):
        code, output = invoke("frontier", cli_run, "-l", "de", "--opening-temperatures", bad)
        assert code != 0 and f"--opening-temperatures '{bad}': use none and/or temperatures above 0" in output
    code, output = invoke("generate", cli_run, "-l", "de", "--n", "4", "--opening-temperature", "0.5", "--out",
                          str(cli_run / "warm.jsonl"))
    assert code != 0 and "only for an opening (positions first:K or prefix:K), not 'all'" in output
    code, output = invoke("frontier", cli_run, "-l", "de", "--starts", "maybe")
    assert code != 0 and "--starts 'maybe': use off, on or off,on" in output
    code, output = invoke("frontier", cli_run, "-l", "de", "--starts", "on", "--start-temperatures", "-1")
    assert code != 0 and "--start-temperatures '-1': use none and/or temperatures above 0" in output
    code, output = invoke("generate", cli_run, "-l", "de", "--n", "4", "--start", "--out", str(cli_run / "s.jsonl"))
    assert code != 0 and "start: only for the first token of an opening (positions first:K or prefix:K)" in output
    code, output = invoke("generate", cli_run, "-l", "de", "--n", "4", "--positions", "prefix:2",
                          "--start-temperature", "1.3", "--out", str(cli_run / "s.jsonl"))
    assert code != 0 and "only with start" in output
    code, output = invoke("generate", cli_run, "-l", "de", "--n", "4", "--positions", "prefix:2", "--start",
                          "--start-temperature", "1.3", "--seeds", "1-3", "--out", str(cli_run / "s.jsonl"))
    assert code == 0, output
    assert read_jsonl(cli_run / "s.jsonl")[0]["decoding"]["start_temperature"] == 1.3


def test_reproduce_fast_runs_every_stage_and_resumes(saved_tiny, corpus_dir, tmp_path):
    args = ("reproduce", "--fast", "--model", saved_tiny, "--corpus", corpus_dir, "--out", tmp_path / "study",
            "--device", "cpu")
    code, output = invoke(*args)
    assert code == 0, output
    stages = json.loads((tmp_path / "study" / "stages.json").read_text())
    assert list(stages) == ["find", "sweep", "translation", "report"]
    assert (tmp_path / "study" / "run" / "report.html").exists()
    cells = sorted(p.name for p in (tmp_path / "study" / "run" / "sweep").glob("*.json"))
    # de, fr, zh x (unconditional N in {0, 200}; translation N in {0}: 2000 exceeds the 448 neurons)
    assert len(cells) == 3 * 2 + 3 * 1
    code, output = invoke(*args)  # everything is done: nothing is recomputed
    assert code == 0 and sorted(p.name for p in (tmp_path / "study" / "run" / "sweep").glob("*.json")) == cells


def test_store_larger_than_the_disk_is_refused_before_recording(monkeypatch, corpus_dir, tmp_path):
    import shutil
    from collections import namedtuple

    from conftest import make_model

    from langneurons.errors import LangneuronsError
    from langneurons.find.run import find

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda _p: usage(10**9, 10**9 - 1000, 1000))
    with pytest.raises(LangneuronsError, match=r"needs 0.00 GiB but .* free; free space, use --store-dtype float16"):
        find(tmp_path / "r", corpus=str(corpus_dir), loaded=make_model("llama"), progress=False)
    assert not (tmp_path / "r" / "store").exists()


def test_help_shows_the_points_format_whole(monkeypatch):
    monkeypatch.setenv("COLUMNS", "240")  # Rich markup would eat "[intervention, ...]" as a tag
    code, output = invoke("frontier", "--help")
    assert code == 0 and '{"points": [[intervention, ...], ...]}' in output


@pytest.mark.parametrize("code", ["import langneurons.cli",
                                  "from langneurons.cli import app; app(['--help'])",
                                  "from langneurons.cli import app; app(['report', '--help'])"])
def test_cli_starts_without_torch(code):
    """The CLI imports torch lazily, inside the commands that load a model: --help and `report` start fast."""
    import subprocess
    import sys

    probe = f"import sys\ntry:\n    {code}\nexcept SystemExit:\n    pass\nprint('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip().endswith("False"), result.stdout + result.stderr


def test_help_groups_options_and_shows_choices():
    """Options sit in panels (model and hardware, neurons, edit, decoding, ...); fixed sets show their choices."""
    wide = {"COLUMNS": "200", "TERMINAL_WIDTH": "200"}  # narrower help cuts long option names ("--trust-remote-co…")
    output = runner.invoke(app, ["generate", "--help"], env=wide).output
    for panel in ("Neurons", "Edit", "Decoding", "Sampling", "Output", "Model and hardware"):
        assert f"─ {panel} " in output, panel
    assert "top|bottom|both|random" in output and "float32|bfloat16|float16" in output
    for command in ("sites", "find", "generate", "perplexity", "sweep", "frontier", "compare", "reproduce"):
        output = runner.invoke(app, [command, "--help"], env=wide).output
        assert all(o in output for o in ("--device", "--dtype", "--device-map", "--trust-remote-code")), command

