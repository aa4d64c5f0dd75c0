"""diffmean: what recording the residual stream (`find --method all`) costs over `find --method both`.

The same sentences, model and batches; each find runs into a fresh folder (find resumes, so a reused
one would record nothing). The two alternate (`both`, `all`, `both`, `all`, ...) and the minimum of
each is kept, which damps a shared machine's noise. Reported: whole-find and recording wall seconds,
CPU seconds, and the ratios all / both (goal: ≤ 1.05× for the whole find). The extra work of `all`
is one hook per block (the block's output mean-pooled and its per-token norm), a store of
sentences × (hidden + 1) floats per block, and the directions (`diffmean_seconds`).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from common import Context, corpus_spec, emit, rounded

from langneurons.data import build_labels, load_corpus
from langneurons.find.run import find

NAME = "diffmean"
REPEATS = 3
BATCH_SIZE = 16  # find's default


def find_once(loaded, spec: str, n: int, method: str) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-diffmean-") as tmp:
        started, cpu = time.perf_counter(), time.process_time()
        info = find(Path(tmp) / "run", corpus=spec, positives=n, batch_size=BATCH_SIZE, loaded=loaded,
                    progress=False, method=method)
        total, cpu = time.perf_counter() - started, time.process_time() - cpu
    t = info.timings
    return {"total": total, "cpu": cpu, "record": t["record_seconds"], "diffmean": t.get("diffmean_seconds", 0.0),
            "tokens": t["tokens_computed"]}


def main(ctx: Context) -> None:
    spec, _ = corpus_spec()
    n = ctx.n(tiny=2, quick=10, full=40)
    labelset = build_labels(load_corpus(spec), None, n)
    loaded = ctx.loaded()
    runs: dict[str, list[dict]] = {"both": [], "all": []}
    for _ in range(REPEATS):
        for method in runs:
            runs[method].append(find_once(loaded, spec, n, method))
    best = {m: {k: min(r[k] for r in rs) for k in ("total", "cpu", "record", "diffmean")} for m, rs in runs.items()}
    emit(ctx, NAME, "all_vs_both", loaded.device, corpus=spec,
         sizes={"positives_per_language": n, "unique_sentences": len(labelset.texts),
                "tokens": runs["both"][0]["tokens"], "batch_size": BATCH_SIZE, "repeats": REPEATS},
         seconds=rounded({f"{m}_{k}": v for m, b in best.items() for k, v in b.items()}),
         ratios=rounded({"total_all_over_both": best["all"]["total"] / best["both"]["total"],
                         "record_all_over_both": best["all"]["record"] / best["both"]["record"],
                         "cpu_all_over_both": best["all"]["cpu"] / best["both"]["cpu"]}),
         checks={"all_totals": [round(r["total"], 3) for r in runs["all"]],
                 "both_totals": [round(r["total"], 3) for r in runs["both"]]})
