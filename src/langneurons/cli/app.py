"""Command line: a thin Typer layer over the API; user errors print one message, no traceback."""

from __future__ import annotations

import functools
import sys
import warnings
from pathlib import Path
from typing import Callable

import typer
from rich.console import Console
from rich.table import Table

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
    device_map: str = DEVICE_MAP,
    method: str = typer.Option("ap", help="ap (AP of every linear), lape (LAPE of the MLP activations) "
                               "or both, recorded in one pass"),
    lape_top_rate: float = typer.Option(0.01, help="LAPE: share of all activation units kept"),
    lape_quantile: float = typer.Option(0.95, help="LAPE: τ is this quantile of all activation probabilities"),
) -> None:
    """Record every neuron's response to every sentence and score each language's experts.

    Under `torchrun --nproc-per-node K -m langneurons find ...` the K processes share the recording.
    """
    from ..find.run import find as run_find

    info = run_find(out, model, corpus, parse_languages(languages), positives, device, dtype,
                    batch_size, store_dtype, trust_remote_code, device_map=device_map, method=method,
                    lape_top_rate=lape_top_rate, lape_quantile=lape_quantile)
    if info is None:  # a torchrun rank other than 0: rank 0 reports
        return
    if "lape" in info:
        counts = ", ".join(f"{l} {k}" for l, k in info["lape"]["per_language"].items())
        console.print(f"LAPE: {info['lape']['selected']} of {info['lape']['neurons']:,} activation units "
                      f"(τ = {info['lape']['threshold']:.4f}); per language: {counts}")
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
          trust_remote_code: bool = typer.Option(False), device_map: str = DEVICE_MAP) -> None:
    """List the neuron sites (linear modules inside the decoder blocks) and their widths."""
    from ..model import load_model
    from ..sites import discover_sites

    loaded = load_model(model, device, dtype, trust_remote_code, device_map)
    found = discover_sites(loaded.model)
    table = Table("module", "kind", "neurons", title=f"{model}: blocks at {found.blocks_path}")
    for site in found:
        table.add_row(site.name, site.kind, f"{site.width:,}")
    stdout.print(table)
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
    from ..find.expertise import select
    from ..find.run import load_run
    from ..io import write_table

    _, expertise = load_run(run)
    chosen = select(expertise, language, n, selection)
    if out:
        write_table(chosen.drop(columns=["group"]), out)
    table = Table("side", "layer", "unit", "ap", "on_p50", "off_mean")
    for row in chosen.head(show).itertuples():
        table.add_row(row.side, row.layer, str(row.unit), f"{row.ap:.4f}", f"{row.on_p50:.4f}", f"{row.off_mean:.4f}")
    stdout.print(table)
    typer.echo(f"{len(chosen)} neurons ({selection}) for {language}" + (f" → {out}" if out else ""))


def interventions_from(steerable, language: str | None, n: int | None, selection: str | None,
                       value: str, positions: str, seed: int, blocks: str, file: Path | None, method: str,
                       modules: str = "", guard: bool = False, whole_characters: bool = False,
                       opening_temperature: float | None = None, start: bool = False,
                       start_temperature: float | None = None):
    from ..steer.intervene import Intervention, load_interventions
    from ..steer.sweep import method_defaults

    if file:
        return load_interventions(file, steerable.info["fingerprint"])
    if not language:
        raise LangneuronsError("--language is needed (or --interventions FILE)")
    n, selection = method_defaults(steerable, method, language, n, selection)
    return [Intervention(language, n, selection, value, positions, seed, blocks, method, modules, guard,
                         whole_characters, opening_temperature, start, start_temperature)]


RUN_ARG = typer.Argument(..., help="RUN folder made by `langneurons find`")
LANGUAGE = typer.Option(None, "--language", "-l", help="language whose neurons are forced")
N = typer.Option(None, "--n", help="neurons to force (0 = none); default 2000, with --method lape all of the language's")
SELECTION = typer.Option(None, help="top, bottom, both or random; default both (--method lape: top)")
METHOD = typer.Option("ap", help="ap (AP experts among all linears) or lape (LAPE neurons at the MLP activations)")
VALUE = typer.Option("on_p50", help="on_p50, on_p90, off_mean, off_p50, zero, scale:K[:base], shift:A, mix:A or clamp[:base]")
POSITIONS = typer.Option("all", help="all, prompt, generated, first:K or prefix:K (the first K new tokens; "
                         "prefix: then continue unedited)")


