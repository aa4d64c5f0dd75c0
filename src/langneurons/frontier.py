"""The language-share / fluency frontier: which steering setting keeps text in the target
language *and* fluent (issue: steering that keeps the text fluent).

Each grid point (value × positions × selection × N × blocks) is generated like a sweep cell and
scored on target share, perplexity of the generated text under the *unforced* model, distinct-2
and degenerate share. The frontier is the set of points no other point beats on every axis.
"""

from __future__ import annotations

import itertools
import json
import time

import pandas as pd

from .evaluate import perplexity
from .intervene import Intervention
from .progress import console
from .steering import Steerable, sample_records, score_cell, stored_samples
from .store import write_json, write_table

AXES = {"target_share": "max", "generated_ppl": "min", "degenerate_share": "min"}


def pareto_front(table: pd.DataFrame, axes: dict[str, str] = AXES) -> pd.DataFrame:
    """Rows not dominated by any other row (at least as good on every axis, better on one)."""
    signs = {col: (-1 if how == "max" else 1) for col, how in axes.items()}
    values = table[list(axes)].to_numpy() * [signs[c] for c in axes]  # smaller is better everywhere
    keep = []
    for i, row in enumerate(values):
        dominated = ((values <= row).all(axis=1) & (values < row).any(axis=1)).any()
        keep.append(not dominated)
    return table[keep]


GOAL_SHARE, GOAL_DEGENERATE, GOAL_PPL_RATIO = 0.9, 0.05, 1.5  # the goal for a usable setting


def unforced_ppl(table: pd.DataFrame) -> float:
    """Generated-text perplexity of the unforced (N = 0) point, NaN when the table has none."""
    if "n" not in table.columns or not (table["n"] == 0).any():
        return float("nan")
    return float(table.loc[table["n"] == 0, "generated_ppl"].min())


def recommend(table: pd.DataFrame, share: float = GOAL_SHARE, degenerate: float = GOAL_DEGENERATE,
              ppl_ratio: float = GOAL_PPL_RATIO) -> pd.Series:
    """The steering setting to use among the forced points, by the first of these that any meets:
    all three goals (share ≥ `share`, degenerate share ≤ `degenerate`, generated-text perplexity ≤
    `ppl_ratio` × the unforced N = 0 row's, when the table has one), the most fluent; the share and
    degenerate goals (text in the language that does not collapse), the most fluent; both fluency
    goals, the highest share; else the highest share."""
    forced = table[table["n"] > 0] if "n" in table.columns else table
    base = unforced_ppl(table)
    limit = ppl_ratio * base if base == base else float("inf")
    reached = forced["target_share"] >= share
    sound = forced["degenerate_share"] <= degenerate
    fluent = sound & (forced["generated_ppl"] <= limit)
    most_fluent = (["generated_ppl", "target_share"], [True, False])
    highest_share = (["target_share", "generated_ppl"], [False, True])
    tiers = [(reached & fluent, most_fluent), (reached & sound, most_fluent), (fluent, highest_share),
             (pd.Series(True, index=forced.index), highest_share)]
    rows, (columns, ascending) = next((rows, order) for rows, order in tiers if rows.any())
    return forced[rows].sort_values(columns, ascending=ascending, kind="stable").iloc[0]


def meets_goal(row: pd.Series, baseline_ppl: float) -> bool:
    """Whether a scored setting meets all three goals (never without a baseline perplexity)."""
    return bool(row["target_share"] >= GOAL_SHARE and row["degenerate_share"] <= GOAL_DEGENERATE
                and row["generated_ppl"] <= GOAL_PPL_RATIO * baseline_ppl)


def frontier(steerable: Steerable, language: str, values: list[str], positions: list[str],
             selections: list[str], ns: list[int], blocks: list[str], seeds: list[int],
             batch_size: int = 100, progress: bool = True) -> pd.DataFrame:
    """Evaluate every unfinished grid point; write RUN/frontier/<language>.csv and its front."""
    folder = steerable.run / "frontier" / language
    lm = steerable.loaded
    grid = list(itertools.product(values, positions, selections, ns, blocks))
    for index, (value, pos, selection, n, block) in enumerate(grid, start=1):
        iv = Intervention(language, n, selection, value, pos, blocks=block)
        key = iv.label.replace(":", "_") + f"-seeds{seeds[0]}-{seeds[-1]}"
        if (folder / f"{key}.json").exists():
            continue
        console.print(f"[{index}/{len(grid)}] {key}")
        started = time.perf_counter()
        samples = folder / f"{key}.jsonl"
        if n == 0:  # unforced samples do not depend on the language: one file per seed set
            samples = folder.parent / f"unforced-seeds{seeds[0]}-{seeds[-1]}.jsonl"
        records = stored_samples(samples, lambda: sample_records(
            steerable, [iv], "unconditional", seeds, batch_size=batch_size, progress=progress))
        texts = [r["text"] for r in records if r["text"].strip()]
        row = {**iv.to_dict(), **score_cell(records, language, None),
               "generated_ppl": perplexity(lm.model, lm.tokenizer, texts) if texts else float("inf"),
               "seeds": f"{seeds[0]}-{seeds[-1]}", "seconds": round(time.perf_counter() - started, 1)}
        write_json(folder / f"{key}.json", row)
    rows = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
    table = pd.DataFrame(rows)
    fronts = [pareto_front(group).index for _, group in table.groupby("seeds")]  # per seed set
    table["on_front"] = table.index.isin([i for front in fronts for i in front])
    write_table(table, steerable.run / "frontier" / f"{language}.csv")
    return table
