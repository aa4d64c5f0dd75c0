"""Steering commands: `generate`, `evaluate`, `perplexity`, `sweep`, `frontier`."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from ..errors import LangneuronsError
from .app import (
    BATCH_SIZE,
    CHAT_TEMPLATE,
    DECODING,
    DEVICE,
    DEVICE_MAP,
    DTYPE,
    EDIT,
    GRID,
    HARDWARE,
    LANGUAGE,
    METHOD,
    NAMED,
    NEURONS,
    OUTPUT,
    POSITIONS,
    RUN_ARG,
    SAMPLING,
    SEEDS,
    SELECTION,
    TRUST_REMOTE_CODE,
    VALUE,
    Dtype,
    Method,
    N,
    Selection,
    app,
    dtype_or,
    friendly,
    parse_languages,
    parse_switch,
    parse_temperatures,
    stdout,
)

if TYPE_CHECKING:
    from ..steer.generate import SamplingChanges


def interventions_from(steerable, language: str | None, n: int | None, selection: str | None,
                       value: str, positions: str | None, seed: int, blocks: str, file: Path | None, method: str,
                       modules: str = "", guard: bool = False, whole_characters: bool = False,
                       opening_temperature: float | None = None, start: bool = False,
                       start_temperature: float | None = None, alpha: float | None = None,
                       restore_norm: bool | None = None, subtract: str | None = None, own_starts: bool = False,
                       hold: str | None = None, no_loops: bool = False, distinct_starts: bool = False):
    """The setting the options (or an intervention file) describe: the edit and its decoding rules.
    Method diffmean starts from the RUN's recommended DiffMean setting (else the defaults) and
    replaces what --blocks, --alpha (or --value add:α / clamp:β), --restore-norm, --subtract, --positions and
    --hold give."""
    from ..steer.decoding import Decoding
    from ..steer.diffmean import default_setting, with_flags
    from ..steer.intervene import (
        Intervention,
        Setting,
        load_interventions,
        parse_strength,
    )
    from ..steer.steerable import method_defaults

    if file:  # --no-loops also holds for a saved setting
        setting = load_interventions(file, steerable.info.fingerprint)
        return replace(setting, decoding=replace(setting.decoding, no_loops=True)) if no_loops else setting
    if not language:
        raise LangneuronsError("--language is needed (or --interventions FILE)")
    rules = Decoding(guard, whole_characters, opening_temperature, start, start_temperature, own_starts, no_loops,
                     distinct_starts)
    if method == "diffmean":
        if value != "on_p50" and alpha is not None:
            raise LangneuronsError(f"--value {value} and --alpha {alpha:g}: give one strength (--alpha A is --value add:A)")
        edit = f"add:{alpha:g}" if alpha is not None else None if value == "on_p50" else value
        if edit:
            parse_strength(edit)
        base = default_setting(steerable.run, language, steerable.info.blocks, steerable.info.fingerprint)
        setting = with_flags(base, blocks, edit, restore_norm, subtract, positions, hold)
        return Setting(setting.interventions, rules if rules.active else setting.decoding)
    if alpha is not None or restore_norm is not None or subtract or hold is not None:
        raise LangneuronsError("--alpha, --restore-norm, --subtract and --hold: only with --method diffmean")
    n, selection = method_defaults(steerable, method, language, n, selection)
    edit = Intervention(language, n, selection, value, positions or "all", seed, blocks, method, modules)
    return Setting((edit,), rules)


MAX_NEW_TOKENS = typer.Option(None, min=1, rich_help_panel=SAMPLING, help="default 64 (128 translating; the task "
                              "search: 64 for translations, ended at their first line)")
TEMPERATURE = typer.Option(None, rich_help_panel=SAMPLING, help="default 0.8")
TOP_P = typer.Option(None, rich_help_panel=SAMPLING, help="default 0.9")
GREEDY = typer.Option(None, "--greedy/--sample", rich_help_panel=SAMPLING, help="default: sample (greedy translating)")
STOP = typer.Option(None, rich_help_panel=SAMPLING, metavar="TEXT",
                    help='end the answer where this text starts, e.g. "\\nQ:" (\\n escapes; may repeat; requests '
                    "end at their transcript's next turn by default)")


def sampling_changes(max_new_tokens: int | None, temperature: float | None, top_p: float | None,
                     greedy: bool | None, stop: list[str] | None) -> SamplingChanges:
    """The sampling options given on the command line; `\\n` in a stop string is a newline."""
    from ..steer.generate import SamplingChanges

    return SamplingChanges(max_new_tokens, temperature, top_p, greedy,
                           tuple(s.replace("\\n", "\n").replace("\\t", "\t") for s in stop) if stop else None)


@app.command(rich_help_panel="Steer")
@friendly
def generate(
    run: Path = RUN_ARG,
    language: str = LANGUAGE,
    n: int = N,
    selection: Selection | None = SELECTION,
    method: Method = METHOD,
    random_seed: int = typer.Option(0, rich_help_panel=NEURONS, help="seed choosing the neurons of --selection random"),
    blocks: str = typer.Option("", rich_help_panel=NEURONS, metavar="BLOCKS",
                               help="choose neurons only in these blocks: A-B or A,B,..., e.g. 0-3,14-17"),
    modules: str = typer.Option("", rich_help_panel=NEURONS, metavar="NAMES",
                                help="choose neurons only in modules whose path contains one of these, e.g. mlp"),
    interventions: Path = typer.Option(None, rich_help_panel=NEURONS,
                                       help="JSON file of interventions (combined), instead of the options above"),
    value: str = VALUE,
    alpha: float = typer.Option(None, rich_help_panel=EDIT, metavar="ALPHA",
                                help="diffmean: add α·v̂ in units of the block's typical hidden-state norm "
                                "(default: the frontier's recommendation in RUN, else 0.1)"),
    restore_norm: bool = typer.Option(None, "--restore-norm/--no-restore-norm", rich_help_panel=EDIT,
                                      help="diffmean: rescale each edited hidden state to its norm before the "
                                      "edit (default: the recommendation, else on)"),
    subtract: str = typer.Option(None, rich_help_panel=EDIT, metavar="LANG",
                                 help="diffmean: steer along v_language − v_LANG (the source language)"),
    hold: str = typer.Option(None, rich_help_panel=EDIT, metavar="off|clamp:β|add:α",
                             help="diffmean: after the opening, this edit of the same direction on every new token "
                             "(default: the recommendation's, else off)"),
    positions: str | None = POSITIONS,
    guard: bool = typer.Option(False, rich_help_panel=DECODING,
                               help="with first:K/prefix:K: the opening's tokens are words, none repeated"),
    whole_characters: bool = typer.Option(False, rich_help_panel=DECODING,
                                          help="sample byte tokens only where the text stays well-formed UTF-8"),
    opening_temperature: float = typer.Option(None, rich_help_panel=DECODING,
                                              help="with first:K/prefix:K: sample the opening at this temperature"),
    start: bool = typer.Option(False, rich_help_panel=DECODING,
                               help="with first:K/prefix:K: the first new token is one that begins the run's "
                               "sentences (over-represented there)"),
    start_temperature: float = typer.Option(None, rich_help_panel=DECODING,
                                            help="with --start: sample the first token at this temperature"),
    own_starts: bool = typer.Option(False, rich_help_panel=DECODING,
                                    help="with --start: the starts of the target language's sentences only"),
    distinct_starts: bool = typer.Option(False, rich_help_panel=DECODING,
                                         help="with --own-starts: only those that English sentences do not share "
                                         "(\"In\" opens German and English alike)"),
    no_loops: bool = typer.Option(False, rich_help_panel=DECODING,
                                  help="no new token begins another copy of a unit the text repeats in a row (a "
                                  "unit of 2-8 tokens a third time, one token a fourth); also with --interventions"),
    seeds: str = typer.Option(None, rich_help_panel=SAMPLING, metavar="SEEDS",
                              help="one sample per seed (and prompt): A-B or A,B,...; default 1-100 from BOS, "
                              "1 with --prompts"),
    translate: str = typer.Option(None, rich_help_panel=SAMPLING, metavar="heldout|FILE",
                                  help="translate instead: heldout (built-in; heldout:choose / heldout:heldout its "
                                  "halves) or a JSONL of {en, <lang>} pairs"),
    named: bool = NAMED,
    prompts: str = typer.Option(None, rich_help_panel=SAMPLING, metavar="FILE|hf:DIR|requests:L",
                                help="answer these prompts: .txt (one per line, \\n escapes), .jsonl {prompt, id, "
                                "reference}, .csv with a prompt column, hf:DIR, or requests:L[:choose|heldout]"),
    chat_template: bool = CHAT_TEMPLATE,
    examples: bool = typer.Option(False, rich_help_panel=SAMPLING,
                                  help="with --prompts: each prompt after two turns answered in the language by "
                                  "the run's own sentences of it (the frontier's `examples` rows)"),
    limit: int = typer.Option(None, min=1, rich_help_panel=SAMPLING,
                              help="with --translate or --prompts: only the first N"),
    prompt: str = typer.Option(None, rich_help_panel=SAMPLING, help="continue this text instead of BOS"),
    max_new_tokens: int = MAX_NEW_TOKENS,
    temperature: float = TEMPERATURE,
    top_p: float = TOP_P,
    greedy: bool = GREEDY,
    stop: list[str] = STOP,
    out: Path = typer.Option(..., "--out", "-o", rich_help_panel=OUTPUT, help="JSONL file of samples"),
    save_intervention: Path = typer.Option(None, rich_help_panel=OUTPUT,
                                           help="also write the intervention(s) as JSON here"),
    device: str = DEVICE,
    dtype: Dtype = DTYPE,
    device_map: str = DEVICE_MAP,
    trust_remote_code: bool = TRUST_REMOTE_CODE,
    batch_size: int = BATCH_SIZE,
) -> None:
    """Generate text while forcing a language's neurons (or adding its residual direction: --method
    diffmean); one JSON line per sample."""
    from ..io import (
        check_not_run_file,
        check_run_languages,
        ensure_writable,
        write_jsonl,
    )
    from ..steer.evaluate import language_share
    from ..steer.generate import TRANSLATION, UNCONDITIONAL
    from ..steer.intervene import save_interventions
    from ..steer.steerable import open_run, parse_seeds, sample_records

    check_not_run_file(out, "--out", run)  # before any work: never replace a run file or a folder
    if save_intervention:
        check_not_run_file(save_intervention, "--save-intervention", run)
    ensure_writable(Path(out).parent)
    steerable = open_run(run, device, dtype_or(dtype, None), trust_remote_code=trust_remote_code,
                         device_map=device_map)
    if language:
        check_run_languages([language], steerable.info.languages, "--language")
    setting = interventions_from(steerable, language, n, selection and str(selection), value, positions, random_seed,
                                 blocks, interventions, str(method), modules, guard, whole_characters,
                                 opening_temperature, start, start_temperature, alpha, restore_norm, subtract,
                                 own_starts, hold, no_loops, distinct_starts)
    ivs = list(setting.interventions)
    check_run_languages([iv.language for iv in ivs], steerable.info.languages,
                        f"{interventions}: language" if interventions else "--language")
    if save_intervention:
        save_interventions(save_intervention, setting, steerable.info.fingerprint)
    target = language or ivs[0].language
    if translate and prompts:
        raise LangneuronsError("--translate and --prompts: give one of them")
    changes = sampling_changes(max_new_tokens, temperature, top_p, greedy, stop)
    if translate or prompts:
        from ..steer.prompts import framed, load_prompts, translation_prompts
        from ..steer.task import PROMPTED, prompt_records

        if translate and examples:
            raise LangneuronsError("--examples: only with --prompts (a translation prompt has its own frame)")
        if translate:
            chosen = translation_prompts(target, translate, named, limit)
        else:
            chosen = load_prompts(prompts)[:limit]
        chosen = framed(chosen, steerable.example_turns(target) if examples else (),
                        steerable.loaded.tokenizer if chat_template else None)
        base = TRANSLATION if translate else (PROMPTED if prompts.startswith("requests:") else UNCONDITIONAL)
        records = prompt_records(steerable, setting, chosen, parse_seeds(seeds or ("0" if translate else "1")),
                                 changes.on(base), "translation" if translate else "prompts",
                                 batch_size)
    else:
        if chat_template or named or examples:
            raise LangneuronsError("--chat-template, --named and --examples: only with --prompts / --translate")
        records = sample_records(steerable, ivs, "unconditional", parse_seeds(seeds or "1-100"), prompt,
                                 batch_size, decoding=setting.decoding, sampling=changes.on(UNCONDITIONAL))
    write_jsonl(out, records)
    share = language_share([r["text"] for r in records], target)
    typer.echo(f"{len(records)} samples → {out}; target language {target}: {share['target_share']:.2f} "
               f"({share['languages']})")


@app.command(rich_help_panel="Steer")
@friendly
def evaluate(
    samples: Path = typer.Argument(..., help="JSONL written by `langneurons generate`"),
    language: str = typer.Option(..., "--language", "-l", help="the target language"),
    run: Path | None = typer.Option(None, "--run", help="a RUN folder: also the answers' perplexity and, for "
                                    "answers to prompts, the content score, both under its model unedited"),
    device: str = DEVICE,
) -> None:
    """Target-language share and language distribution, line-level pass rate, leakage and fluency;
    chrF/BLEU when samples carry references; with --run, perplexity and the reference-free content score."""
    from ..data import parse_json_line, read_lines
    from ..steer.steerable import open_run, score_cell
    from ..steer.task import task_scores

    if not samples.is_file():
        raise LangneuronsError(f"{samples}: no such file")
    records = []
    for no, line in read_lines(samples):
        record = parse_json_line(samples, no, line)
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            raise LangneuronsError(f'{samples}:{no}: a sample needs a "text" field (a JSON object written by '
                                   "`langneurons generate`)")
        records.append(record)
    if not records:
        raise LangneuronsError(f"{samples}: no samples in the file; write some with `langneurons generate`")
    refs = [r["reference"] for r in records] if all("reference" in r for r in records) else None
    row = task_scores(records, language, open_run(run, device)) if run else score_cell(records, language, refs)
    for key, value in row.items():
        typer.echo(f"{key}: {value:.4f}" if isinstance(value, float) else f"{key}: {value}")


@app.command(rich_help_panel="Steer")
@friendly
def perplexity(
    run: Path = RUN_ARG,
    language: str = LANGUAGE,
    n: int = N,
    selection: Selection | None = SELECTION,
    method: Method = METHOD,
    value: str = VALUE,
    sentences: int = typer.Option(50, rich_help_panel=SAMPLING, help="held-out sentences per evaluated language"),
    device: str = DEVICE,
    dtype: Dtype = DTYPE,
    device_map: str = DEVICE_MAP,
    trust_remote_code: bool = TRUST_REMOTE_CODE,
) -> None:
    """Perplexity of each language's held-out sentences without and with the intervention."""
    from ..steer.evaluate import perplexity as ppl
    from ..steer.steerable import heldout_sentences, open_run

    steerable = open_run(run, device, dtype_or(dtype, None), trust_remote_code=trust_remote_code,
                         device_map=device_map)
    lm = steerable.loaded
    ivs = list(interventions_from(steerable, language, n, selection and str(selection), value, "all", 0, "", None,
                                  str(method)).interventions)
    plan = steerable.plan(ivs)
    table = Table("evaluated", "no intervention", ivs[0].label if method == "diffmean" else
                  f"{language} {ivs[0].selection} {ivs[0].n}" + (" lape" if method == "lape" else ""))
    for lang in steerable.info.languages:
        texts = heldout_sentences(lang, sentences)
        table.add_row(lang, f"{ppl(lm.model, lm.tokenizer, texts):.2f}",
                      f"{ppl(lm.model, lm.tokenizer, texts, plan):.2f}")
    stdout.print(table)


