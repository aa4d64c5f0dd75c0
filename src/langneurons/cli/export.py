"""Serving commands: `export` (a DiffMean steering as a llama.cpp control vector)."""

from __future__ import annotations

from pathlib import Path

import typer

from ..errors import LangneuronsError
from .app import EDIT, NEURONS, OUTPUT, RUN_ARG, Method, app, friendly


@app.command(rich_help_panel="Serve")
@friendly
def export(
    run: Path = RUN_ARG,
    language: str = typer.Option(..., "--language", "-l", rich_help_panel=NEURONS),
    method: Method = typer.Option(Method.diffmean, rich_help_panel=NEURONS,
                                  help="diffmean: the only method that is a control vector"),
    blocks: str = typer.Option("", rich_help_panel=EDIT, metavar="BLOCKS",
                               help="block(s) ≥ 1 whose output gets the direction, e.g. 12 or 10-12 "
                               "(default: the recommendation in RUN, else 2/3 of the depth)"),
    alpha: float = typer.Option(None, rich_help_panel=EDIT, metavar="ALPHA",
                                help="strength in units of the block's typical hidden-state norm "
                                "(default: the recommendation, else 0.1)"),
    subtract: str = typer.Option(None, rich_help_panel=EDIT, metavar="LANG",
                                 help="steer along v_language − v_LANG (the source language)"),
    interventions: Path = typer.Option(None, rich_help_panel=NEURONS,
                                       help="a DiffMean intervention file instead of the options above"),
    out: Path = typer.Option(..., "--out", "-o", rich_help_panel=OUTPUT, help="the .gguf file to write"),
) -> None:
    """Write a DiffMean steering as a llama.cpp control vector (GGUF): `llama-cli -m MODEL.gguf
    --control-vector FILE.gguf` then steers the language with no Python at run time."""
    from ..find.diffmean import Directions
    from ..find.info import RunInfo
    from ..io import check_not_run_file, check_run_languages, ensure_writable
    from ..steer.diffmean import default_setting, export_control_vector, with_flags
    from ..steer.intervene import load_interventions, parse_strength

    if str(method) != "diffmean":
        raise LangneuronsError(f"--method {method}: only a diffmean steering is a control vector (AP and LAPE "
                               "edit single neurons, which llama.cpp cannot)")
    check_not_run_file(out, "--out", run)
    info = RunInfo.read(run)
    check_run_languages([language], info.languages, "--language")
    directions = Directions.read(run)
    setting = (load_interventions(interventions, info.fingerprint) if interventions else
               with_flags(default_setting(run, language, info.blocks, info.fingerprint), blocks,
                          None if alpha is None else f"add:{alpha:g}", None, subtract))
    iv = setting.interventions[0]
    if len(setting.interventions) > 1 or iv.positions != "all" or setting.decoding.active:
        typer.echo("note: llama.cpp adds a control vector at every position with plain decoding; only the "
                   "first intervention's direction is exported, at all positions", err=True)
    if iv.restore_norm:
        typer.echo("note: llama.cpp has no norm restoration; the vector is exported as added before it "
                   "(steer with --no-restore-norm to match the served model)", err=True)
    if iv.method == "diffmean" and parse_strength(iv.value)[0] == "clamp":
        typer.echo(f"note: llama.cpp can only add a vector; {iv.value} is exported as the addition that moves a "
                   "state at the other languages' mean as the clamp does (β·‖v‖ along v̂), which keeps pushing "
                   "states already in the language", err=True)
    ensure_writable(Path(out).parent)
    vectors = export_control_vector(out, directions, iv, info.model)
    norms = ", ".join(f"direction.{b}: |v| = {float((v ** 2).sum() ** 0.5):.2f}" for b, v in sorted(vectors.items()))
    typer.echo(f"{iv.label} → {out} ({norms}; {len(directions.blocks) - 1} layer tensors, zeros elsewhere); "
               f"use: llama-cli -m MODEL.gguf --control-vector {out}")
