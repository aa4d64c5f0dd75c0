"""The report's frontier section: target-language share against fluency for every steering
setting tried by `langneurons frontier`, its Pareto front, and the setting recommended per language.

Settings are chosen on one set of seeds (the one with the most rows per language) and, where the
same setting was also run on other seeds, their held-out numbers are shown beside: a choice made
and scored on the same seeds flatters itself.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from .frontier import GOAL_PPL_RATIO, GOAL_SHARE, meets_goal, pareto_front, recommend, unforced_ppl
from .report import figure_grid, html_table, new_figure, section

SETTING = ["value", "positions", "selection", "n", "blocks"]
GOAL = ("Goal: target share ≥ 0.90, degenerate share ≤ 5% and perplexity of the generated text under the "
        "unforced model ≤ 1.5 × that of unforced generation (the N = 0 point, ★).")


def load_frontiers(run: Path, langs: list[str]) -> dict[str, pd.DataFrame]:
    """RUN/frontier/<lang>.csv of each language that has one with a forced (N > 0) setting."""
    paths = {lang: Path(run) / "frontier" / f"{lang}.csv" for lang in langs}
    tables = {lang: pd.read_csv(path, dtype={"blocks": str}).fillna({"blocks": ""})
              for lang, path in paths.items() if path.exists()}
    return {lang: table for lang, table in tables.items() if (table["n"] > 0).any()}


def choice_seeds(table: pd.DataFrame) -> str:
    """The seed range settings were chosen on: the one most rows were run with."""
    return table["seeds"].astype(str).value_counts().index[0]


def frontier_figure(table: pd.DataFrame, lang: str) -> Figure:
    """Share vs generated-text perplexity (log), coloured by degenerate share; the front joined."""
    fig = new_figure(4.8, 3.6)
    ax = fig.subplots()
    forced, base = table[table["n"] > 0], table[table["n"] == 0]
    ppl = unforced_ppl(table)
    points = ax.scatter(forced["generated_ppl"], forced["target_share"], c=forced["degenerate_share"],
                        cmap="magma_r", vmin=0, vmax=1, s=28, edgecolors="#333", linewidths=0.4)
    front = pareto_front(forced).sort_values("generated_ppl")
    ax.plot(front["generated_ppl"], front["target_share"], color="#333", lw=0.8, zorder=0)
    if len(base):
        ax.scatter([ppl], [base["target_share"].max()], marker="*", s=120, color="#2b8cbe", zorder=3)
        ax.axvline(GOAL_PPL_RATIO * ppl, color="#2b8cbe", ls="--", lw=0.8)
    ax.axhline(GOAL_SHARE, color="#777", ls=":", lw=0.8)
    ax.set_xscale("log")
    ax.set(xlabel="perplexity of generated text (unforced model)", ylabel=f"share in {lang}",
           ylim=(-0.03, 1.03), title=f"{lang}: settings tried")
    fig.colorbar(points, ax=ax, label="degenerate share", shrink=0.9)
    return fig


def recommendations(tables: dict[str, pd.DataFrame], chosen: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per language: the recommended setting on its choice seeds (`chosen`), and its held-out
    scores from the other seeds of `tables` where the same setting was run."""
    rows = []
    for lang, table in tables.items():
        best, base = recommend(chosen[lang]), unforced_ppl(chosen[lang])
        row = {"language": lang, **{k: best[k] for k in SETTING}, "seeds": best["seeds"],
               "share": best["target_share"], "ppl": best["generated_ppl"], "ppl_unforced": base,
               "degenerate": best["degenerate_share"], "distinct_2": best["distinct_2"],
               "meets_goal": meets_goal(best, base)}
        same = (table[SETTING] == best[SETTING]).all(axis=1) & (table["seeds"].astype(str) != str(best["seeds"]))
        for _, held in table[same].iterrows():
            row.update({"held_out_seeds": held["seeds"], "held_out_share": held["target_share"],
                        "held_out_ppl": held["generated_ppl"], "held_out_degenerate": held["degenerate_share"]})
        rows.append(row)
    return pd.DataFrame(rows)


def frontier_section(run: Path, langs: list[str], figures: Path) -> str:
    """The section, or '' when no frontier was run."""
    tables = load_frontiers(run, langs)
    if not tables:
        return ""
    chosen = {lang: t[t["seeds"].astype(str) == choice_seeds(t)] for lang, t in tables.items()}
    grid = figure_grid([(f"frontier-{lang}", frontier_figure(t, lang)) for lang, t in chosen.items()], figures)
    return section("Steering that keeps the text fluent",
                   f"<p>{GOAL} Recommended setting per language (chosen on the seeds shown, "
                   "held-out seeds beside when they were run):</p>", html_table(recommendations(tables, chosen)), grid)