@app.command()
@friendly
def generate(
    run: Path = RUN_ARG,
    language: str = LANGUAGE,
    n: int = N,
    selection: str = SELECTION,
    value: str = VALUE,
    positions: str = POSITIONS,
    random_seed: int = typer.Option(0, help="seed choosing the neurons of --selection random"),
    blocks: str = typer.Option("", help="choose neurons only in these blocks, e.g. 0-3,14-17"),
    modules: str = typer.Option("", help="choose neurons only in modules whose path contains one of these, e.g. mlp"),
    guard: bool = typer.Option(False, help="with first:K/prefix:K: the opening's tokens are words, none repeated"),
    whole_characters: bool = typer.Option(False, help="sample byte tokens only where the text stays well-formed UTF-8"),
    opening_temperature: float = typer.Option(None, help="with first:K/prefix:K: sample the opening at this temperature"),
    start: bool = typer.Option(False, help="with first:K/prefix:K: the first new token is one that begins the "
                                           "run's sentences (over-represented there)"),
    start_temperature: float = typer.Option(None, help="with --start: sample the first token at this temperature"),
    interventions: Path = typer.Option(None, help="JSON file of interventions (combined)"),
    save_intervention: Path = typer.Option(None, help="also write the intervention(s) as JSON here"),
    seeds: str = typer.Option("1-100", help="one sample per seed, e.g. 1-100"),
    translate: str = typer.Option(None, help="heldout (built-in) or a JSONL of {en, <lang>} pairs"),
    limit: int = typer.Option(None, help="with --translate: only the first N sentences"),
    prompt: str = typer.Option(None, help="continue this text instead of BOS"),
    out: Path = typer.Option(..., "--out", "-o", help="JSONL file of samples"),
    batch_size: int = typer.Option(50),
    device: str = DEVICE,
    dtype: str = typer.Option(None, help="default: the run's dtype"),
    device_map: str = DEVICE_MAP,
    method: str = METHOD,
) -> None:
    """Generate text while forcing a language's neurons; one JSON line per sample."""
    from ..io import ensure_writable, write_jsonl
    from ..steer.evaluate import language_share
    from ..steer.intervene import save_interventions
    from ..steer.sweep import open_run, parse_seeds, sample_records, translation_pairs

    ensure_writable(Path(out).parent)
    steerable = open_run(run, device, dtype, device_map=device_map)
    ivs = interventions_from(steerable, language, n, selection, value, positions, random_seed, blocks,
                             interventions, method, modules, guard, whole_characters, opening_temperature, start,
                             start_temperature)
    if save_intervention:
        save_interventions(save_intervention, ivs, steerable.info["fingerprint"])
    target = language or ivs[0].language
    if translate:
        pairs = translation_pairs(translate, target, limit)
        records = sample_records(steerable, ivs, "translation", [], [p[0] for p in pairs],
                                 batch_size=batch_size, references=[p[1] for p in pairs])
    else:
        records = sample_records(steerable, ivs, "unconditional", parse_seeds(seeds), None, prompt, batch_size)
    write_jsonl(out, records)
    share = language_share([r["text"] for r in records], target)
    typer.echo(f"{len(records)} samples → {out}; target language {target}: {share['target_share']:.2f} "
               f"({share['languages']})")


@app.command()
@friendly
def evaluate(
    samples: Path = typer.Argument(..., help="JSONL written by `langneurons generate`"),
    language: str = typer.Option(..., "--language", "-l", help="the target language"),
) -> None:
    """Target-language share and language distribution; chrF/BLEU when samples carry references."""
    from ..data import parse_json_line, read_lines
    from ..steer.sweep import score_cell

    if not samples.is_file():
        raise LangneuronsError(f"{samples}: no such file")
    records = [parse_json_line(samples, no, line) for no, line in read_lines(samples)]
    refs = [r["reference"] for r in records] if records and "reference" in records[0] else None
    row = score_cell(records, language, refs)
    for key, value in row.items():
        typer.echo(f"{key}: {value:.4f}" if isinstance(value, float) else f"{key}: {value}")


