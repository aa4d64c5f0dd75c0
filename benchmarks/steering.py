"""steering: the cost of forcing neurons during batched generation.

Unconditional generation from BOS (temperature 0.8, top-p 0.9), one sample per seed, batches of
50 with a KV cache, first without and then with `both` N = 2,000 neurons of one language forced
to their on_p50 (the paper's main setting), and with `both` N = 4,000 forced only while the first
3 tokens are written (`prefix:3`, the frontier's steered opening: one re-read of the opening,
then unedited steps), and the same opening with the guard (`--guard`: per opening step, tokens
that are no words or repeat one are masked; the word table of the vocabulary is built once per
tokenizer and timed apart), and that guarded opening with the whole-characters rule (every step: byte
tokens masked where they would break UTF-8), and the guarded opening with the start rule (`--start`: the
first token drawn from the run's sentence openers; their table is built once per run and timed apart). It needs a finished RUN folder: `--run PATH`, else the
small find run that paper_style made in this session, else a new one. The trap: generation stops a sample at EOS, so steered and
unsteered runs may produce different numbers of tokens; tokens per second is the fair ratio.
The unsteered pass runs once more with the LM head left as `linear(h, W)` (generate's
`tall_logits` switched off) to measure what computing it as `W @ hᵀ` gains on this machine.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from unittest import mock

from common import Context, corpus_spec, emit, rounded, sync

from langneurons.find.run import find
from langneurons.steer import generate
from langneurons.steer.decoding import Decoding
from langneurons.steer.generate import UNCONDITIONAL, generate_batch, start_token
from langneurons.steer.intervene import Intervention
from langneurons.steer.rules import opening_vocabulary
from langneurons.steer.steerable import open_run

NAME = "steering"
BATCH_SIZE = 50
N_FORCED = 2_000


def timed_generation(steerable, seeds: list[int], tokens: int, plan) -> dict:
    """Seconds and generated token count for one sample per seed."""
    lm = steerable.loaded
    sampling = replace(UNCONDITIONAL, max_new_tokens=tokens)
    start = start_token(lm.tokenizer)
    generated = 0
    sync(lm.device)
    started = time.perf_counter()
    for lo in range(0, len(seeds), BATCH_SIZE):
        batch = seeds[lo : lo + BATCH_SIZE]
        ids = generate_batch(lm.model, lm.tokenizer, [[start]] * len(batch), batch, sampling, plan)
        generated += sum(len(seq) for seq in ids)
    sync(lm.device)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "tokens": generated, "tokens_per_second": generated / seconds}


def measure(ctx: Context, run: Path, source: str) -> None:
    steerable = open_run(run, loaded=ctx.loaded())
    languages = steerable.info.languages
    language = "de" if "de" in languages else languages[1]
    n = min(N_FORCED, steerable.info.neurons // 2)  # a tiny model has fewer than 2,000 neurons
    started = time.perf_counter()
    plan = steerable.plan([Intervention(language, n, "both")])
    plan_seconds = time.perf_counter() - started
    opening_units = min(2 * n, steerable.info.neurons)
    edit = [Intervention(language, opening_units, "both", "on_p50", "prefix:3")]
    opening = steerable.plan(edit)
    guarded = steerable.plan(edit, Decoding(guard=True))
    whole = steerable.plan(edit, Decoding(guard=True, whole_characters=True))
    started = time.perf_counter()
    steerable.sentence_starts  # the start rule's table: the run's sentences tokenized once, kept per run
    starts_seconds = time.perf_counter() - started
    with_start = steerable.plan(edit, Decoding(guard=True, start=True))
    started = time.perf_counter()
    opening_vocabulary(steerable.loaded.tokenizer, steerable.loaded.model.get_output_embeddings().out_features)
    vocabulary_seconds = time.perf_counter() - started
    seeds, tokens = ctx.pick((list(range(1, 5)), 8), (list(range(1, 11)), 16), (list(range(1, 101)), 64))
    timed_generation(steerable, seeds[:1], 2, plan)  # warm-up: first-call costs of generation and hooks
    plain = timed_generation(steerable, seeds, tokens, None)
    steered = timed_generation(steerable, seeds, tokens, plan)
    prefix = timed_generation(steerable, seeds, tokens, opening)
    guard = timed_generation(steerable, seeds, tokens, guarded)
    chars = timed_generation(steerable, seeds, tokens, whole)
    start = timed_generation(steerable, seeds, tokens, with_start)
    with mock.patch.object(generate, "tall_logits", lambda model: contextlib.nullcontext()):
        linear_head = timed_generation(steerable, seeds, tokens, None)
    emit(ctx, NAME, "generation", steerable.loaded.device, run=source,
         sizes={"seeds": len(seeds), "max_new_tokens": tokens, "batch_size": BATCH_SIZE,
                "language": language, "selection": "both", "n": n, "forced_units": plan.n_units,
                "modules_hooked": len(plan.edits),
                "tokens_unsteered": plain["tokens"], "tokens_steered": steered["tokens"]},
         seconds=rounded({"unsteered": plain["seconds"], "steered": steered["seconds"],
                          "unsteered_linear_head": linear_head["seconds"], "plan_resolve": plan_seconds,
                          "steered_prefix3": prefix["seconds"], "steered_prefix3_guard": guard["seconds"],
                          "steered_prefix3_guard_chars": chars["seconds"],
                          "steered_prefix3_guard_start": start["seconds"],
                          "guard_vocabulary": vocabulary_seconds, "start_table": starts_seconds}),
         tokens_per_second=rounded({"unsteered": plain["tokens_per_second"],
                                    "steered": steered["tokens_per_second"],
                                    "unsteered_linear_head": linear_head["tokens_per_second"],
                                    "steered_prefix3": prefix["tokens_per_second"],
                                    "steered_prefix3_guard": guard["tokens_per_second"],
                                    "steered_prefix3_guard_chars": chars["tokens_per_second"],
                                    "steered_prefix3_guard_start": start["tokens_per_second"]}),
         ratios=rounded({"steered_over_unsteered_seconds": steered["seconds"] / plain["seconds"],
                         "unsteered_over_steered_tokens_per_second":
                             plain["tokens_per_second"] / steered["tokens_per_second"],
                         "unsteered_over_prefix3_tokens_per_second":
                             plain["tokens_per_second"] / prefix["tokens_per_second"],
                         "unsteered_over_prefix3_guard_tokens_per_second":
                             plain["tokens_per_second"] / guard["tokens_per_second"],
                         "unsteered_over_prefix3_guard_chars_tokens_per_second":
                             plain["tokens_per_second"] / chars["tokens_per_second"],
                         "unsteered_over_prefix3_guard_start_tokens_per_second":
                             plain["tokens_per_second"] / start["tokens_per_second"],
                         "tall_head_speedup_tokens_per_second":
                             plain["tokens_per_second"] / linear_head["tokens_per_second"]}, 3))


def main(ctx: Context) -> None:
    if ctx.run is not None:
        measure(ctx, ctx.run, str(ctx.run))
        return
    spec, _ = corpus_spec()
    n = ctx.n(tiny=2, quick=3, full=20)
    if n not in ctx.runs:  # paper_style leaves one of the same size when it ran before
        ctx.runs[n] = Path(tempfile.mkdtemp(prefix="find-", dir=ctx.workdir))
        find(ctx.runs[n], corpus=spec, positives=n, loaded=ctx.loaded(), progress=False)
    measure(ctx, ctx.runs[n], f"made in this session: find on {spec} with {n} positives per language")
