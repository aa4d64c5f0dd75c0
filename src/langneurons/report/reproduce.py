"""`reproduce`: the paper's study in one command — find → sweep → report, resumable by stage.

Each stage resumes on its own (find keeps recorded sentences, the sweep keeps finished cells), and
`OUT/stages.json` records what finished and how long it took. `fast` trades breadth for time:
100 positives per language, 10 seeds, N ∈ {0, 200, 2000}, 5 translation sentences.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from ..find.run import find
from ..io import ensure_writable, write_json
from ..progress import console
from ..steer.steerable import open_run
from ..steer.sweep import sweep

STEER_LANGUAGES_EXCLUDE = ("en",)  # generation from BOS is mostly English already (docs/method.md §8)


def settings(fast: bool) -> dict:
    if fast:
        return {"positives": 100, "seeds": list(range(1, 11)), "ns": [0, 200, 2000],
                "translate_limit": 5, "translate_ns": [0, 2000], "ppl_sentences": 20}
    return {"positives": None, "seeds": list(range(1, 101)), "ns": [0, 2, 20, 200, 2000, 20000],
            "translate_limit": None, "translate_ns": [0, 2000], "ppl_sentences": 50}


def reproduce(out: Path, model: str = "gemma-3-270m", corpus: str = "builtin", fast: bool = False,
              device: str = "auto", dtype: str = "float32", batch_size: int = 100,
              trust_remote_code: bool = False, device_map: str | None = None) -> Path:
    """Run every unfinished stage; return the path of the HTML report."""
    from .write import write_report

    out = ensure_writable(Path(out))
    plan = settings(fast)
    stages_path = out / "stages.json"
    stages = json.loads(stages_path.read_text()) if stages_path.exists() else {}
    run = out / "run"

    def stage(name: str, work) -> None:
        console.rule(f"[bold]{name}")
        started = time.perf_counter()
        work()
        stages[name] = {"seconds": round(time.perf_counter() - started, 1), "fast": fast}
        write_json(stages_path, stages)

    stage("find", lambda: find(run, model, corpus, None, plan["positives"], device, dtype,
                               trust_remote_code=trust_remote_code, device_map=device_map))
    steerable = open_run(run, device, dtype, trust_remote_code=trust_remote_code, device_map=device_map)
    languages = [l for l in steerable.info.languages if l not in STEER_LANGUAGES_EXCLUDE]
    fits = lambda ns: [n for n in ns if n <= steerable.info.neurons]  # small models have fewer
    stage("sweep", lambda: sweep(steerable, languages, fits(plan["ns"]), ["both"], ["unconditional"],
                                 plan["seeds"], ppl_sentences=plan["ppl_sentences"], batch_size=batch_size))
    if all(l in ("en", "de", "fr", "es", "zh", "ja") for l in languages):
        stage("translation", lambda: sweep(steerable, languages, fits(plan["translate_ns"]), ["both"],
                                           ["translation"], [0], translate_limit=plan["translate_limit"],
                                           ppl_sentences=0, batch_size=batch_size))
    stage("report", lambda: write_report(run))
    return run / "report.html"
