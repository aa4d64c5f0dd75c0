"""Command line: a thin Typer layer over the API; user errors print one message, no traceback."""

from __future__ import annotations

import functools
import sys
import warnings
from pathlib import Path
from typing import Callable

import typer
from rich.table import Table

from .errors import LangneuronsError
from .progress import console

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Find and control the language-specific neurons of a causal LM.")

MODEL = typer.Option("gemma-3-270m", "--model", "-m",
                     help="gemma-3-270m (embedded), a local folder, a .gguf file or a cached HF id")
DEVICE = typer.Option("auto", help="auto, cpu, cuda or cuda:<index>")
DTYPE = typer.Option("float32", help="float32, bfloat16 or float16")


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


@app.command()
@friendly
def find(
    out: Path = typer.Option(..., "--out", "-o", help="RUN folder for all results"),
    model: str = MODEL,
    corpus: str = typer.Option("builtin", help="builtin, paper:PATH, hf:PATH, a folder of <lang>.txt or a .jsonl"),
    languages: str = typer.Option(None, help="comma-separated codes, default: all in the corpus"),
    positives: int = typer.Option(None, help="first N positives (and N negatives per other language)"),
    device: str = DEVICE,
    dtype: str = DTYPE,
    batch_size: int = typer.Option(16, help="sentences per forward pass"),
    store_dtype: str = typer.Option("float32", help="float32 or float16 for the on-disk responses"),
    trust_remote_code: bool = typer.Option(False, help="allow model code from the model folder"),
) -> None:
    """Record every neuron's response to every sentence and score each language's experts."""
    from .run import find as run_find

    info = run_find(out, model, corpus, parse_languages(languages), positives, device, dtype,
                    batch_size, store_dtype, trust_remote_code)
    t = info["timings"]
    console.print(
        f"[green]done[/green]: {info['neurons']:,} neurons in {info['modules']} modules, "
        f"{info['unique_sentences']:,} unique sentences, {', '.join(info['languages'])}; "
        f"recorded {t['sentences_computed']:,} sentences in {t['record_seconds']:.1f} s, "
        f"expertise in {t['expertise_seconds']:.1f} s → {out}"
    )


@app.command()
@friendly
def sites(model: str = MODEL, device: str = DEVICE, dtype: str = DTYPE,
          trust_remote_code: bool = typer.Option(False)) -> None:
    """List the neuron sites (linear modules inside the decoder blocks) and their widths."""
    from .model import load_model
    from .sites import discover_sites

    loaded = load_model(model, device, dtype, trust_remote_code)
    found = discover_sites(loaded.model)
    table = Table("module", "kind", "neurons", title=f"{model}: blocks at {found.blocks_path}")
    for site in found:
        table.add_row(site.name, site.kind, f"{site.width:,}")
    console.print(table)
    typer.echo(f"{len(found)} modules, {found.total:,} neurons in {found.n_blocks} blocks")


@app.command()
@friendly
def top(
    run: Path = typer.Argument(..., help="RUN folder made by `langneurons find`"),
    language: str = typer.Option(..., "--language", "-l"),
    n: int = typer.Option(1000, "--n"),
    selection: str = typer.Option("top", help="top, bottom or both"),
    out: Path = typer.Option(None, help="write the neurons to this .csv or .parquet"),
    show: int = typer.Option(10, help="rows to print"),
) -> None:
    """Print or export a language's top/bottom/both N neurons by AP."""
    from .expertise import select
    from .run import load_run
    from .store import write_table

    _, expertise = load_run(run)
    chosen = select(expertise, language, n, selection)
    if out:
        write_table(chosen.drop(columns=["group"]), out)
    table = Table("side", "layer", "unit", "ap", "on_p50", "off_mean")
    for row in chosen.head(show).itertuples():
        table.add_row(row.side, row.layer, str(row.unit), f"{row.ap:.4f}", f"{row.on_p50:.4f}", f"{row.off_mean:.4f}")
    console.print(table)
    typer.echo(f"{len(chosen)} neurons ({selection}) for {language}" + (f" → {out}" if out else ""))


def main() -> None:
    sys.exit(app())
