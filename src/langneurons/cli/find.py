"""Finding commands: `sites`, `find`, `top` (and the `corpus` group)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from .app import (
    CORPUS,
    DEVICE,
    DEVICE_MAP,
    DTYPE,
    HARDWARE,
    METHOD_PANEL,
    MODEL,
    NEURONS,
    OUTPUT,
    RUN_ARG,
    TRUST_REMOTE_CODE,
    Dtype,
    FindMethod,
    StoreDtype,
    TopSelection,
    app,
    console,
    dtype_or,
    friendly,
    parse_languages,
    stdout,
)


@app.command(rich_help_panel="Find neurons")
@friendly
def sites(
    model: str = MODEL,
    device: str = DEVICE,
    dtype: Dtype = DTYPE,
    device_map: str = DEVICE_MAP,
    trust_remote_code: bool = TRUST_REMOTE_CODE,
) -> None:
    """List the neuron sites (linear modules inside the decoder blocks) and their widths."""
    from ..model import discover_sites, load_model

    loaded = load_model(model, device, dtype_or(dtype), trust_remote_code, device_map)
    found = discover_sites(loaded.model)
    table = Table("module", "kind", "neurons", title=f"{model}: blocks at {found.blocks_path}")
    for site in found:
        table.add_row(site.name, site.kind, f"{site.width:,}")
    stdout.print(table)
    typer.echo(f"{len(found)} modules, {found.total:,} neurons in {found.n_blocks} blocks")


@app.command(rich_help_panel="Find neurons")
@friendly
def find(
    out: Path = typer.Option(..., "--out", "-o", rich_help_panel=OUTPUT, help="RUN folder for all results"),
    store_dtype: StoreDtype = typer.Option(StoreDtype.float32, rich_help_panel=OUTPUT,
                                           help="the on-disk responses (float16 halves the store)"),
    corpus: str = typer.Option("builtin", rich_help_panel=CORPUS, metavar="CORPUS",
                               help="builtin, paper:PATH, hf:PATH, a folder of <lang>.txt or a .jsonl"),
    languages: str = typer.Option(None, rich_help_panel=CORPUS, help="comma-separated codes, e.g. en,de; "
                                  "default: all in the corpus"),
    positives: int = typer.Option(None, rich_help_panel=CORPUS,
                                  help="first N positives (and N negatives per other language)"),
    method: FindMethod = typer.Option(FindMethod.ap, rich_help_panel=METHOD_PANEL,
                                      help="ap (AP of every linear), lape (LAPE of the MLP activations), "
                                      "both, diffmean (each block's mean output: residual language "
                                      "directions) or all, recorded in one pass"),
    lape_top_rate: float = typer.Option(0.01, rich_help_panel=METHOD_PANEL,
                                        help="LAPE: share of all activation units kept"),
    lape_quantile: float = typer.Option(0.95, rich_help_panel=METHOD_PANEL,
                                        help="LAPE: τ is this quantile of all activation probabilities"),
    model: str = MODEL,
    device: str = DEVICE,
    dtype: Dtype = DTYPE,
    device_map: str = DEVICE_MAP,
    trust_remote_code: bool = TRUST_REMOTE_CODE,
    batch_size: int = typer.Option(16, min=1, rich_help_panel=HARDWARE, help="sentences per forward pass"),
) -> None:
    """Record every neuron's response to every sentence and score each language's experts.

    Under `torchrun --nproc-per-node K -m langneurons find ...` the K processes share the recording.
    """
    from ..find.run import find as run_find

    info = run_find(out, model, corpus, parse_languages(languages), positives, device, dtype_or(dtype),
                    batch_size, str(store_dtype), trust_remote_code, device_map=device_map, method=str(method),
                    lape_top_rate=lape_top_rate, lape_quantile=lape_quantile)
    if info is None:  # a torchrun rank other than 0: rank 0 reports
        return
    if info.lape is not None:
        counts = ", ".join(f"{l} {k}" for l, k in info.lape["per_language"].items())
        console.print(f"LAPE: {info.lape['selected']} of {info.lape['neurons']:,} activation units "
                      f"(τ = {info.lape['threshold']:.4f}); per language: {counts}")
    if info.diffmean is not None:
        console.print(f"DiffMean: language directions of {info.diffmean['blocks']} blocks → "
                      f"{out / info.diffmean['file']}, norms in {out / info.diffmean['summary']}")
    t = info.timings
    console.print(
        f"[green]done[/green]: {info.neurons:,} neurons in {info.modules} modules, "
        f"{info.unique_sentences:,} unique sentences, {', '.join(info.languages)}; "
        f"recorded {t['sentences_computed']:,} sentences in {t['record_seconds']:.1f} s, "
        f"expertise in {t['expertise_seconds']:.1f} s → {out}"
    )


@app.command(rich_help_panel="Find neurons")
@friendly
def top(
    run: Path = RUN_ARG,
    language: str = typer.Option(..., "--language", "-l", rich_help_panel=NEURONS),
    n: int = typer.Option(1000, "--n", rich_help_panel=NEURONS),
    selection: TopSelection = typer.Option(TopSelection.top, rich_help_panel=NEURONS,
                                           help="by AP: the top N, the bottom N or N/2 of each"),
    out: Path = typer.Option(None, rich_help_panel=OUTPUT, help="write the neurons to this .csv or .parquet"),
    show: int = typer.Option(10, rich_help_panel=OUTPUT, help="rows to print"),
) -> None:
    """Print or export a language's top/bottom/both N neurons by AP."""
    from ..find.info import load_run
    from ..find.tables import select
    from ..io import check_not_run_file, write_table

    if out:
        check_not_run_file(out, "--out", run)
    _, expertise = load_run(run)
    chosen = select(expertise, language, n, str(selection))
    if out:
        write_table(chosen.drop(columns=["group"]), out)
    table = Table("side", "layer", "unit", "ap", "on_p50", "off_mean")
    for row in chosen.head(show).itertuples():
        table.add_row(row.side, row.layer, str(row.unit), f"{row.ap:.4f}", f"{row.on_p50:.4f}", f"{row.off_mean:.4f}")
    stdout.print(table)
    typer.echo(f"{len(chosen)} neurons ({selection}) for {language}" + (f" → {out}" if out else ""))


