"""The report's section on steering prompts: for each task frontier (`frontier --task`), the held-out
rows users compare (unforced with the paper's prompt, unforced with the language named, named +
steered, the paper's setting, the recommendation; for requests also the unforced answers carried into
the language, and the prompts after two example turns answered in the language, unforced and
steered), a figure of language against content on the part settings were chosen on, and the content
score's validation when it was run.

Reads only the CSV files (no torch): RUN/frontier/<L>-<task>[-named].csv and
RUN/analysis/content_check.csv.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from ..steer.pareto import UNEDITED, fill_setting_columns
from .page import figure_grid, html_table, new_figure, section

STUDIES = ("translation", "translation-named", "prompts", "prompts-examples")
COLUMNS = {"target_share": "share", "lpr": "LPR", "chrf": "chrF", "content": "content",
           "content_target": "content (in L)", "degenerate_share": "degenerate", "generated_ppl": "ppl"}


def load_studies(run: Path, langs: list[str]) -> dict[str, pd.DataFrame]:
    """`<L>-<study>` → its table, for each study that was run."""
    tables = {}
    for lang in langs:
        for study in STUDIES:
            path = Path(run) / "frontier" / f"{lang}-{study}.csv"
            if path.exists():
                table = pd.read_csv(path, dtype={"blocks": str, "modules": str, "also": str})
                fill_setting_columns(table)
                tables[f"{lang}-{study}"] = table
    return tables


def setting_label(row: pd.Series) -> str:
    """A short description of a forced row's setting."""
    if row["method"] == "diffmean":
        return f"DiffMean {row['value']} block {row['blocks']} on {row['positions']}"
    units = f"{int(row['n']):,} {'LAPE' if row['method'] == 'lape' else row['selection']}"
    blocks = f" blocks {row['blocks']}" if row["blocks"] else ""
    rules = "".join(f", {name}" for name, flag in (("guarded", "guard"), ("start", "start"),
                                                      ("the language's own starts", "own_starts"),
                                                      ("none of English's", "distinct_starts"),
                                                      ("no loops", "no_loops"))
                    if bool(row.get(flag, False)))
    also = row.get("also", "")
    also = f" + {also}" if isinstance(also, str) and also else ""  # further edits, by their labels
    return f"{units} {row['value']} on {row['positions']}{blocks}{rules}{also}"


def summary(table: pd.DataFrame, split: str = "heldout") -> pd.DataFrame:
    """The rows users compare, on one part of the prompts: each baseline and the recommendation, on
    each prompt style."""
    part = table[table["split"] == split]
    named = {"paper": "paper's prompt", "named": "language named", "given": "the prompts",
             "examples": "after two example turns in the language"}
    rows = []
    for _, row in part.iterrows():
        if row["kind"] == "unforced":
            what = f"unforced, {named[row['prompt_style']]}"
        elif row["kind"] == "carried":
            if not row.get("current_carrier", True):  # carried by an earlier named-translation choice
                continue
            what = f"unforced, carried into the language by {row.get('carried_by') or 'the named translation'}"
        elif row["kind"] == "paper":
            what = f"paper's setting, {named[row['prompt_style']]}"
        elif row.get("recommended", False):
            what = f"recommended ({setting_label(row)}), {named[row['prompt_style']]}"
        else:
            continue
        rows.append({"row": what, **{label: row.get(column) for column, label in COLUMNS.items()}})
    return pd.DataFrame(rows)


def study_figure(table: pd.DataFrame, name: str, split: str = "choose") -> Figure:
    """Language score against content for every setting on the part it was chosen on; the front ringed,
    the recommendation starred, the unforced baselines as diamonds."""
    fig = new_figure(4.8, 3.6)
    ax = fig.subplots()
    part = table[table["split"] == split]
    forced = part[~part["kind"].isin(UNEDITED)]
    dots = ax.scatter(forced["content_value"], forced["language_score"], c=forced["degenerate_share"],
                      cmap="magma_r", vmin=0, vmax=1, s=28, edgecolors="#333", linewidths=0.4)
    front = forced[forced["on_front"].astype(bool)]
    ax.scatter(front["content_value"], front["language_score"], s=90, facecolors="none", edgecolors="#333")
    best = forced[forced.get("recommended", pd.Series(False, index=forced.index)).fillna(False).astype(bool)]
    ax.scatter(best["content_value"], best["language_score"], marker="*", s=160, color="#1a7f37")
    base = part[part["kind"] == "unforced"]
    ax.scatter(base["content_value"], base["language_score"], marker="D", s=40, color="#555")
    ax.set_xlabel("content (chrF, else content score)")
    ax.set_ylabel("language (share, LPR for requests)")
    ax.set_title(name, fontsize=10)
    fig.colorbar(dots, ax=ax, label="degenerate share")
    return fig


def task_section(run: Path, langs: list[str], figures: Path) -> str:
    """The section, or '' when no task frontier was run."""
    tables = load_studies(run, langs)
    check = Path(run) / "analysis" / "content_check.csv"
    if not tables and not check.exists():
        return ""
    parts = ["<p>Settings chosen on one half of the prompts and scored on the other (held-out rows "
             "below). Goal: share ≥ 0.90 (≥ 0.95 when the prompt names the language; LPR for requests) with "
             "≤ 5% degenerate answers, keeping the most content.</p>"]
    for name, table in tables.items():
        held = summary(table)
        if not held.empty:
            parts += [f"<h3>{name}, held-out prompts</h3>", html_table(held)]
    figs = [(f"task-{name}", study_figure(table, name)) for name, table in tables.items()]
    if figs:
        parts.append(figure_grid(figs, figures))
    if check.exists():
        parts += ["<h3>Content score validation (built-in held-out pairs)</h3>",
                  html_table(pd.read_csv(check).round(3))]
    return section("Steering on prompts: language and content", *parts)
