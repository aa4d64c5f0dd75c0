"""scaling: time and peak memory of `find` against corpus size and model size.

Each measurement runs in its own subprocess (this file with `--child`), started through
`peak_rss.py`, a small process that reads `getrusage(RUSAGE_CHILDREN).ru_maxrss` after its one
child ends: the child's own peak resident set (see peak_rss.py for why the child is not spawned
straight from the runner). A size-0 child only imports and loads the model: the baseline that the
other peaks include. Corpora are generated: the builtin sentences, repeated with a numbered
prefix ("2. ...") where more are needed, written as a folder of `<lang>.txt`, so every line is one
unique sentence and each language's set is all of them (positives: its own, negatives: the rest).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import HERE, Context, emit, make_tiny, rounded

NAME = "scaling"
SIZES = {"tiny": [60, 240], "quick": [60, 300, 1_200], "full": [300, 1_200, 4_800]}


def write_corpus(folder: Path, size: int) -> None:
    """`size` unique sentences spread evenly over the builtin languages, one `<lang>.txt` each."""
    from langneurons.data import load_corpus

    corpus = load_corpus("builtin")
    per_language = size // len(corpus.languages)
    folder.mkdir(parents=True, exist_ok=True)
    for lang, base in corpus.positives.items():
        lines = [base[i % len(base)] if i < len(base) else f"{i // len(base)}. {base[i % len(base)]}"
                 for i in range(per_language)]
        (folder / f"{lang}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")


def spawn(model: str, device: str, threads: int | None, tiny: bool, corpus: Path | None, out: Path,
          mlp_width: int | None = None) -> dict:
    """Run one child to completion; its JSON result plus wall seconds and its peak RSS."""
    command = [sys.executable, str(HERE / "peak_rss.py"), sys.executable, str(Path(__file__)), "--child",
               "--model", model, "--device", device, "--out", str(out)]
    command += (["--tiny"] if tiny else []) + (["--corpus", str(corpus)] if corpus else [])
    command += ["--mlp-width", str(mlp_width)] if mlp_width else []
    command += ["--threads", str(threads)] if threads else []
    started = time.perf_counter()
    proc = subprocess.run(command, stdout=subprocess.PIPE, text=True)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"scaling child failed with exit code {proc.returncode}: {' '.join(command)}")
    *_, result, usage = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return {**result, "wall": wall, "peak_rss_mb": usage["peak_rss_kb"] / 1024}


def measure(ctx: Context, model: str, tiny: bool, sizes: list[int], work: Path,
            baseline: bool = True) -> list[dict]:
    """One child per size (0: load only, the baseline); one result line each."""
    label = "tiny-gemma3" if tiny else model
    lines = []
    for size in [0] * baseline + sizes:
        corpus = None
        if size:
            corpus = work / f"corpus-{size}"
            write_corpus(corpus, size)
        result = spawn(model, ctx.device, ctx.threads, tiny, corpus, work / f"run-{label}-{size}")
        seconds = {k: result[k] for k in ("wall", "load", "find", "record", "expertise") if k in result}
        line = emit(ctx, NAME, "load_only" if size == 0 else "find", result["device"],
                    model_measured=label,
                    sizes={"sentences": size, "neurons": result["neurons"],
                           "languages": result.get("languages", 0)},
                    seconds=rounded(seconds), peak_rss_mb=round(result["peak_rss_mb"], 1),
                    per_sentence_seconds=rounded({"find": result["find"] / size}) if size else None)
        lines.append(line)
    return lines


def model_ratios(tiny: list[dict], real: list[dict]) -> dict:
    """Real over tiny model: find seconds and peak RSS at each corpus size both were run at."""
    out = {}
    for t in tiny:
        for r in real:
            size = t["sizes"]["sentences"]
            if size != r["sizes"]["sentences"]:
                continue
            out[str(size)] = {"peak_rss": round(r["peak_rss_mb"] / t["peak_rss_mb"], 2)}
            if size:
                out[str(size)]["find_seconds"] = round(r["seconds"]["find"] / t["seconds"]["find"], 2)
    return out


def main(ctx: Context) -> None:
    with tempfile.TemporaryDirectory(prefix="scaling-", dir=ctx.workdir) as tmp:
        work = Path(tmp)
        tiny = measure(ctx, ctx.model, True, SIZES[ctx.pick("tiny", "quick", "full")], work)
        if ctx.tiny:
            emit(ctx, NAME, "model_size", skipped="--tiny: the real model is not run")
            return
        # quick: the real model at the smallest size only (60), without its load-only baseline
        real_sizes = SIZES["quick"][:1] if ctx.quick else SIZES["full"]
        real = measure(ctx, ctx.model, False, real_sizes, work, baseline=not ctx.quick)
    emit(ctx, NAME, "model_size", real[0]["machine"].get("device"),
         models=["tiny-gemma3", ctx.model],
         neurons=[tiny[0]["sizes"]["neurons"], real[0]["sizes"]["neurons"]],
         ratios_real_over_tiny=model_ratios(tiny, real))


class PhasePeaks:
    """Peak RSS (MB) of each phase of `find`, sampled every 10 ms from /proc/self/statm in a thread;
    a phase is the time inside one of `run`'s steps (recording, expertise, writing the outputs)."""

    STEPS = {"record_responses": "record", "compute_expertise": "expertise", "write_outputs": "outputs"}

    def __init__(self) -> None:
        import threading

        self.phase, self.peaks = "setup", {}
        threading.Thread(target=self.sample, daemon=True).start()

    def sample(self) -> None:
        while True:
            rss = int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
            self.peaks[self.phase] = max(self.peaks.get(self.phase, 0.0), rss)
            time.sleep(0.01)

    def wrap(self, module) -> None:
        """Mark the phase while each step of `module` runs (the module's functions are replaced)."""
        for name, phase in self.STEPS.items():
            def marked(*args, _fn=getattr(module, name), _phase=phase, **kwargs):
                self.phase = _phase
                try:
                    return _fn(*args, **kwargs)
                finally:
                    self.phase = "between"

            setattr(module, name, marked)


def child(argv: list[str]) -> None:
    """Load the model, run find once (unless no corpus is given), print one JSON line."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", action="store_true")
    parser.add_argument("--model", required=True)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--corpus")
    parser.add_argument("--out", required=True)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--mlp-width", type=int)
    args = parser.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    from langneurons.find.run import find
    from langneurons.model import discover_sites, load_model

    started = time.perf_counter()
    loaded = make_tiny(args.mlp_width) if args.tiny else load_model(args.model, args.device)
    result = {"load": time.perf_counter() - started, "device": str(loaded.device),
              "neurons": discover_sites(loaded.model).total}
    if args.corpus:
        import langneurons.find.run

        phases = PhasePeaks() if os.path.exists("/proc/self/statm") else None
        if phases:
            phases.wrap(langneurons.find.run)
        started = time.perf_counter()
        info = find(Path(args.out), corpus=args.corpus, loaded=loaded, progress=False)
        if phases:
            result["phase_peak_rss_mb"] = {k: round(v, 1) for k, v in phases.peaks.items()}
        result.update(find=time.perf_counter() - started, record=info.timings["record_seconds"],
                      expertise=info.timings["expertise_seconds"], languages=len(info.languages))
    print(json.dumps(result))


if __name__ == "__main__":
    child(sys.argv[1:])
