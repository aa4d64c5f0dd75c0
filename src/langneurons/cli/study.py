"""Study commands comparing the two methods, AP and LAPE: `compare` and `stability`."""

from __future__ import annotations

from pathlib import Path

import typer

from .app import (
    DEVICE,
    DEVICE_MAP,
    DTYPE,
    RUN_ARG,
    SAMPLING,
    TRUST_REMOTE_CODE,
    Dtype,
    app,
    dtype_or,
    friendly,
    stdout,
)


@app.command(rich_help_panel="Compare the methods")
@friendly
def compare(
    run: Path = RUN_ARG,
    sentences: int = typer.Option(50, rich_help_panel=SAMPLING, help="held-out sentences per evaluated language"),
    device: str = DEVICE,
    dtype: Dtype = DTYPE,
    device_map: str = DEVICE_MAP,
    trust_remote_code: bool = TRUST_REMOTE_CODE,
) -> None:
    """AP vs LAPE: Jaccard per language, layers, perplexity with each method's neurons set to 0."""
    from ..steer.sweep import open_run
    from ..study.agreement import perplexity_matrix
    from ..study.compare import compare as run_compare

    steerable = open_run(run, device, dtype_or(dtype, None), trust_remote_code=trust_remote_code,
                         device_map=device_map)
    tables = run_compare(run, sentences, steerable=steerable)
    stdout.print(tables["compare_overlap"].to_string(index=False))
    for method in ("ap", "lape"):
        stdout.print(f"\nperplexity, {method} neurons of the row language set to 0 (columns: evaluated):")
        stdout.print(perplexity_matrix(tables["compare_perplexity"], method).round(2).to_string())
    typer.echo(f"tables → {run / 'analysis'}/compare_*.csv")


@app.command(rich_help_panel="Compare the methods")
@friendly
def stability(
    run: Path = RUN_ARG,
    resamples: int = typer.Option(20, help="bootstrap resamples of the sentences"),
    n: int = typer.Option(None, "--n", help="AP's top-N per language (default: the size of its LAPE set, else 1000)"),
    seed: int = typer.Option(0),
) -> None:
    """Bootstrap both methods' neuron sets (selection frequency, Jaccard) and a shuffled-label control."""
    from ..study.stability import stability as run_stability

    tables = run_stability(run, resamples, n, seed)
    stdout.print(tables["stability_summary"].round(3).to_string(index=False))
    stdout.print(tables["stability_control"].round(4).to_string(index=False))
    typer.echo(f"tables → {run / 'analysis'}/stability_*.csv")