@app.command()
@friendly
def perplexity(
    run: Path = RUN_ARG,
    language: str = LANGUAGE,
    n: int = N,
    selection: str = SELECTION,
    value: str = VALUE,
    sentences: int = typer.Option(50, help="held-out sentences per evaluated language"),
    device: str = DEVICE,
    device_map: str = DEVICE_MAP,
    method: str = METHOD,
) -> None:
    """Perplexity of each language's held-out sentences without and with the intervention."""
    from ..steer.evaluate import perplexity as ppl
    from ..steer.sweep import heldout_sentences, open_run

    steerable = open_run(run, device, device_map=device_map)
    lm = steerable.loaded
    ivs = interventions_from(steerable, language, n, selection, value, "all", 0, "", None, method)
    plan = steerable.plan(ivs)
    table = Table("evaluated", "no intervention", f"{language} {ivs[0].selection} {ivs[0].n}" +
                  (" lape" if method == "lape" else ""))
    for lang in steerable.info["languages"]:
        texts = heldout_sentences(lang, sentences)
        table.add_row(lang, f"{ppl(lm.model, lm.tokenizer, texts):.2f}",
                      f"{ppl(lm.model, lm.tokenizer, texts, plan):.2f}")
    stdout.print(table)


@app.command()
@friendly
def sweep(
    run: Path = RUN_ARG,
    languages: str = typer.Option(None, help="default: all languages of the run"),
    ns: str = typer.Option("0,2,20,200,2000,20000", help="comma-separated N values"),
    selections: str = typer.Option(None, help="comma-separated: top,bottom,both,random; default both (lape: top)"),
    modes: str = typer.Option("unconditional", help="unconditional, translation or both, comma-separated"),
    seeds: str = typer.Option("1-100"),
    value: str = VALUE,
    positions: str = POSITIONS,
    translate: str = typer.Option("heldout", help="translation pairs: heldout or a JSONL file"),
    limit: int = typer.Option(None, help="translation: only the first N sentences"),
    ppl_sentences: int = typer.Option(50, help="held-out sentences for perplexity (0: skip)"),
    batch_size: int = typer.Option(50),
    device: str = DEVICE,
    device_map: str = DEVICE_MAP,
    method: str = METHOD,
) -> None:
    """Generate and score every language × N × selection; resumable; writes RUN/sweep.parquet."""
    from ..steer.sweep import open_run, parse_seeds
    from ..steer.sweep import sweep as run_sweep

    steerable = open_run(run, device, device_map=device_map)
    try:
        n_values = [int(x) for x in ns.split(",")]
    except ValueError:
        raise LangneuronsError(f"--ns {ns!r}: comma-separated integers, e.g. 0,20,2000") from None
    table = run_sweep(steerable, parse_languages(languages) or steerable.info["languages"], n_values,
                      parse_languages(selections or ("top" if method == "lape" else "both")),
                      parse_languages(modes), parse_seeds(seeds), value, positions, translate, limit,
                      ppl_sentences, batch_size, method=method)
    cols = [c for c in ["mode", "language", "selection", "n", "target_share", "chrf", "perplexity"] if c in table]
    stdout.print(table[cols].to_string(index=False))
    typer.echo(f"{len(table)} cells → {run / 'sweep.parquet'}")


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


