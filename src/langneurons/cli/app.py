"""The Typer app and what every stage's commands share: options, `friendly` errors, list parsers.

User errors print one message, no traceback. Commands live in find.py, steer.py, study.py and
report.py; cli/__init__ imports them in pipeline order, which is the order `--help` lists them in.
"""

from __future__ import annotations

import functools
import sys
import warnings
from typing import Callable

import typer
from rich.console import Console

from ..errors import LangneuronsError
from ..progress import console

stdout = Console()

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Find and control the language-specific neurons of a causal LM.")

MODEL = typer.Option("gemma-3-270m", "--model", "-m",
                     help="gemma-3-270m (embedded), a local folder, a .gguf file or a cached HF id")
DEVICE = typer.Option("auto", help="auto, cpu, cuda or cuda:<index>")
DTYPE = typer.Option("float32", help="float32, bfloat16 or float16")
DEVICE_MAP = typer.Option(None, "--device-map", help="shard the model over GPUs and CPU memory (Accelerate): "
                          "auto, balanced, balanced_low_0, sequential or JSON {module: device}; overrides --device")


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
LANGUAGE = typer.Option(None, "--language", "-l", help="language whose neurons are forced")
N = typer.Option(None, "--n", help="neurons to force (0 = none); default 2000, with --method lape all of the language's")
SELECTION = typer.Option(None, help="top, bottom, both or random; default both (--method lape: top)")
METHOD = typer.Option("ap", help="ap (AP experts among all linears) or lape (LAPE neurons at the MLP activations)")
VALUE = typer.Option("on_p50", help="on_p50, on_p90, off_mean, off_p50, zero, scale:K[:base], shift:A, mix:A or clamp[:base]")
POSITIONS = typer.Option("all", help="all, prompt, generated, first:K or prefix:K (the first K new tokens; "
                         "prefix: then continue unedited)")


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