@app.command(rich_help_panel="Steer")
@friendly
def sweep(
    run: Path = RUN_ARG,
    languages: str = typer.Option(None, rich_help_panel=GRID, help="e.g. de,fr; default: all languages of the run"),
    ns: str = typer.Option("0,2,20,200,2000,20000", rich_help_panel=GRID, help="N values, e.g. 0,20,2000"),
    selections: str = typer.Option(None, rich_help_panel=GRID, metavar="SELECTIONS",
                                   help="of top, bottom, both, random; default both (lape: top)"),
    modes: str = typer.Option("unconditional", rich_help_panel=GRID, metavar="MODES",
                              help="of unconditional, translation, prompts, e.g. unconditional,translation"),
    method: Method = METHOD,
    value: str = VALUE,
    positions: str | None = POSITIONS,
    seeds: str = SEEDS,
    translate: str = typer.Option("heldout", rich_help_panel=SAMPLING, metavar="heldout|FILE",
                                  help="translation pairs: heldout or a JSONL file"),
    limit: int = typer.Option(None, min=1, rich_help_panel=SAMPLING, help="translation: only the first N sentences"),
    ppl_sentences: int = typer.Option(50, rich_help_panel=SAMPLING,
                                      help="held-out sentences for perplexity (0: skip)"),
    prompts: str = typer.Option("requests", rich_help_panel=SAMPLING, metavar="requests|FILE|hf:DIR",
                                help="mode prompts: the built-in requests for each language, or these prompts"),
    chat_template: bool = CHAT_TEMPLATE,
    max_new_tokens: int = MAX_NEW_TOKENS,
    temperature: float = TEMPERATURE,
    top_p: float = TOP_P,
    greedy: bool = GREEDY,
    stop: list[str] = STOP,
    device: str = DEVICE,
    dtype: Dtype = DTYPE,
    device_map: str = DEVICE_MAP,
    trust_remote_code: bool = TRUST_REMOTE_CODE,
    batch_size: int = BATCH_SIZE,
) -> None:
    """Generate and score every language × N × selection; resumable; writes RUN/sweep.parquet."""
    from ..steer.steerable import open_run, parse_seeds
    from ..steer.sweep import sweep as run_sweep

    if method == "diffmean":
        raise LangneuronsError("sweep --method diffmean: a DiffMean edit has no N to sweep; search it with "
                               "`langneurons frontier RUN -l L --method diffmean` (α × block × norm restoration)")
    steerable = open_run(run, device, dtype_or(dtype, None), trust_remote_code=trust_remote_code,
                         device_map=device_map)
    try:
        n_values = [int(x) for x in ns.split(",")]
    except ValueError:
        raise LangneuronsError(f"--ns {ns!r}: comma-separated integers, e.g. 0,20,2000") from None
    table = run_sweep(steerable, parse_languages(languages) or steerable.info.languages, n_values,
                      parse_languages(selections or ("top" if method == "lape" else "both")),
                      parse_languages(modes), parse_seeds(seeds), value, positions or "all", translate, limit,
                      ppl_sentences, batch_size, method=str(method), prompts=prompts,
                      sampling=sampling_changes(max_new_tokens, temperature, top_p, greedy, stop),
                      chat_template=chat_template)
    cols = [c for c in ["mode", "language", "selection", "n", "target_share", "lpr", "chrf", "content", "perplexity"]
            if c in table]
    stdout.print(table[cols].to_string(index=False))
    typer.echo(f"{len(table)} cells → {run / 'sweep.parquet'}")


