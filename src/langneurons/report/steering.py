"""The report's section on the three steering methods: AP neurons, LAPE neurons and DiffMean
directions, each method's chosen setting on the same held-out seeds (`langneurons methods`), one
front per method per language, the DiffMean shapes compared across languages, and the alignment of
the DiffMean direction with what the AP neurons write.

Reads only CSV files (no torch): RUN/analysis/steering_methods.csv, diffmean_alignment.csv,
RUN/frontier/diffmean-shape.csv and RUN/frontier/<L>.csv.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from ..steer.pareto import GOAL_PPL_RATIO, GOAL_SHARE, pareto_front
from .frontier import load_frontiers
from .page import figure_grid, html_table, new_figure, section

COLORS = {"ap": "#1f6feb", "lape": "#bf8700", "diffmean": "#cf222e"}
NAMES = {"ap": "AP neurons", "lape": "LAPE neurons", "diffmean": "DiffMean direction"}


def fronts_figure(table: pd.DataFrame, chosen: pd.DataFrame, lang: str) -> Figure:
    """Share against perplexity (× the reference's) of every point of each method on the seeds it was
    searched on, each method's front joined; its chosen setting held out as a star."""
    fig = new_figure(4.8, 3.6)
    ax = fig.subplots()
    held = set(chosen["seeds"])
    for method, color in COLORS.items():
        points = table[(table["kind"] == "forced") & (table["method"] == method) & ~table["seeds"].isin(held)]
        if not points.empty:
            ax.scatter(points["ppl_ratio"], points["target_share"], s=18, color=color, alpha=0.45)
            front = pareto_front(points).sort_values("ppl_ratio")
            ax.plot(front["ppl_ratio"], front["target_share"], color=color, label=NAMES[method])
        star = chosen[chosen["method"] == method]
        ax.scatter(star["ppl_ratio"], star["target_share"], marker="*", s=170, color=color, edgecolors="#222",
                   linewidths=0.5, zorder=3)
    ax.axhline(GOAL_SHARE, color="#999", lw=0.8, ls="--")
    ax.axvline(GOAL_PPL_RATIO, color="#999", lw=0.8, ls="--")
    ax.set_xscale("log")
    ax.set_xlabel("perplexity × the reference's (log)")
    ax.set_ylabel("target share")
    ax.set_title(f"{lang}: fronts on the choice seeds, ★ held out", fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    return fig


def shape_summary(shapes: pd.DataFrame) -> pd.DataFrame:
    """One row per DiffMean shape: each language's share / degenerate share at the middle α."""
    cells = shapes.assign(cell=lambda t: t["target_share"].round(2).astype(str) + " / "
                          + t["degenerate_share"].round(2).astype(str) + t["meets_goal"].map({True: " ✓", False: ""}))
    table = cells.pivot_table(index=["blocks", "restore_norm", "positions"], columns="language", values="cell",
                              aggfunc="first").reset_index()
    marked = shapes[shapes["chosen"].astype(bool)].iloc[0] if shapes["chosen"].astype(bool).any() else None
    if marked is not None:
        table.insert(0, "chosen", (table["blocks"].astype(str) == str(marked["blocks"]))
                     & (table["restore_norm"] == marked["restore_norm"]) & (table["positions"] == marked["positions"]))
    return table


def steering_section(run: Path, langs: list[str], figures: Path) -> str:
    """The section, or '' when `langneurons methods` was not run."""
    path = Path(run) / "analysis" / "steering_methods.csv"
    if not path.exists():
        return ""
    methods = pd.read_csv(path, dtype={"seeds": str})
    parts = ["<p>Each method's chosen setting, scored on the same held-out seeds against the same reference "
             f"(goal: share ≥ {GOAL_SHARE}, degenerate ≤ 5%, perplexity ≤ {GOAL_PPL_RATIO} × the reference's). "
             "depth: where the edit sits, 0 = first block, 1 = last.</p>", html_table(methods.round(3))]
    tables = load_frontiers(run, sorted(set(methods["language"]) & set(langs)))
    figs = [(f"methods-{lang}", fronts_figure(table, methods[methods["language"] == lang], lang))
            for lang, table in tables.items()]
    if figs:
        parts.append(figure_grid(figs, figures))
    shapes = Path(run) / "frontier" / "diffmean-shape.csv"
    if shapes.exists():
        parts += ["<h3>DiffMean: one block and norm rule for every language</h3><p>Each shape at the middle α "
                  "(share / degenerate share; ✓ meets the goal); α is then searched per language within the chosen "
                  "shape.</p>", html_table(shape_summary(pd.read_csv(shapes, dtype={"blocks": str})))]
    aligned = Path(run) / "analysis" / "diffmean_alignment.csv"
    if aligned.exists():
        parts += ["<h3>Does the DiffMean direction point where the AP neurons push?</h3><p>Cosine between the "
                  "language's DiffMean direction v at the chosen block and the change the chosen AP units make to "
                  "that block's output (mean over held-out English tokens); controls: as many random units, and the "
                  "AP change's best cosine with another language's v.</p>",
                  html_table(pd.read_csv(aligned).round(3))]
    return section("Three steering methods: AP neurons, LAPE neurons, DiffMean directions", *parts)
