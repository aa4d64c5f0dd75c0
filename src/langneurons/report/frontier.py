"""The report's frontier section: target-language share against fluency for every steering
setting tried by `langneurons frontier`, its Pareto front, and the setting recommended per language.

Settings are chosen on one set of seeds (the one of the last `frontier` run) and, where the
recommended setting and the paper's were also run on other seeds, their held-out numbers are
shown beside: a choice made and scored on the same seeds flatters itself.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import LogLocator, NullFormatter, StrMethodFormatter

from ..steer.pareto import (
    GOAL_PPL_RATIO,
    GOAL_SHARE,
    SETTING,
    baseline_ppl,
    fill_setting_columns,
    meets_goal,
    pareto_front,
    recommend,
    same_setting,
)
from .page import figure_grid, html_table, new_figure, section

GOAL = ("Goal: target share ≥ 0.90, degenerate share ≤ 5% and perplexity of the generated text under the "
        "unforced model ≤ 1.5 × that of the reference: the unforced model's own continuations of sentences "
        "in the language (★). ◆ marks unforced generation from BOS (mostly English).")


def load_frontiers(run: Path, langs: list[str]) -> dict[str, pd.DataFrame]:
    """RUN/frontier/<lang>.csv of each language that has one with a forced (N > 0) setting."""
    paths = {lang: Path(run) / "frontier" / f"{lang}.csv" for lang in langs}
    text = {"blocks": str, "modules": str, "also": str, "seeds": str}
    tables = {lang: pd.read_csv(path, dtype=text) for lang, path in paths.items() if path.exists()}
    for table in tables.values():
        fill_setting_columns(table)
    return {lang: table for lang, table in tables.items() if (table["n"] > 0).any()}


def choice_seeds(table: pd.DataFrame) -> str:
    """The seed range settings were last chosen on (tables of older versions: the one most rows
    were run with)."""
    marked = table.get("recommended", pd.Series(False, index=table.index)).fillna(False).astype(bool)
    return table.loc[marked, "seeds"].iloc[0] if marked.any() else table["seeds"].value_counts().index[0]


def frontier_figure(table: pd.DataFrame, lang: str) -> Figure:
    """Share vs generated-text perplexity (log), coloured by degenerate share; the front ringed."""
    fig = new_figure(4.8, 3.6)
    ax = fig.subplots()
    forced = table[table["kind"] == "forced"]
    points = ax.scatter(forced["generated_ppl"], forced["target_share"], c=forced["degenerate_share"],
                        cmap="magma_r", vmin=0, vmax=1, s=28, edgecolors="#333", linewidths=0.4)
    front = pareto_front(forced)  # on three axes (share, perplexity, degenerate): ringed, not joined
    ax.scatter(front["generated_ppl"], front["target_share"], s=90, facecolors="none", edgecolors="#333",
               linewidths=0.9, label="on the Pareto front")
    for kind, marker in (("reference", "*"), ("unforced", "D")):
        base = table[table["kind"] == kind]
        ax.scatter(base["generated_ppl"], base["target_share"], marker=marker, s=120 if marker == "*" else 40,
                   color="#2b8cbe", zorder=3)
    ax.axvline(GOAL_PPL_RATIO * baseline_ppl(table), color="#2b8cbe", ls="--", lw=0.8)
    ax.axhline(GOAL_SHARE, color="#777", ls=":", lw=0.8)
    ax.legend(loc="lower right", fontsize=7, frameon=False)
    ax.set_xscale("log")  # ticks at 1-2-5 steps in plain numbers: the default minor labels overlap
    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(StrMethodFormatter("{x:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set(xlabel="perplexity of generated text (unforced model)", ylabel=f"share in {lang}",
           ylim=(-0.03, 1.03), title=f"{lang}: settings tried")
    fig.colorbar(points, ax=ax, label="degenerate share", shrink=0.9)
    return fig


def scores(row: pd.Series, prefix: str) -> dict:
    return {f"{prefix}share": row["target_share"], f"{prefix}ppl": row["generated_ppl"],
            f"{prefix}ppl_ratio": row["ppl_ratio"], f"{prefix}degenerate": row["degenerate_share"],
            f"{prefix}distinct_2": row["distinct_2"], f"{prefix}usable": row.get("usable_share", float("nan")),
            f"{prefix}top_opening": row.get("opening_top_share", float("nan"))}


def recommendations(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per language: the setting recommended on its choice seeds with its scores there, and on the
    other seeds where it was run, beside the paper's setting on those seeds."""
    rows = []
    for lang, table in tables.items():
        seeds = choice_seeds(table)
        chosen = table[table["seeds"] == seeds]
        best = recommend(chosen)
        row = {"language": lang, **{k: best[k] for k in SETTING}, "seeds": seeds, **scores(best, ""),
               "meets_goal": meets_goal(best, baseline_ppl(chosen))}
        same = same_setting(table, best) & (table["seeds"] != seeds)
        for _, held in table[same].iterrows():
            others = table[table["seeds"] == held["seeds"]]
            row.update({"held_out_seeds": held["seeds"], **scores(held, "held_out_"),
                        "held_out_meets_goal": meets_goal(held, baseline_ppl(others))})
            paper = others[others["paper"]]
            if len(paper):
                row.update({"paper_share": paper["target_share"].iloc[0], "paper_ppl": paper["generated_ppl"].iloc[0],
                            "paper_degenerate": paper["degenerate_share"].iloc[0]})
        rows.append(row)
    return pd.DataFrame(rows)


def frontier_section(run: Path, langs: list[str], figures: Path) -> str:
    """The section, or '' when no frontier was run."""
    tables = load_frontiers(run, langs)
    if not tables:
        return ""
    chosen = {lang: t[t["seeds"] == choice_seeds(t)] for lang, t in tables.items()}
    grid = figure_grid([(f"frontier-{lang}", frontier_figure(t, lang)) for lang, t in chosen.items()], figures)
    return section("Steering that keeps the text fluent",
                   f"<p>{GOAL} Recommended setting per language (chosen on the seeds shown; held-out seeds "
                   "beside, with the paper's setting on them, when they were run):</p>",
                   html_table(recommendations(tables)), grid)
