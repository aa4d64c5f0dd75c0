"""The Typer app and what every stage's commands share: options, `friendly` errors, list parsers.

User errors print one message, no traceback. Commands live in find.py, steer.py, study.py and
report.py; cli/__init__ imports them in pipeline order, which is the order `--help` lists them in.
"""

from __future__ import annotations

import functools
import sys
import warnings
from enum import StrEnum
from typing import Callable

import typer
from rich.console import Console

from ..errors import LangneuronsError
from ..progress import console

stdout = Console()

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Find and control the language-specific neurons of a causal LM.")

# Help panels: every command groups its options under these titles, in this order.
HARDWARE = "Model and hardware"
CORPUS = "Corpus"
METHOD_PANEL = "Method"
NEURONS = "Neurons"
EDIT = "Edit"
DECODING = "Decoding"
SAMPLING = "Sampling"
GRID = "Grid (comma-separated values; every combination is tried)"
OUTPUT = "Output"


class Dtype(StrEnum):
    float32 = "float32"
    bfloat16 = "bfloat16"
    float16 = "float16"


class StoreDtype(StrEnum):
    float32 = "float32"
    float16 = "float16"


class FindMethod(StrEnum):
    ap = "ap"
    lape = "lape"
    both = "both"
    diffmean = "diffmean"
    all = "all"


class Method(StrEnum):
    ap = "ap"
    lape = "lape"
    diffmean = "diffmean"


class Selection(StrEnum):
    top = "top"
    bottom = "bottom"
    both = "both"
    random = "random"


class TopSelection(StrEnum):
    top = "top"
    bottom = "bottom"
    both = "both"


# The hardware options, the same on every command that loads a model.
MODEL = typer.Option("gemma-3-270m", "--model", "-m", rich_help_panel=HARDWARE,
                     help="gemma-3-270m (embedded), a local folder, a .gguf file or a cached HF id")
DEVICE = typer.Option("auto", rich_help_panel=HARDWARE, help="auto, cpu, cuda or cuda:INDEX, e.g. cuda:1")
DTYPE = typer.Option(None, rich_help_panel=HARDWARE, show_default=False,
                     help="weights and activations; default float32, on a RUN the run's dtype")
DEVICE_MAP = typer.Option(None, "--device-map", rich_help_panel=HARDWARE,
                          help="shard the model over GPUs and CPU memory (Accelerate): auto, balanced, "
                          "balanced_low_0, sequential or JSON {module: device}; overrides --device")
TRUST_REMOTE_CODE = typer.Option(False, rich_help_panel=HARDWARE, help="allow model code from the model folder")


def dtype_or(dtype: Dtype | None, default: str | None = "float32") -> str | None:
    """The --dtype given, else `default` (float32 for a new model, None = the run's own dtype)."""
    return str(dtype) if dtype else default


def friendly(fn: Callable) -> Callable:
    """Run a command; show LangneuronsError and warnings as one clear line each."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        def show(message, category, filename, lineno, file=None, line=None):
            console.print(f"[yellow]warning:[/yellow] {message}")

        warnings.showwarning = show
        try:
            return fn(*args, **kwargs)
        except LangneuronsError as exc:
            console.print(f"[red]error:[/red] {exc}", soft_wrap=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            console.print("[red]interrupted[/red]: rerun the same command to continue where it stopped")
            raise typer.Exit(130) from None

    return wrapper


def parse_languages(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


RUN_ARG = typer.Argument(..., help="RUN folder made by `langneurons find`")
LANGUAGE = typer.Option(None, "--language", "-l", rich_help_panel=NEURONS, help="language whose neurons are forced")
N = typer.Option(None, "--n", rich_help_panel=NEURONS,
                 help="neurons to force (0 = none); default 2000, with --method lape all of the language's")
SELECTION = typer.Option(None, rich_help_panel=NEURONS, show_default=False,
                         help="which of the language's neurons; default both (--method lape: top)")
METHOD = typer.Option(Method.ap, rich_help_panel=NEURONS,
                      help="ap (AP experts among all linears), lape (LAPE neurons at the MLP activations) or "
                      "diffmean (add the language's residual direction at --blocks)")
VALUE = typer.Option("on_p50", rich_help_panel=EDIT, metavar="VALUE",
                     help="what the chosen neurons output: on_p50, on_p90, off_mean, off_p50, zero, "
                     "scale:K[:base], shift:A, mix:A or clamp[:base], e.g. scale:2, mix:0.7, clamp:on_p90")
POSITIONS = typer.Option(None, rich_help_panel=EDIT, metavar="POSITIONS", show_default="all",
                         help="where the edit applies: all, prompt, generated, first:K or prefix:K (the first K new "
                         "tokens; prefix: then continue unedited), e.g. prefix:3 (--method diffmean: the "
                         "recommended setting's)")
SEEDS = typer.Option("1-100", rich_help_panel=SAMPLING, metavar="SEEDS",
                     help="one sample per seed: A-B or A,B,..., e.g. 1-100 or 1,5,9")
NAMED = typer.Option(False, rich_help_panel=SAMPLING, help="translating: the prompt names the target language")
CHAT_TEMPLATE = typer.Option(False, rich_help_panel=SAMPLING,
                             help="with prompts: wrap each prompt in the tokenizer's chat template")
BATCH_SIZE = typer.Option(50, min=1, rich_help_panel=HARDWARE, help="samples generated together")


def parse_temperatures(spec: str, option: str = "--opening-temperatures") -> list[float | None]:
    """`none`, `0.5` or `none,0.5` → the temperatures a frontier grid tries (none: the sampling's)."""
    try:
        values = [None if p == "none" else float(p) for p in parse_languages(spec) or []]
    except ValueError:
        values = []
    if not values or any(v is not None and v <= 0 for v in values):
        raise LangneuronsError(f"{option} {spec!r}: use none and/or temperatures above 0, e.g. none,0.5")
    return values


def parse_switch(spec: str, option: str) -> list[bool]:
    """`off`, `on` or `off,on` → the settings of a frontier grid's on/off axis (`--guards`, `--starts`)."""
    choices = {"off": False, "on": True}
    parts = parse_languages(spec)
    if not parts or any(p not in choices for p in parts):
        raise LangneuronsError(f"{option} {spec!r}: use off, on or off,on")
    return [choices[p] for p in parts]


def main() -> None:
    sys.exit(app())
