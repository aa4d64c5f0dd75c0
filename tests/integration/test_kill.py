"""SIGKILL during `find` and `sweep`: rerunning the same command finishes with identical results
and recomputes nothing that was stored."""

import json
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from conftest import SAMPLE

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


def big_corpus(folder, per_language=300):
    folder.mkdir()
    for lang, sentences in SAMPLE.items():
        lines = [f"{sentences[i % len(sentences)]} {i}" for i in range(per_language)]
        (folder / f"{lang}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def command(*args):
    return [sys.executable, "-m", "langneurons", *map(str, args)]


def kill_when(cmd, ready, rng, timeout=300):
    """Start `cmd`, wait until `ready()` is true, wait a random moment more, SIGKILL it."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while not ready() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(rng.uniform(0.0, 0.5))
    finished = proc.poll() is not None
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return finished


def done_rows(run):
    path = run / "store" / "done.npy"
    return int(np.load(path, mmap_mode="r").sum()) if (run / "store" / "meta.json").exists() else 0


def test_kill_during_find_then_resume(saved_tiny, tmp_path):
    corpus = big_corpus(tmp_path / "corpus", per_language=1500)
    args = ["find", "--model", saved_tiny, "--corpus", corpus, "--device", "cpu", "--batch-size", "4"]
    reference = tmp_path / "reference"
    subprocess.run(command(*args, "--out", reference), check=True, capture_output=True)
    rng = random.Random(int(os.environ.get("KILL_SEED", "7")))
    run = tmp_path / "killed"
    point = rng.randint(1, 1000)  # of 6,000 unique sentences: thousands still to record when the kill comes
    finished = kill_when(command(*args, "--out", run), lambda: done_rows(run) >= point, rng)
    stored = done_rows(run)
    assert not (run / "expertise.parquet").exists() or finished
    subprocess.run(command(*args, "--out", run), check=True, capture_output=True)
    info = json.loads((run / "run.json").read_text())
    total = info["unique_sentences"]
    assert info["timings"]["sentences_computed"] == total - stored
    pd.testing.assert_frame_equal(pd.read_parquet(reference / "expertise.parquet"),
                                  pd.read_parquet(run / "expertise.parquet"), atol=1e-6, rtol=1e-5)
    print(f"find killed after {stored}/{total} sentences; resume computed {total - stored}")


def test_kill_during_sweep_then_resume(saved_tiny, corpus_dir, tmp_path):
    run = tmp_path / "run"
    subprocess.run(command("find", "--model", saved_tiny, "--corpus", corpus_dir, "--out", run, "--device", "cpu"),
                   check=True, capture_output=True)
    args = ["sweep", run, "--languages", "de,fr,zh", "--ns", "0,2,8,32", "--seeds", "1-6",
            "--ppl-sentences", "3", "--device", "cpu"]
    subprocess.run(command(*args), check=True, capture_output=True)
    reference = pd.read_csv(run / "sweep.csv").drop(columns="seconds")
    for path in (run / "sweep").iterdir():
        path.unlink()
    (run / "sweep.csv").unlink()
    rng = random.Random(11)
    cells = lambda: len(list((run / "sweep").glob("*.json"))) if (run / "sweep").exists() else 0
    point = rng.randint(2, 8)  # of 10 cells
    kill_when(command(*args), lambda: cells() >= point, rng)
    kept = cells()
    subprocess.run(command(*args), check=True, capture_output=True)
    again = pd.read_csv(run / "sweep.csv").drop(columns="seconds")
    pd.testing.assert_frame_equal(reference, again)
    assert kept >= 2 and not list((run / "sweep").glob(".*tmp*"))
    print(f"sweep killed after {kept}/{len(reference)} cells; identical after resume")
