"""A run's result tables as pandas reads them, and the choice of neurons from them (AP and LAPE).

Torch-free on purpose: the report and every reader of a finished run use only this module.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..errors import LangneuronsError

COLUMNS = ["layer", "unit", "ap", "on_p50", "on_p90", "off_mean", "off_p50", "concept", "group"]
STATS = ["ap", "on_p50", "on_p90", "off_mean", "off_p50"]
SELECTIONS = ("top", "bottom", "both")


def select(expertise: pd.DataFrame, language: str, n: int, selection: str = "both") -> pd.DataFrame:
    """The neurons of `language` chosen by AP: `top` n, `bottom` n, or `both` (n/2 + n/2).

    Ties are broken by the global neuron index, so the choice is deterministic.
    """
    if selection not in SELECTIONS:
        raise LangneuronsError(f"--selection {selection!r} is not one of {', '.join(SELECTIONS)}")
    table = expertise[expertise["concept"] == language]
    if table.empty:
        langs = ", ".join(sorted(expertise["concept"].unique()))
        raise LangneuronsError(f"--language {language}: not in this run (it has {langs})")
    if n < 0 or n > len(table):
        raise LangneuronsError(f"--n {n}: must be between 0 and the neuron count {len(table)}")
    high = table.sort_values(["ap", "neuron"], ascending=[False, True], kind="stable")
    low = table.sort_values(["ap", "neuron"], ascending=[True, True], kind="stable")
    if selection == "top":
        return high.head(n).assign(side="top")
    if selection == "bottom":
        return low.head(n).assign(side="bottom")
    top = high.head(n - n // 2)
    bottom = low[~low["neuron"].isin(top["neuron"])].head(n // 2)
    return pd.concat([top.assign(side="top"), bottom.assign(side="bottom")])


def load_activation(run: Path) -> pd.DataFrame | None:
    """RUN/activation_expertise.parquet, or None for a run without LAPE."""
    path = Path(run) / "activation_expertise.parquet"
    return pd.read_parquet(path) if path.exists() else None


def lape_sizes(activation: pd.DataFrame) -> dict[str, int]:
    """Number of LAPE neurons per language, in the run's language order."""
    return activation.groupby("concept", sort=False)["lape_set"].sum().astype(int).to_dict()


def select_lape(activation: pd.DataFrame, language: str, n: int) -> pd.DataFrame:
    """The first `n` LAPE neurons of `language`, lowest entropy first (ties: neuron index)."""
    table = activation[activation["concept"] == language]
    if table.empty:
        langs = ", ".join(dict.fromkeys(activation["concept"]))
        raise LangneuronsError(f"--language {language}: not in this run (it has {langs})")
    chosen = table[table["lape_set"]].sort_values(["lape", "neuron"], kind="stable")
    if n < 0 or n > len(chosen):
        raise LangneuronsError(f"--n {n}: {language} has {len(chosen)} LAPE neurons; use --n {len(chosen)} or less")
    return chosen.head(n).assign(side="top")