corpus_app = typer.Typer(no_args_is_help=True, help="The embedded parallel corpus.")
app.add_typer(corpus_app, name="corpus", rich_help_panel="Corpus")


@corpus_app.command("stats")
@friendly
def corpus_stats() -> None:
    """Groups per split and domain, and sentence lengths per language."""
    from collections import Counter

    from ..data import BUILTIN_LANGUAGES, builtin_groups

    groups = builtin_groups()
    table = Table("domain", "find", "heldout", "total", title=f"built-in corpus: {len(groups)} groups × 6 languages")
    counts = Counter((g["domain"], g["split"]) for g in groups)
    for domain in sorted({g["domain"] for g in groups}):
        f, h = counts[(domain, "find")], counts[(domain, "heldout")]
        table.add_row(domain, str(f), str(h), str(f + h))
    splits = Counter(g["split"] for g in groups)
    table.add_row("all", str(splits["find"]), str(splits["heldout"]), str(len(groups)))
    stdout.print(table)
    lengths = Table("language", "sentences", "mean characters", "min", "max")
    for lang in BUILTIN_LANGUAGES:
        chars = [len(g[lang]) for g in groups]
        lengths.add_row(lang, str(len(chars)), f"{sum(chars) / len(chars):.1f}", str(min(chars)), str(max(chars)))
    stdout.print(lengths)


@corpus_app.command("export")
@friendly
def corpus_export(out: Path = typer.Argument(..., help="folder to write <split>/<lang>.txt into")) -> None:
    """Write the embedded corpus as DIR/<split>/<lang>.txt, one sentence per line, group order."""
    from ..data import BUILTIN_LANGUAGES, SPLITS, builtin_groups
    from ..io import ensure_writable, write_text

    groups = builtin_groups()
    ensure_writable(out)
    for split in SPLITS:
        for lang in BUILTIN_LANGUAGES:
            lines = [g[lang] for g in groups if g["split"] == split]
            write_text(out / split / f"{lang}.txt", "\n".join(lines) + "\n")
    typer.echo(f"wrote {len(SPLITS) * len(BUILTIN_LANGUAGES)} files under {out}")