@app.command()
@friendly
def frontier(
    run: Path = RUN_ARG,
    language: str = typer.Option(..., "--language", "-l"),
    values: str = typer.Option("on_p50", help="comma-separated values (on_p50, mix:A, clamp, …)"),
    positions: str = typer.Option("prefix:2,prefix:3,prefix:4",
                                  help="comma-separated positions (all, generated, first:K, prefix:K)"),
    selections: str = typer.Option("both"),
    ns: str = typer.Option("2000,4000,8000,16000", help="comma-separated N"),
    blocks: str = typer.Option("", help="semicolon-separated block ranges to try, e.g. ';0-3,14-17' ('' = all)"),
    modules: str = typer.Option("", help="semicolon-separated module filters to try, e.g. ';mlp' ('' = all)"),
    guards: str = typer.Option("on", help="on, off or off,on: openings with / without the guard (words, "
                                          "none repeated; for first:K and prefix:K positions)"),
    opening_temperatures: str = typer.Option("none", help="e.g. none,0.5: openings sampled at the sampling's "
                                                          "temperature and/or these (first:K and prefix:K)"),
    starts: str = typer.Option("off", help="off, on or off,on: openings whose first token is free / one that "
                                           "begins the run's sentences (first:K and prefix:K)"),
    start_temperatures: str = typer.Option("none", help="e.g. none,1.3: with --starts on, the first token sampled "
                                                        "at the sampling's temperature and/or these"),
    points: Path = typer.Option(None, help='JSON file of further settings: {"points": [\\[intervention, ...], ...]}, '
                                           "each a list of interventions applied together"),
    seeds: str = typer.Option("1-100", help="choose on these seeds"),
    heldout_seeds: str = typer.Option("", help="then score the choice and the paper's setting on these, e.g. 101-200"),
    batch_size: int = typer.Option(100),
    device: str = DEVICE,
    device_map: str = DEVICE_MAP,
) -> None:
    """Grid of steering strategies: target share vs fluency, its Pareto front and a recommendation."""
    from ..steer.frontier import (
        GOAL_PPL_RATIO,
        SETTING,
        grid,
        load_points,
        meets_goal,
        same_setting,
        seed_range,
    )
    from ..steer.frontier import frontier as run_frontier
    from ..steer.sweep import open_run, parse_seeds

    try:
        n_values = [int(x) for x in ns.split(",")]
    except ValueError:
        raise LangneuronsError(f"--ns {ns!r}: comma-separated integers, e.g. 200,2000") from None
    axes = (parse_switch(guards, "--guards"), parse_temperatures(opening_temperatures),
            parse_switch(starts, "--starts"), parse_temperatures(start_temperatures, "--start-temperatures"))
    steerable = open_run(run, device, device_map=device_map)
    settings = grid(language, parse_languages(values), parse_languages(positions), parse_languages(selections),
                    n_values, blocks.split(";"), modules.split(";"), *axes) + (load_points(points, language) if points else [])
    choice, heldout = parse_seeds(seeds), parse_seeds(heldout_seeds) if heldout_seeds else None
    table, best = run_frontier(steerable, language, settings, choice, heldout, batch_size)
    cols = ["seeds", "kind", *SETTING, "target_share", "generated_ppl", "ppl_ratio", "distinct_2",
            "degenerate_share", "padded_share", "usable_share", "opening_top_share", "on_front"]
    spans = {seed_range(s) for s in (choice, heldout) if s}
    shown = table[table["seeds"].isin(spans)].reindex(columns=cols)  # other seed sets stay in the CSV
    stdout.print(shown.sort_values(["seeds", "target_share"], ascending=[True, False]).to_string(index=False))
    for _, row in table[same_setting(table, best) & table["seeds"].isin(spans)].iterrows():
        baseline = row["generated_ppl"] / row["ppl_ratio"]
        typer.echo(f"recommended for {language} (chosen on seeds {best['seeds']}), seeds {row['seeds']}: "
                   f"share {row['target_share']:.2f} [{row['target_low']:.2f}-{row['target_high']:.2f}], "
                   f"ppl {row['generated_ppl']:.1f} ({row['ppl_ratio']:.2f} x the reference {baseline:.1f}; "
                   f"goal <= {GOAL_PPL_RATIO}), distinct-2 {row['distinct_2']:.2f}, degenerate "
                   f"{row['degenerate_share']:.2f} [{row['degenerate_low']:.2f}-{row['degenerate_high']:.2f}]"
                   f" ({row.get('padded_share', float('nan')):.2f} ended in 8+ blanks)"
                   f", {row.get('opening_top_share', float('nan')):.2f} open like the most common opening"
                   f" ({int(row['samples'])} samples; brackets: 95% bootstrap intervals)"
                   f" - {'meets' if meets_goal(row, baseline) else 'misses'} the goal")
    saved = run / "frontier" / f"{language}-recommended.json"
    typer.echo(f"setting: value={best['value']} positions={best['positions']} selection={best['selection']} "
               f"n={best['n']} blocks={best['blocks'] or 'all'} modules={best['modules'] or 'all'}"
               + (" guard" if best["guard"] else "")
               + (" whole-characters" if best["whole_characters"] else "")
               + (f" opening-temperature={best['opening_temperature']:g}" if best["opening_temperature"] > 0 else "")
               + (" start" if best["start"] else "")
               + (f" start-temperature={best['start_temperature']:g}" if best["start_temperature"] > 0 else "")
               + (f" + {best['also']}" if best["also"] else "") + f" → {saved} "
               f"(langneurons generate {run} --interventions {saved}); table → {run / 'frontier' / (language + '.csv')}")


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


corpus_app = typer.Typer(no_args_is_help=True, help="The embedded parallel corpus.")
app.add_typer(corpus_app, name="corpus")


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




def main() -> None:
    sys.exit(app())
