"""Reporting commands: `report` and `reproduce` (the whole study in one command)."""

from __future__ import annotations

from pathlib import Path

import typer

from .app import (
    CORPUS,
    DEVICE,
    DEVICE_MAP,
    DTYPE,
    HARDWARE,
    MODEL,
    OUTPUT,
    RUN_ARG,
    TRUST_REMOTE_CODE,
    Dtype,
    app,
    dtype_or,
    friendly,
)


@app.command(rich_help_panel="Report")
@friendly
def report(run: Path = RUN_ARG) -> None:
    """Write RUN/report.html (self-contained) with figures under RUN/figures and tables under RUN/analysis."""
    from ..report.write import write_report

    path = write_report(run)
    typer.echo(f"report → {path}")


@app.command(rich_help_panel="Report")
@friendly
def reproduce(
    out: Path = typer.Option(..., "--out", "-o", rich_help_panel=OUTPUT, help="folder for the run, sweep and report"),
    corpus: str = typer.Option("builtin", rich_help_panel=CORPUS, metavar="CORPUS",
                               help="builtin, paper:PATH, hf:PATH, a folder of <lang>.txt or a .jsonl"),
    fast: bool = typer.Option(False, help="100 positives, 10 seeds, N in {0, 200, 2000}, 5 translation "
                              "sentences: under 10 minutes on 2 CPU cores"),
    model: str = MODEL,
    device: str = DEVICE,
    dtype: Dtype = DTYPE,
    device_map: str = DEVICE_MAP,
    trust_remote_code: bool = TRUST_REMOTE_CODE,
    batch_size: int = typer.Option(100, min=1, rich_help_panel=HARDWARE, help="samples generated together"),
) -> None:
    """The paper's study in one command: find → sweep → translation → report (resumable)."""
    from ..report.reproduce import reproduce as run_reproduce

    path = run_reproduce(out, model, corpus, fast, device, dtype_or(dtype), batch_size,
                         trust_remote_code=trust_remote_code, device_map=device_map)
    typer.echo(f"report → {path}")
