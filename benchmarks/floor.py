"""floor: how close `langneurons find` comes to a bare forward pass over the same sentences.

The floor is the cheapest possible way to see every unique sentence once: the decoder blocks only
(`model.base_model`), no hooks, the same length-sorted, right-padded batches that find records
with (langneurons.find.record.tokenize / plan_batches / pad_batch). find is timed as a whole and by its
own `timings` (recording, expertise). The two alternate twice and the minimum of each is kept
(once each from 100 positives per language up, e.g. the full paper setting with --positives 500),
which damps the noise of a shared machine; CPU seconds (all threads of this process) are reported
beside wall seconds, and with `--threads 1` their ratio hardly depends on what else runs. The trap: find resumes from an existing RUN folder, so
every repetition needs a fresh one, or the second would record nothing.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from common import Context, corpus_spec, emit, rounded, sync

from langneurons.data import build_labels, load_corpus
from langneurons.find.record import plan_batches, tokenize
from langneurons.find.run import find
from langneurons.model import context_length, pad_batch

NAME = "floor"
REPEATS = 2  # below LARGE positives per language; one pass of each above (minutes each)
LARGE = 100
BATCH_SIZE = 16  # find's default


@torch.inference_mode()
def floor_pass(loaded, texts: list[str], batch_size: int) -> tuple[float, float]:
    """Wall and CPU seconds of the bare batched decoder-stack forward over `texts` (tokenising
    excluded, as in find)."""
    model, tokenizer = loaded.model, loaded.tokenizer
    ids = tokenize(tokenizer, texts, context_length(model, tokenizer))
    lengths = np.array([len(seq) for seq in ids])
    batches = plan_batches(lengths, np.arange(len(texts)), batch_size)
    sync(loaded.device)
    started, cpu = time.perf_counter(), time.process_time()
    for rows in batches:
        input_ids, mask = pad_batch([ids[r] for r in rows], tokenizer.pad_token_id, loaded.device)
        model.base_model(input_ids=input_ids, attention_mask=mask, use_cache=False)
    sync(loaded.device)
    return time.perf_counter() - started, time.process_time() - cpu


def find_once(loaded, spec: str, n: int) -> dict:
    """One complete find into a fresh folder: total wall and CPU seconds plus find's own timings."""
    with tempfile.TemporaryDirectory(prefix="bench-floor-") as tmp:
        started, cpu = time.perf_counter(), time.process_time()
        info = find(Path(tmp) / "run", corpus=spec, positives=n, batch_size=BATCH_SIZE,
                    loaded=loaded, progress=False)
        total, cpu = time.perf_counter() - started, time.process_time() - cpu
    t = info.timings
    return {"total": total, "cpu": cpu, "record": t["record_seconds"], "expertise": t["expertise_seconds"],
            "tokens": t["tokens_computed"]}


def main(ctx: Context) -> None:
    spec, _ = corpus_spec()  # paper sets, else builtin (paper_style reports the fallback)
    n = ctx.n(tiny=2, quick=3, full=40)
    labelset = build_labels(load_corpus(spec), None, n)
    loaded = ctx.loaded()
    floors, finds = [], []
    repeats = 1 if n >= LARGE else REPEATS
    for _ in range(repeats):
        floors.append(floor_pass(loaded, labelset.texts, BATCH_SIZE))
        finds.append(find_once(loaded, spec, n))
    best = {key: min(f[key] for f in finds) for key in ("total", "cpu", "record", "expertise")}
    floor, floor_cpu = min(w for w, _ in floors), min(c for _, c in floors)
    emit(ctx, NAME, "find_vs_floor", loaded.device, corpus=spec,
         sizes={"positives_per_language": n, "unique_sentences": len(labelset.texts),
                "tokens": finds[0]["tokens"], "batch_size": BATCH_SIZE, "repeats": repeats},
         seconds=rounded({"floor": floor, "find_total": best["total"], "find_record": best["record"],
                          "find_expertise": best["expertise"],
                          "find_other": best["total"] - best["record"] - best["expertise"]}),
         cpu_seconds=rounded({"floor": floor_cpu, "find_total": best["cpu"]}),
         all_seconds={"floor": [round(w, 3) for w, _ in floors],
                      "find_total": [round(f["total"], 3) for f in finds]},
         ratios=rounded({"find_over_floor": best["total"] / floor,
                         "find_over_floor_cpu": best["cpu"] / floor_cpu,
                         "record_over_floor": best["record"] / floor,
                         "expertise_over_floor": best["expertise"] / floor}, 3))