@app.command(rich_help_panel="Steer")
@friendly
def frontier(
    run: Path = RUN_ARG,
    language: str = typer.Option(..., "--language", "-l", rich_help_panel=NEURONS,
                                 help="the target language; with --method diffmean several (de,fr,...) share one "
                                 "block and norm rule, α per language"),
    values: str = typer.Option("on_p50", rich_help_panel=GRID, metavar="VALUES",
                               help="values as in generate --value, e.g. on_p50,mix:0.7,clamp"),
    positions: str = typer.Option("prefix:2,prefix:3,prefix:4", rich_help_panel=GRID, metavar="POSITIONS",
                                  help="positions as in generate --positions (all, generated, first:K, prefix:K)"),
    selections: str = typer.Option("both", rich_help_panel=GRID, metavar="SELECTIONS",
                                   help="of top, bottom, both, random"),
    ns: str = typer.Option("2000,4000,8000,16000", rich_help_panel=GRID, help="N values"),
    blocks: str = typer.Option("", rich_help_panel=GRID, metavar="BLOCKS;...",
                               help="SEMICOLON-separated block ranges to try, e.g. ';0-3,14-17' ('' = all; "
                               "diffmean: the blocks at 1/2, 2/3 and 4/5 of the depth, and 2/3 to 9/10 together)"),
    method: Method = typer.Option(Method.ap, rich_help_panel=GRID,
                                  help="ap or lape (the grid of --values, --selections, --ns; lape: N = all of the "
                                  "language's, selection top) or diffmean (the grid of --alphas and --clamps × --blocks × "
                                  "--restore-norms, at --positions, default prefix:3 with --guards)"),
    alphas: str = typer.Option("0.05,0.1,0.2,0.3", rich_help_panel=GRID, metavar="ALPHAS",
                               help="diffmean: add:α strengths, in units of the block's typical hidden-state norm "
                               "('' none)"),
    clamps: str = typer.Option("0.5,1,1.5,2", rich_help_panel=GRID, metavar="BETAS",
                               help="diffmean: clamp:β levels along v̂, in units of the language's mean difference "
                               "from the other languages' mean (1: the language's mean; '' none)"),
    restore_norms: str = typer.Option("on,off", rich_help_panel=GRID, metavar="off|on|off,on",
                                      help="diffmean: with and/or without norm restoration"),
    holds: str = typer.Option(None, rich_help_panel=GRID, metavar="off,clamp:β,add:α,...",
                              help="diffmean: after choosing the opening, try it alone (off) and followed by "
                              "these edits of the same direction on the rest of the text; default "
                              "off,clamp:0.5,clamp:1"),
    modules: str = typer.Option("", rich_help_panel=GRID, metavar="NAMES;...",
                                help="SEMICOLON-separated module filters to try, e.g. ';mlp' ('' = all)"),
    points: Path = typer.Option(None, rich_help_panel=GRID,
                                help='JSON file of further settings: {"points": [\\[intervention, ...], ...]}, '
                                "each a list of interventions applied together (with --task and no grid "
                                "option: these points only)"),
    guards: str = typer.Option("on", rich_help_panel=DECODING, metavar="off|on|off,on",
                               help="openings with / without the guard (words, none repeated; for first:K "
                               "and prefix:K positions)"),
    opening_temperatures: str = typer.Option("none", rich_help_panel=DECODING, metavar="none|T,...",
                                             help="e.g. none,0.5: openings sampled at the sampling's temperature "
                                             "and/or these (first:K and prefix:K)"),
    starts: str = typer.Option(None, rich_help_panel=DECODING, metavar="off|on|off,on",
                               help="openings whose first token is free / one that begins the run's sentences "
                               "(first:K and prefix:K; --method diffmean: the language's own sentences); "
                               "default off, off,on for --method diffmean"),
    start_temperatures: str = typer.Option("none", rich_help_panel=DECODING, metavar="none|T,...",
                                           help="e.g. none,1.3: with --starts on, the first token sampled at the "
                                           "sampling's temperature and/or these"),
    task: str = typer.Option(None, rich_help_panel=GRID, metavar="translation|prompts",
                             help="score settings on answers to prompts (language, content, fluency) instead of "
                             "text from BOS; the default grid is the task search (docs/steering.md)"),
    prompts: str = typer.Option(None, rich_help_panel=SAMPLING, metavar="FILE|hf:DIR|requests:L",
                                help="the task's prompts (implies --task prompts; default requests:L); with "
                                "--task translation a JSONL of {en, <lang>} pairs (default heldout)"),
    named: bool = NAMED,
    chat_template: bool = CHAT_TEMPLATE,
    examples: bool = typer.Option(False, rich_help_panel=SAMPLING,
                                  help="--task prompts: choose on the prompts after two turns answered in the "
                                  "language (generate --examples); written as <L>-prompts-examples"),
    max_new_tokens: int = MAX_NEW_TOKENS,
    temperature: float = TEMPERATURE,
    top_p: float = TOP_P,
    greedy: bool = GREEDY,
    stop: list[str] = STOP,
    split: str = typer.Option("choose", rich_help_panel=SAMPLING, metavar="PART",
                              help="--task: choose on this part of the prompts (choose, heldout or all)"),
    heldout_split: str = typer.Option("heldout", rich_help_panel=SAMPLING, metavar="PART",
                                      help="--task: then score the choice and the baselines on this part ('' none)"),
    limit: int = typer.Option(None, min=1, rich_help_panel=SAMPLING,
                              help="--task: only the first N prompts of each part (faster, noisier)"),
    seeds: str = typer.Option("1-100", rich_help_panel=SAMPLING, metavar="SEEDS",
                              help="choose on these seeds: A-B or A,B,..., e.g. 1-100 (--task: 1)"),
    heldout_seeds: str = typer.Option("", rich_help_panel=SAMPLING, metavar="SEEDS",
                                      help="then score the choice and the paper's setting on these, e.g. 101-200"),
    device: str = DEVICE,
    dtype: Dtype = DTYPE,
    device_map: str = DEVICE_MAP,
    trust_remote_code: bool = TRUST_REMOTE_CODE,
    batch_size: int = typer.Option(100, min=1, rich_help_panel=HARDWARE, help="samples generated together"),
) -> None:
    """Grid of steering strategies: target share vs fluency, its Pareto front and a recommendation."""
    from ..steer.frontier import frontier as run_frontier
    from ..steer.frontier import grid, load_points, seed_range, study_method
    from ..steer.intervene import recommended_path
    from ..steer.pareto import GOAL_PPL_RATIO, SETTING, meets_goal, same_setting
    from ..steer.steerable import method_defaults, open_run, parse_seeds

    try:
        n_values = [int(x) for x in ns.split(",")]
    except ValueError:
        raise LangneuronsError(f"--ns {ns!r}: comma-separated integers, e.g. 200,2000") from None
    axes = (parse_switch(guards, "--guards"), parse_temperatures(opening_temperatures),
            parse_switch(starts or "off", "--starts"), parse_temperatures(start_temperatures, "--start-temperatures"))
    languages = parse_languages(language)
    options_given = method != "ap" or (values, positions, ns) != (
        "on_p50", "prefix:2,prefix:3,prefix:4", "2000,4000,8000,16000")
    grid_given = points is not None or options_given
    if len(languages) > 1 and (points or not (method == "diffmean" or task or prompts)
                               or ((task or prompts) and grid_given)):
        raise LangneuronsError(f"-l {language}: several languages share one setting shape in a DiffMean search from "
                               "BOS (--method diffmean) or a task search on its default grid (--task, --prompts); "
                               "run one language at a time for other grids")
    steerable = open_run(run, device, dtype_or(dtype, None), trust_remote_code=trust_remote_code,
                         device_map=device_map)
    if holds is not None and method != "diffmean":
        raise LangneuronsError("--holds: only with --method diffmean (a hold follows a DiffMean opening)")
    if examples and not (task or prompts):
        raise LangneuronsError("--examples: only with --task prompts or --prompts (a search on prompts)")
    if method == "diffmean":
        from ..steer.diffmean import HOLDS, OPENING, default_blocks, diffmean_grid

        hold_values = parse_holds(holds) if holds is not None else list(HOLDS)
        strengths = [f"add:{a:g}" for a in parse_numbers(alphas, "--alphas")]
        strengths += [f"clamp:{b:g}" for b in parse_numbers(clamps, "--clamps")]
        if not strengths:
            raise LangneuronsError("--alphas and --clamps are both empty: give at least one strength")
        axes_dm = (blocks.split(";") if blocks else default_blocks(steerable.info.blocks),
                   parse_switch(restore_norms, "--restore-norms"),
                   [OPENING] if positions == "prefix:2,prefix:3,prefix:4" else parse_languages(positions), axes[0],
                   parse_switch(starts or "off,on", "--starts"))
        if len(languages) > 1 and not (task or prompts):
            shared_study(steerable, run, languages, strengths, axes_dm, seeds, heldout_seeds, batch_size, hold_values)
            return
        settings = diffmean_grid(language, strengths, *axes_dm)
    elif (task or prompts) and points and not options_given:  # a task's points file replaces the default grid
        settings = []
    else:
        if method == "lape" and ns == "2000,4000,8000,16000":  # LAPE's N: all of the language's neurons
            n_values = [method_defaults(steerable, "lape", language, None, None)[0]]
            if not n_values[0]:
                raise LangneuronsError(f"--method lape: {language} has no LAPE neurons in {run}; keep more with a higher "
                                       "--lape-top-rate in `langneurons find`")
        settings = grid(language, parse_languages(values), parse_languages(positions),
                        parse_languages(selections if method != "lape" or selections != "both" else "top"),
                        n_values, blocks.split(";"), modules.split(";"), *axes, method=method.value)
    settings += load_points(points, language) if points else []
    if task or prompts:
        task_study(steerable, run, languages, task or "prompts", prompts, named, chat_template, split, heldout_split,
                   settings if grid_given else [], seeds, batch_size, limit, examples,
                   sampling_changes(max_new_tokens, temperature, top_p, greedy, stop))
        return
    choice, heldout = parse_seeds(seeds), parse_seeds(heldout_seeds) if heldout_seeds else None
    if method == "diffmean":
        from ..steer.frontier import FrontierSettings
        from ..steer.shared import held_frontier

        table, best = held_frontier(steerable, FrontierSettings(language, tuple(settings), tuple(choice),
                                                                tuple(heldout or ()), batch_size), hold_values)
    else:
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
    saved = recommended_path(run, language, study_method(settings))
    typer.echo(f"setting: value={best['value']} positions={best['positions']} selection={best['selection']} "
               f"n={best['n']} blocks={best['blocks'] or 'all'} modules={best['modules'] or 'all'}"
               + (" guard" if best["guard"] else "")
               + (" whole-characters" if best["whole_characters"] else "")
               + (f" opening-temperature={best['opening_temperature']:g}" if best["opening_temperature"] > 0 else "")
               + (" start" if best["start"] else "") + (" own-starts" if best.get("own_starts") else "")
               + (" distinct-starts" if best.get("distinct_starts") else "")
               + (" no-loops" if best.get("no_loops") else "")
               + (f" start-temperature={best['start_temperature']:g}" if best["start_temperature"] > 0 else "")
               + (f" + {best['also']}" if best["also"] else "")
               + (f" method=diffmean restore-norm={'on' if best['restore_norm'] else 'off'}"
                  if best["method"] == "diffmean" else "") + f" → {saved} "
               f"(langneurons generate {run} --interventions {saved}); table → {run / 'frontier' / (language + '.csv')}")


