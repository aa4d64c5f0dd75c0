"""memory: peak RSS of `find` against corpus size, up to 20,000 sentences (bounded memory).

A random Gemma-3 with a 4,096-wide MLP (24,960 neurons; the widest module holds 328 MB of
responses at 20,000 sentences) runs `find` on generated corpora of growing size, each in its own
subprocess measured from outside (scaling.spawn / peak_rss.py). What may grow with the corpus is
small per sentence (its text, token ids, labels); the response store is on disk and the expertise
pass reads fixed-size column chunks, so the peak should stay flat. A size-0 child loads only.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from common import Context, emit, rounded
from scaling import spawn, write_corpus

NAME = "memory"
MLP_WIDTH = 4_096
SIZES = {"tiny": [300, 1_200], "quick": [1_000, 5_000], "full": [1_000, 5_000, 20_000]}


def main(ctx: Context) -> None:
    sizes = SIZES[ctx.pick("tiny", "quick", "full")]
    with tempfile.TemporaryDirectory(prefix="memory-", dir=ctx.workdir) as tmp:
        work = Path(tmp)
        lines = []
        for size in [0] + sizes:
            corpus = None
            if size:
                corpus = work / f"corpus-{size}"
                write_corpus(corpus, size)
            result = spawn(ctx.model, "cpu", ctx.threads, True, corpus, work / f"run-{size}",
                           mlp_width=MLP_WIDTH)
            lines.append(emit(ctx, NAME, "load_only" if size == 0 else "find", result["device"],
                              model_measured=f"tiny-gemma3-mlp{MLP_WIDTH}",
                              sizes={"sentences": size, "neurons": result["neurons"]},
                              seconds=rounded({k: result[k] for k in ("wall", "find", "record", "expertise")
                                               if k in result}),
                              peak_rss_mb=round(result["peak_rss_mb"], 1),
                              phase_peak_rss_mb=result.get("phase_peak_rss_mb"),
                              store_mb=round(size * result["neurons"] * 4 / 2**20, 1)))
    base = lines[0]["peak_rss_mb"]
    emit(ctx, NAME, "growth", lines[0]["machine"].get("device"),
         sizes=[l["sizes"]["sentences"] for l in lines[1:]],
         peak_rss_over_load_mb=[round(l["peak_rss_mb"] - base, 1) for l in lines[1:]])
