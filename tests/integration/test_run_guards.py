"""Issue 32 on a tiny run: labels that would write outside the RUN are refused before any file is
written; sweep, frontier and report hold the RUN's lock."""

from __future__ import annotations

import pytest
from conftest import make_model

from langneurons.errors import LangneuronsError
from langneurons.find.run import find
from langneurons.lock import run_lock
from langneurons.steer.frontier import frontier
from langneurons.steer.intervene import Intervention
from langneurons.steer.steerable import open_run
from langneurons.steer.sweep import sweep

ESCAPE = "/../../../X"


@pytest.fixture
def steerable(corpus_dir, tmp_path):
    loaded = make_model("gemma3")
    find(tmp_path / "run", corpus=str(corpus_dir), loaded=loaded, progress=False)
    return open_run(tmp_path / "run", loaded=loaded)


def files_of(folder):
    return sorted(p for p in folder.rglob("*") if ".lock" not in p.name)


def test_sweep_languages_that_escape_or_are_not_in_the_run_are_refused(steerable, tmp_path):
    before = files_of(tmp_path)
    with pytest.raises(LangneuronsError, match=r"--languages .*must not hold /, \.\."):
        sweep(steerable, [ESCAPE], [0], ["both"], ["unconditional"], [1, 2], progress=False)
    with pytest.raises(LangneuronsError, match=r"--languages xx: not a language of this run \(it has "):
        sweep(steerable, ["xx"], [0], ["both"], ["unconditional"], [1, 2], progress=False)
    assert files_of(tmp_path) == before  # nothing written, inside or outside the RUN


def test_frontier_language_and_modules_that_escape_are_refused(steerable, tmp_path):
    before = files_of(tmp_path)
    with pytest.raises(LangneuronsError, match=r"-l .*must not hold"):
        frontier(steerable, ESCAPE, [], [1], progress=False)
    with pytest.raises(LangneuronsError, match=r"-l xx: not a language of this run"):
        frontier(steerable, "xx", [], [1], progress=False)
    point = Intervention("de", 0, "both", "on_p50", "all", modules=ESCAPE)
    with pytest.raises(LangneuronsError, match=r"modules .*must not hold"):
        frontier(steerable, "de", [point], [1], progress=False)
    assert files_of(tmp_path) == before


def test_sweep_frontier_and_report_are_refused_while_the_run_is_locked(steerable):
    from langneurons.report.write import write_report

    with run_lock(steerable.run, "find --out RUN"):
        with pytest.raises(LangneuronsError, match=r"is in use by PID \d+ \(find --out RUN\)"):
            sweep(steerable, ["de"], [0], ["both"], ["unconditional"], [1], progress=False)
        with pytest.raises(LangneuronsError, match=r"is in use by PID"):
            frontier(steerable, "de", [], [1], progress=False)
        with pytest.raises(LangneuronsError, match=r"is in use by PID"):
            write_report(steerable.run)