def parse_numbers(text: str, option: str) -> list[float]:
    """A comma-separated list of numbers ('' none)."""
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise LangneuronsError(f"{option} {text!r}: comma-separated numbers, e.g. 0.05,0.1,0.2") from None


def parse_holds(text: str) -> list[str]:
    """--holds: comma-separated DiffMean edits (clamp:β, add:α) or off, checked before any work."""
    from ..steer.diffmean import check_hold

    try:
        return [check_hold(h.strip()) for h in text.split(",") if h.strip()] or ["off"]
    except LangneuronsError as error:
        raise LangneuronsError(f"--holds {text!r}: {error}") from None


def shared_study(steerable, run: Path, languages: list[str], values: list[str], axes: tuple, seeds: str,
                 heldout_seeds: str, batch_size: int, holds: list[str]) -> None:
    """`frontier -l L1,L2,... --method diffmean`: one shape for all languages (steer/shared.py)."""
    from ..steer.shared import SHAPE, shared_diffmean
    from ..steer.steerable import parse_seeds

    shapes, chosen = shared_diffmean(steerable, languages, values, *axes, parse_seeds(seeds),
                                     parse_seeds(heldout_seeds) if heldout_seeds else None, batch_size, holds=holds)
    stdout.print(shapes.drop(columns=["seeds"]).to_string(index=False))
    for language, best in chosen.items():
        typer.echo(f"{language}: {best['value']} at blocks {best['blocks']}, norm restored {best['restore_norm']}, "
                   f"positions {best['positions']}, guard {best['guard']}, start {best['start']}"
                   + (f", then {best['also']}" if best["also"] else ", no hold") + ": "
                   f"share {best['target_share']:.2f}, degenerate {best['degenerate_share']:.2f} on seeds "
                   f"{best['seeds']} → {run / 'frontier' / (language + '-diffmean-recommended.json')}")
    typer.echo(f"shared shape ({', '.join(SHAPE)}) → {run / 'frontier' / 'diffmean-shape.csv'}; held-out rows in "
               f"{run / 'frontier'}/<L>.csv")


