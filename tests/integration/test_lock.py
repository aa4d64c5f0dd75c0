"""One writer per RUN (issue 32): RUN/.lock held with flock; a second writer is refused at once,
naming the holder; the lock of a killed process is taken over."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from langneurons.errors import LangneuronsError
from langneurons.lock import run_lock

HOLD = """
import sys, time
from langneurons.lock import run_lock
with run_lock(sys.argv[1], "find --out RUN"):
    print("held", flush=True)
    time.sleep(60)
"""


def holder(run):
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(run)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_second_writer_is_refused_naming_the_holder(tmp_path):
    run = tmp_path / "run"
    proc = holder(run)
    try:
        started = time.perf_counter()
        with pytest.raises(LangneuronsError, match=rf"in use by PID {proc.pid} \(find --out RUN\)"):
            with run_lock(run, "sweep RUN"):
                pytest.fail("the second writer got the lock")
        assert time.perf_counter() - started < 1  # at once, no waiting
    finally:
        proc.terminate()
        proc.wait()


def test_lock_of_a_killed_process_is_taken_over(tmp_path):
    run = tmp_path / "run"
    proc = holder(run)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (run / ".lock").read_text().startswith(f"{proc.pid}\n")  # the stale text is still there
    with run_lock(run, "find --out RUN"):
        assert (run / ".lock").read_text() == f"{os.getpid()}\nfind --out RUN\n"


def test_lock_is_released_after_the_block_even_on_error(tmp_path):
    run = tmp_path / "run"
    with pytest.raises(RuntimeError):
        with run_lock(run, "report RUN"):
            raise RuntimeError("boom")
    with run_lock(run, "report RUN"):
        pass
    assert (run / ".lock").read_text() == ""


def test_find_is_refused_while_another_writer_holds_the_run(tiny_llama, corpus_dir, tmp_path):
    from langneurons.find.run import find

    run = tmp_path / "run"
    proc = holder(run)
    try:
        with pytest.raises(LangneuronsError, match=rf"in use by PID {proc.pid}"):
            find(run, corpus=str(corpus_dir), loaded=tiny_llama, progress=False)
        assert not (run / "sentences.jsonl").exists() and not (run / "store").exists()
    finally:
        proc.terminate()
        proc.wait()
    find(run, corpus=str(corpus_dir), loaded=tiny_llama, progress=False)  # free again: it runs
    assert (run / "run.json").exists()


def test_refused_find_leaves_sentences_as_they_were(tiny_llama, corpus_dir, tmp_path):
    """A find with other settings on a finished RUN is refused before it writes sentences.jsonl."""
    from langneurons.find.run import find

    run = tmp_path / "run"
    find(run, corpus=str(corpus_dir), loaded=tiny_llama, progress=False)
    before = (run / "sentences.jsonl").read_bytes()
    with pytest.raises(LangneuronsError, match="already holds a run of another"):
        find(run, corpus=str(corpus_dir), languages=["en", "de"], loaded=tiny_llama, progress=False)
    assert (run / "sentences.jsonl").read_bytes() == before
