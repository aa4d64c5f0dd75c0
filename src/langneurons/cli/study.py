"""Study commands: `compare` and `stability` (AP vs LAPE), `methods` (AP, LAPE and DiffMean steering),
`content-check` (the content score)."""

from __future__ import annotations

from pathlib import Path

import typer

from ..errors import LangneuronsError
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
    from ..steer.steerable import open_run
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


@app.command("content-check", rich_help_panel="Compare the methods")
@friendly
def content_check(
    run: Path = RUN_ARG,
    languages: str = typer.Option(None, help="e.g. de,zh; default: the run's languages in the built-in corpus"),
    device: str = DEVICE,
    dtype: Dtype = DTYPE,
    device_map: str = DEVICE_MAP,
    trust_remote_code: bool = TRUST_REMOTE_CODE,
) -> None:
    """Validate the reference-free content score on the built-in held-out pairs: real translations vs
    shuffled ones vs unrelated fluent sentences; writes RUN/analysis/content_check.csv."""
    import pandas as pd

    from ..data import BUILTIN_LANGUAGES
    from ..io import write_table
    from ..steer.steerable import open_run
    from ..study.content import validate
    from .app import parse_languages

    steerable = open_run(run, device, dtype_or(dtype, None), trust_remote_code=trust_remote_code,
                         device_map=device_map)
    chosen = parse_languages(languages) or [l for l in steerable.info.languages if l in BUILTIN_LANGUAGES and l != "en"]
    path = run / "analysis" / "content_check.csv"
    table = pd.read_csv(path) if path.exists() else pd.DataFrame(columns=["language"])
    for language in chosen:  # each language is written when it is done: a killed check keeps the others
        table = pd.concat([table[table["language"] != language], validate(steerable.loaded, language)],
                          ignore_index=True)
        write_table(table, path)
    stdout.print(table[table["language"].isin(chosen)].round(3).to_string(index=False))
    typer.echo(f"table → {path}")


@app.command(rich_help_panel="Compare the methods")
@friendly
def methods(
    run: Path = RUN_ARG,
    languages: str = typer.Option(None, "--languages", "-l", help="e.g. de,zh; default: the run's languages but the first"),
    seeds: str = typer.Option("101-200", rich_help_panel=SAMPLING, metavar="SEEDS",
                              help="held-out seeds every method's setting is scored on"),
    settings: Path = typer.Option(None, metavar="DIR",
                                  help="where to find <L>-<method>.json settings the RUN's frontier did not write "
                                  "(e.g. docs/recommended)"),
    sentences: int = typer.Option(30, min=1, help="held-out English sentences for the direction alignment"),
    device: str = DEVICE,
    dtype: Dtype = DTYPE,
    device_map: str = DEVICE_MAP,
    trust_remote_code: bool = TRUST_REMOTE_CODE,
    batch_size: int = typer.Option(100, min=1, help="samples generated together"),
) -> None:
    """AP, LAPE and DiffMean steering on one footing: each method's chosen setting on the same held-out
    seeds, where in depth each edits, and how the DiffMean direction relates to the AP neurons."""
    from ..lock import run_lock
    from ..steer.steerable import open_run, parse_seeds
    from ..study.steering import compare_steering, direction_alignment, method_settings
    from .app import parse_languages

    steerable = open_run(run, device, dtype_or(dtype, None), trust_remote_code=trust_remote_code,
                         device_map=device_map)
    if settings is not None and not settings.is_dir():
        raise LangneuronsError(f"--settings {settings}: not a folder; give the folder holding <L>-<method>.json files")
    chosen = parse_languages(languages) or list(steerable.info.languages[1:])
    found = {language: method_settings(steerable, language, settings) for language in chosen}
    with run_lock(run, "methods"):
        table = compare_steering(steerable, found, parse_seeds(seeds), batch_size)
        stdout.print(table.round(3).to_string(index=False))
        if steerable.directions is not None and steerable.expertise is not None:
            stdout.print(direction_alignment(steerable, found, sentences).round(3).to_string(index=False))
    typer.echo(f"tables → {run / 'analysis'}/steering_methods.csv, diffmean_alignment.csv")