def task_study(steerable, run: Path, languages: list[str], task: str, prompts: str | None, named: bool,
               chat_template: bool, split: str, heldout_split: str, points: list, seeds: str,
               batch_size: int, limit: int | None, examples: bool, changes: SamplingChanges) -> None:
    """`frontier --task`: the task frontier (steer/taskfrontier.py), its table and recommendation; with
    several languages one shape for all of them (steer/shared.py)."""
    from ..steer.frontier import setting_of
    from ..steer.steerable import parse_seeds
    from ..steer.task import PROMPTED, TRANSLATING
    from ..steer.taskfrontier import TaskStudy, task_frontier

    sampling = changes.on(TRANSLATING if task == "translation" else PROMPTED) if changes.given else None
    study = TaskStudy(languages[0], task, prompts or "", named, tuple(points),
                      tuple(parse_seeds("1" if seeds == "1-100" else seeds)), sampling, chat_template=chat_template,
                      choose=split, heldout=heldout_split, batch_size=batch_size, limit=limit, examples=examples)
    if len(languages) > 1:
        from ..steer.shared import shared_task

        shapes, chosen = shared_task(steerable, languages, study)
        stdout.print(shapes.to_string(index=False))
        for language, best in chosen.items():
            typer.echo(f"{language}: {setting_of(best).label} → "
                       f"{run / 'frontier' / (replace(study, language=language).name + '-recommended.json')}")
        typer.echo(f"shapes → {run / 'frontier' / (study.name.split('-', 1)[1] + '-shape.csv')}")
        return
    table, best = task_frontier(steerable, study)
    cols = ["split", "prompt_style", "kind", "method", "value", "positions", "n", "blocks", "target_share", "lpr",
            "chrf", "content", "degenerate_share", "generated_ppl", "on_front"]
    shown = table.reindex(columns=cols).sort_values(["split", "prompt_style", "kind", "target_share"],
                                                    ascending=[True, True, True, False])
    stdout.print(shown.to_string(index=False))
    saved = run / "frontier" / f"{study.name}-recommended.json"
    typer.echo(f"recommended for {study.name} (chosen on part {split}): {setting_of(best).label} → {saved} "
               f"(langneurons generate {run} --interventions {saved} ...); table → {run / 'frontier' / study.name}.csv")
