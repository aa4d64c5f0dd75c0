"""The frontier's tables without a model: the Pareto front over target share, generated-text
perplexity and degenerate share, the goal, and the recommendation rule.

Torch-free on purpose, so that the report reads frontier tables without loading a model. The trap:
the perplexity goal is relative to a baseline row of the same seed set (`baseline_ppl`), never to
a number from another seed set.
"""

from __future__ import annotations

import pandas as pd

AXES = {"target_share": "max", "generated_ppl": "min", "degenerate_share": "min"}
GOAL_SHARE, GOAL_DEGENERATE, GOAL_PPL_RATIO = 0.9, 0.05, 1.5  # the goal for a usable setting
SETTING = ["value", "positions", "selection", "n", "blocks", "modules", "guard", "whole_characters",
           "opening_temperature", "start", "start_temperature", "own_starts", "distinct_starts", "no_loops", "also",
           "method", "restore_norm", "subtract"]  # `also`: further edits; the last three tell DiffMean points apart
FLAGS = ("guard", "whole_characters", "start", "own_starts", "distinct_starts", "no_loops")  # False when missing
TEMPERATURES = ("opening_temperature", "start_temperature")  # setting columns that are NaN when missing
UNEDITED = ("unforced", "carried")  # task rows no setting edits: the unforced answers, and those carried into L


def pareto_front(table: pd.DataFrame, axes: dict[str, str] = AXES) -> pd.DataFrame:
    """Rows not dominated by any other row (at least as good on every axis, better on one)."""
    signs = {col: (-1 if how == "max" else 1) for col, how in axes.items()}
    values = table[list(axes)].to_numpy() * [signs[c] for c in axes]  # smaller is better everywhere
    keep = []
    for i, row in enumerate(values):
        dominated = ((values <= row).all(axis=1) & (values < row).any(axis=1)).any()
        keep.append(not dominated)
    return table[keep]


def kinds(table: pd.DataFrame) -> pd.Series:
    """`forced`, `unforced` or `reference` per row (tables without a kind column: by N; without
    either, all forced)."""
    if "kind" in table.columns:
        return table["kind"]
    if "n" not in table.columns:
        return pd.Series("forced", index=table.index)
    return table["n"].map(lambda n: "unforced" if n == 0 else "forced")


def baseline_ppl(table: pd.DataFrame) -> float:
    """The perplexity the goal is relative to: the `reference` row's (the model's own text in the
    language) when the table has one, else the unforced N = 0 row's; NaN when it has neither."""
    kind = kinds(table)
    for name in ("reference", "unforced"):
        if (kind == name).any():
            return float(table.loc[kind == name, "generated_ppl"].min())
    return float("nan")


def usable(table: pd.DataFrame) -> pd.Series:
    """Share of samples in the target language and not degenerate; for rows scored without it,
    its lower bound target share − degenerate share."""
    bound = (table["target_share"] - table["degenerate_share"]).clip(lower=0)
    return table["usable_share"].fillna(bound) if "usable_share" in table.columns else bound


def recommend(table: pd.DataFrame, share: float = GOAL_SHARE, degenerate: float = GOAL_DEGENERATE,
              ppl_ratio: float = GOAL_PPL_RATIO) -> pd.Series:
    """The steering setting to use among the forced points: of those meeting all three goals
    (share ≥ `share`, degenerate share ≤ `degenerate`, generated-text perplexity ≤ `ppl_ratio` ×
    `baseline_ppl` when the table has one), the one with the most usable samples (in the language
    and not degenerate); else, of those meeting the share and degenerate goals, the most fluent;
    else the one with the most usable samples. Ties: the lower perplexity."""
    forced = table[kinds(table) == "forced"].assign(usable=lambda t: usable(t))
    base = baseline_ppl(table)
    limit = ppl_ratio * base if base == base else float("inf")
    sound = (forced["target_share"] >= share) & (forced["degenerate_share"] <= degenerate)
    most_usable = (["usable", "generated_ppl"], [False, True])
    tiers = [(sound & (forced["generated_ppl"] <= limit), most_usable),
             (sound, (["generated_ppl", "usable"], [True, False])),
             (pd.Series(True, index=forced.index), most_usable)]
    rows, (columns, ascending) = next((rows, order) for rows, order in tiers if rows.any())
    return forced[rows].sort_values(columns, ascending=ascending, kind="stable").iloc[0].drop("usable")


def meets_goal(row: pd.Series, baseline: float) -> bool:
    """Whether a scored setting meets all three goals (never without a baseline perplexity)."""
    return bool(row["target_share"] >= GOAL_SHARE and row["degenerate_share"] <= GOAL_DEGENERATE
                and row["generated_ppl"] <= GOAL_PPL_RATIO * baseline)


def fill_setting_columns(table: pd.DataFrame) -> None:
    """Give `blocks`, `modules`, `also` and `subtract` "" (all blocks / all modules / no further
    interventions / none), `method` "ap", and `restore_norm` and the rule flags (`FLAGS`) False where empty
    or missing, and the temperatures NaN (the sampling's) where missing: points and tables of older
    versions lack some."""
    for column in ("blocks", "modules", "also", "subtract"):
        table[column] = table.get(column, pd.Series("", index=table.index)).fillna("")
    table["method"] = table.get("method", pd.Series("ap", index=table.index)).fillna("ap")
    table["restore_norm"] = table.get("restore_norm", pd.Series(False, index=table.index)).fillna(False).astype(bool)
    for column in FLAGS:
        table[column] = table.get(column, pd.Series(False, index=table.index)).fillna(False).astype(bool)
    for column in TEMPERATURES:
        table[column] = table.get(column, pd.Series(float("nan"), index=table.index)).astype(float)


def edit_kind(table: pd.DataFrame) -> pd.Series:
    """Each row's kind of edit: the value before its colon (a DiffMean `add` or `clamp`, a neuron `mix` ...)."""
    return table["value"].astype(str).str.partition(":")[0]


def within_shape(table: pd.DataFrame, shape: tuple[tuple[str, object], ...]) -> pd.Series:
    """Which rows a recommendation restricted to `shape` ((column, value) pairs; column `edit`: the
    `edit_kind`) may take: the forced rows of that shape, and every row of another kind (the baselines)."""
    allowed = pd.Series(True, index=table.index)
    for column, value in shape:
        allowed &= (table["kind"] != "forced") | ((edit_kind(table) if column == "edit" else table[column]) == value)
    return allowed


def same_setting(table: pd.DataFrame, setting: pd.Series | dict) -> pd.Series:
    """Which rows of `table` hold `setting` (its SETTING fields), on whatever seeds; a missing value
    (no opening temperature) matches a missing one."""
    wanted = pd.Series({k: setting[k] for k in SETTING}, dtype=object)
    both_missing = table[SETTING].isna() & wanted.isna()
    return ((table[SETTING] == wanted) | both_missing).all(axis=1)
