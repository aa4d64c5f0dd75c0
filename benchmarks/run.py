"""Run the langneurons benchmarks; each prints JSON lines and appends them to results.jsonl.

    python benchmarks/run.py [--quick] [--only NAME,...] [--model gemma-3-270m] [--device cpu|cuda]
                             [--tiny] [--run RUN] [--paper-run RUN] [--positives N] [--threads N]

Benchmarks: paper_style, floor, ap_kernel, steering, scaling, memory, diffmean (see benchmarks/README.md). A failing
benchmark prints an `error` line and the others still run; the exit code is 1 if any failed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

import ap_kernel
import diffmean
import floor
import memory
import paper_style
import scaling
import steering
from common import Context, emit

BENCHMARKS = {
    "paper_style": paper_style.main,
    "floor": floor.main,
    "ap_kernel": ap_kernel.main,
    "steering": steering.main,
    "scaling": scaling.main,
    "memory": memory.main,
    "diffmean": diffmean.main,
}


def parse(argv: list[str]) -> tuple[Context, list[str]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="reduced sizes: the whole suite in minutes")
    parser.add_argument("--only", default=",".join(BENCHMARKS), help="comma-separated benchmark names")
    parser.add_argument("--model", default="gemma-3-270m", help="model for paper_style, floor, steering, scaling")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda[:i]")
    parser.add_argument("--tiny", action="store_true", help="use the tests' tiny random model (smoke test)")
    parser.add_argument("--run", type=Path, help="a finished RUN folder for the steering benchmark")
    parser.add_argument("--paper-run", type=Path,
                        help="a finished full paper-setting find RUN whose timings paper_style reports as measured")
    parser.add_argument("--positives", type=int, help="override the positives per language of each benchmark")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice, one per core)")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"--only: unknown benchmark(s) {unknown}; choose from {', '.join(BENCHMARKS)}")
    ctx = Context(model=args.model, device=args.device, quick=args.quick, tiny=args.tiny, run=args.run,
                  paper_run=args.paper_run, positives=args.positives, threads=args.threads)
    if args.threads:
        torch.set_num_threads(args.threads)
    return ctx, names


def main(argv: list[str]) -> int:
    ctx, names = parse(argv)
    failed = 0
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="langneurons-bench-") as work:
        ctx.workdir = Path(work)
        for name in names:
            began = time.perf_counter()
            try:
                BENCHMARKS[name](ctx)
            except Exception as exc:  # report and go on with the other benchmarks
                failed += 1
                traceback.print_exc()
                emit(ctx, name, "error", error=f"{type(exc).__name__}: {exc}")
            print(f"# {name}: {time.perf_counter() - began:.1f} s", file=sys.stderr, flush=True)
    emit(ctx, "run", "suite", benchmarks=names, failed=failed,
         seconds={"total": round(time.perf_counter() - started, 2), "model_load": round(ctx.load_seconds, 2)})
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
