"""Shared plumbing of the benchmarks: options, machine facts, the model, the corpus, result lines.

Every benchmark prints one JSON line per result and appends the same line to
`benchmarks/results.jsonl`. A line carries the benchmark and result name, the sizes measured, the
seconds, the ratios, and the machine it ran on (CPU model, cores, torch version, device, load
average: this machine may be shared, so the load is part of the measurement). Nothing asserts a
time. The trap: a `--tiny` line measures a random toy model; `model` says which one it was.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from langneurons.model import LoadedModel, load_model, resolve_device

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results.jsonl"
PAPER_SETS = REPO.parent / "shared" / "data" / "paper-langsets"
TINY_FAMILY = "gemma3"

# The paper's setting (docs/method.md §1-2): per language 500 positives + 2,500 negatives, six languages.
PAPER_FORWARDS = 18_000  # 6 x 3,000 sentence sets, one bs=1 forward per listed sentence
PAPER_UNIQUE = 5_873  # unique sentences of the six sets together
PAPER_SET_SIZE = 3_000  # samples per language (AP length)
PAPER_POSITIVES = 500
GEMMA_NEURONS = 124_416  # Gemma-3-270M: 18 blocks x 7 linears
PAPER_LANGUAGES = 6


@dataclass
class Context:
    """The options of one benchmark session and its lazily loaded model."""

    model: str = "gemma-3-270m"
    device: str = "auto"
    quick: bool = False
    tiny: bool = False
    run: Path | None = None
    paper_run: Path | None = None
    positives: int | None = None
    threads: int | None = None  # torch intra-op threads; None: torch's default
    workdir: Path = field(default_factory=lambda: Path(tempfile.gettempdir()))  # this session's scratch folder
    runs: dict[int, Path] = field(default_factory=dict)  # positives -> a finished RUN made in this session
    _loaded: LoadedModel | None = field(default=None, repr=False)
    load_seconds: float = 0.0

    @property
    def model_name(self) -> str:
        return f"tiny-{TINY_FAMILY}" if self.tiny else self.model

    def loaded(self) -> LoadedModel:
        """The benchmark model, loaded once per process and warmed up by one untimed forward."""
        if self._loaded is None:
            started = time.perf_counter()
            self._loaded = make_tiny() if self.tiny else load_model(self.model, self.device)
            self.load_seconds = time.perf_counter() - started
            warm_up(self._loaded)
        return self._loaded

    @property
    def torch_device(self) -> torch.device:
        """The device benchmarks run on, without loading the model (the tiny model is CPU-only)."""
        return torch.device("cpu") if self.tiny else resolve_device(self.device)

    def pick(self, tiny, quick, full):
        """A size for this session: --tiny (smoke test sizes), --quick, or the full run."""
        return tiny if self.tiny else quick if self.quick else full

    def n(self, tiny: int, quick: int, full: int) -> int:
        """Positives per language: --positives if given, else the benchmark's default."""
        return self.positives or self.pick(tiny, quick, full)


def make_tiny(mlp_width: int | None = None) -> LoadedModel:
    """The tests' tiny random-weight Gemma-3 (3 blocks, 672 neurons, a 400-token vocabulary).

    `mlp_width` widens its MLP (gate/up outputs): a model whose widest module is large enough
    that holding one module's responses for every sentence would show in peak memory.
    """
    tests = str(REPO / "tests")
    if tests not in sys.path:
        sys.path.insert(0, tests)
    from conftest import make_config, make_model

    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)  # the tokenizer trainer writes blank progress lines to stdout: keep stdout pure JSON
    try:
        loaded = make_model(TINY_FAMILY)
        if mlp_width:
            config = make_config(TINY_FAMILY, len(loaded.tokenizer))
            config.intermediate_size = mlp_width
            torch.manual_seed(0)
            model = type(loaded.model)(config).eval()
            loaded = LoadedModel(model, loaded.tokenizer, f"tiny-{TINY_FAMILY}-mlp{mlp_width}",
                                 loaded.device, loaded.dtype)
        return loaded
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


@torch.inference_mode()
def warm_up(loaded: LoadedModel) -> None:
    """One forward of the full LM and of the decoder stack, so no timing pays first-call costs."""
    inputs = loaded.tokenizer("Warm-up sentence.", return_tensors="pt").to(loaded.device)
    loaded.model(**inputs)
    loaded.model.base_model(**inputs)


def corpus_spec() -> tuple[str, str | None]:
    """`paper:<sets>` when the paper's sets are present, else `builtin` and the reason why."""
    if PAPER_SETS.is_dir() and any(PAPER_SETS.glob("*.json")):
        return f"paper:{PAPER_SETS}", None
    return "builtin", f"{PAPER_SETS} is absent; using the builtin corpus instead"


def sync(device: torch.device) -> None:
    """Wait for queued GPU work so that a timer stops after it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                             text=True, timeout=10)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def machine(device: torch.device | str | None = None) -> dict:
    """Facts about where a result was measured."""
    info = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "loadavg_1m": round(os.getloadavg()[0], 2),
        "git": git_commit(),
    }
    if device is not None:
        device = torch.device(device)
        info["device"] = str(device)
        if device.type == "cuda":
            info["gpu"] = torch.cuda.get_device_name(device)
    return info


def emit(ctx: Context, benchmark: str, name: str, device: torch.device | str | None = None,
         **fields) -> dict:
    """Print one result as a JSON line and append it to results.jsonl."""
    line = {"benchmark": benchmark, "name": name, "model": ctx.model_name, "quick": ctx.quick,
            **fields, "machine": machine(device),
            "time": datetime.datetime.now().isoformat(timespec="seconds")}
    text = json.dumps(line, ensure_ascii=False)
    print(text, flush=True)
    with RESULTS.open("a", encoding="utf-8") as fh:
        fh.write(text + "\n")
    return line


def rounded(values: dict, digits: int = 4) -> dict:
    """Floats of a flat dict to `digits` significant digits, for readable result lines."""
    return {k: (float(f"{v:.{digits}g}") if isinstance(v, float) else v) for k, v in values.items()}
