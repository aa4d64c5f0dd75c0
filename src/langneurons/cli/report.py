"""Reporting commands: `report` and `reproduce` (the whole study in one command)."""

from __future__ import annotations

from pathlib import Path

import typer

from .app import DEVICE, DTYPE, MODEL, RUN_ARG, app, friendly


@app.command()
@friendly
def report(run: Path = RUN_ARG) -> None:
    """Write RUN/report.html (self-contained) with figures under RUN/figures and tables under RUN/analysis."""
    from ..report.write import write_report

    path = write_report(run)
    typer.echo(f"report → {path}")


@app.command()
@friendly
def reproduce(
    out: Path = typer.Option(..., "--out", "-o", help="folder for the run, sweep and report"),
    model: str = MODEL,
    corpus: str = typer.Option("builtin"),
    fast: bool = typer.Option(False, help="100 positives, 10 seeds, N in {0, 200, 2000}, 5 translation sentences: under 10 minutes on 2 CPU cores"),
    device: str = DEVICE,
    dtype: str = DTYPE,
    batch_size: int = typer.Option(100, help="samples generated together"),
) -> None:
    """The paper's study in one command: find → sweep → translation → report (resumable)."""
    from ..report.reproduce import reproduce as run_reproduce

    path = run_reproduce(out, model, corpus, fast, device, dtype, batch_size)
    typer.echo(f"report → {path}")
