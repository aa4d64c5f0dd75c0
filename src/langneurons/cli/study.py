"""Study commands comparing the two methods, AP and LAPE: `compare` and `stability`."""

from __future__ import annotations

from pathlib import Path

import typer

from .app import DEVICE, RUN_ARG, app, friendly, stdout


@app.command()
@friendly
def compare(
    run: Path = RUN_ARG,
    sentences: int = typer.Option(50, help="held-out sentences per evaluated language"),
    device: str = DEVICE,
) -> None:
    """AP vs LAPE: Jaccard per language, layers, perplexity with each method's neurons set to 0."""
    from ..study.compare import compare as run_compare
    from ..study.compare import perplexity_matrix

    tables = run_compare(run, sentences, device)
    stdout.print(tables["compare_overlap"].to_string(index=False))
    for method in ("ap", "lape"):
        stdout.print(f"\nperplexity, {method} neurons of the row language set to 0 (columns: evaluated):")
        stdout.print(perplexity_matrix(tables["compare_perplexity"], method).round(2).to_string())
    typer.echo(f"tables → {run / 'analysis'}/compare_*.csv")


@app.command()
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
