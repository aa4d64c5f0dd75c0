"""Where AP and LAPE agree on one run: overlap of their neuron sets and where each method's
neurons sit, from the result tables alone (no model, no torch).

The trap: the methods score different sites. AP scores every linear's output, pooled as the mean
over a sentence's tokens; LAPE scores the MLP activation token by token. They meet at the block's
first MLP linear (gate_proj) and the activation applied to it: AP's gate_proj unit (l, i) is
compared with LAPE's act_fn unit (l, i). Even there they measure different things: AP ranks
sentences by mean(g), LAPE counts tokens with act(g) > 0, and mean(act(g)) ≠ act(mean(g)), so
identical sets are not expected. Every comparison uses the same count N per language: the size
of its LAPE set.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..find.info import RunInfo, load_run, sites_from_run
from ..find.tables import lape_sizes, load_activation, select
from ..sites import feeding_sites

METHODS = ("ap", "lape")


def jaccard(a: set, b: set) -> float:
    """|a ∩ b| / |a ∪ b|; NaN when both are empty."""
    return len(a & b) / len(a | b) if a | b else float("nan")


def keys(rows: pd.DataFrame) -> set[tuple[str, int]]:
    return set(zip(rows["layer"], rows["unit"].astype(int)))


def method_overlap(info: RunInfo, expertise: pd.DataFrame, activation: pd.DataFrame) -> pd.DataFrame:
    """Per language: the LAPE set against AP's top-N (N = the LAPE set's size).

    Returns columns language, n, jaccard_gate (AP top-N among the gate_proj units), shared_gate,
    ap_on_gate (how many of AP's top-N over all linears are gate_proj units), jaccard_all (against
    that all-linear top-N) and jaccard_act (AP of the mean activation itself, top-N).
    """
    gate = {b: s.name for b, s in feeding_sites(sites_from_run(info)).items()}
    on_gate = expertise[expertise["layer"].isin(set(gate.values()))]
    gate_units = keys(on_gate)
    rows = []
    for lang, n in lape_sizes(activation).items():
        mine = activation[(activation["concept"] == lang) & activation["lape_set"]]
        lape = set(zip(mine["block"].map(gate), mine["unit"].astype(int)))  # act unit → gate unit
        ap_gate, ap_all = keys(select(on_gate, lang, n, "top")), keys(select(expertise, lang, n, "top"))
        ap_act = keys(select(activation, lang, n, "top"))
        rows.append({"language": lang, "n": n, "jaccard_gate": jaccard(lape, ap_gate),
                     "shared_gate": len(lape & ap_gate), "ap_on_gate": sum(k in gate_units for k in ap_all),
                     "jaccard_all": jaccard(lape, ap_all), "jaccard_act": jaccard(keys(mine), ap_act)})
    return pd.DataFrame(rows)


def method_layers(info: RunInfo, expertise: pd.DataFrame, activation: pd.DataFrame) -> pd.DataFrame:
    """Neurons per block of each method's set (AP: top-N over all linears, N = LAPE size).

    Returns columns method, language, block, count (zero counts included).
    """
    block_of = {s["name"]: s["block"] for s in info.sites}
    rows = []
    for lang, n in lape_sizes(activation).items():
        ap = select(expertise, lang, n, "top")["layer"].map(block_of)
        lape = activation.loc[(activation["concept"] == lang) & activation["lape_set"], "block"]
        for method, blocks in (("ap", ap), ("lape", lape)):
            counts = blocks.value_counts().reindex(range(info.blocks), fill_value=0)
            rows += [{"method": method, "language": lang, "block": b, "count": int(c)} for b, c in counts.items()]
    return pd.DataFrame(rows)


def perplexity_matrix(table: pd.DataFrame, method: str) -> pd.DataFrame:
    """Mask language × evaluated language perplexity of one method."""
    part = table[table["method"] == method]
    order = list(dict.fromkeys(part["evaluated"]))
    return part.pivot(index="mask", columns="evaluated", values="perplexity").loc[order, order]


def comparison_tables(run: Path) -> dict[str, pd.DataFrame] | None:
    """The model-free comparison tables of a run with both methods, None without LAPE."""
    activation = load_activation(run)
    if activation is None:
        return None
    info, expertise = load_run(run)
    return {"compare_overlap": method_overlap(info, expertise, activation),
            "compare_layers": method_layers(info, expertise, activation)}
