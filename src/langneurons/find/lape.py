"""LAPE (Tang et al., ACL 2024): language activation probability entropy of MLP activation units.

An activation unit is one output feature of a block's MLP activation, `act_fn(gate_proj(x))`
(`sites.activation_sites`). For language k, P[u, k] = (tokens of k's positive sentences on which
u is > 0) / (tokens of those sentences), padding excluded. P̃ = P / Σ_k P; LAPE H = −Σ_k P̃ log P̃
(0 log 0 = 0), also H / log K. τ = the `quantile` point of all P (the k-th smallest value, k =
round(quantile · count), as the authors' `kthvalue`); units with no P > τ are excluded; the
`top_rate` share of ALL units with the lowest H is kept, each assigned to every language with
P > τ. The trap: P is a share of tokens, so counts and tokens are summed over sentences before
dividing, never averaged per sentence.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..data import LabelSet
from ..errors import LangneuronsError
from ..io import write_table
from ..sites import Site, Sites
from .expertise import compute_expertise
from .info import RunInfo
from .record import COUNT, TOKENS
from .store import ResponseStore

TOP_RATE = 0.01
QUANTILE = 0.95


def store_widths(sites: Sites) -> dict[str, int]:
    """Arrays of a LAPE store: per activation site its mean response and positive-token count,
    and the tokens of each sentence."""
    widths = {s.name: s.width for s in sites}
    widths.update({s.name + COUNT: s.width for s in sites})
    return {**widths, TOKENS: 1}


def check_settings(top_rate: float, quantile: float) -> None:
    """Refuse thresholds outside their ranges, naming the bad value."""
    if not 0 < top_rate <= 1:
        raise LangneuronsError(f"--lape-top-rate {top_rate}: must be in (0, 1], e.g. 0.01")
    if not 0 < quantile < 1:
        raise LangneuronsError(f"--lape-quantile {quantile}: must be in (0, 1), e.g. 0.95")


def row_weights(groups: list[np.ndarray], n_rows: int) -> np.ndarray:
    """`[K, n_rows]` float64: how often each row is listed in each group of rows."""
    return np.stack([np.bincount(g, minlength=n_rows) for g in groups]).astype(np.float64)


def activation_probability(store: ResponseStore, sites: Sites, weights: np.ndarray) -> np.ndarray:
    """P `[units, G]`: for each row of `weights` `[G, n_rows]`, Σ w·count / Σ w·tokens."""
    tokens = weights @ np.asarray(store.responses(TOKENS), dtype=np.float64)[:, 0]  # [G]
    counts = [weights @ np.asarray(store.responses(s.name + COUNT), dtype=np.float64) for s in sites]
    return (np.concatenate(counts, axis=1) / tokens[:, None]).T


def entropy(P: np.ndarray) -> np.ndarray:
    """LAPE of each row of P `[units, K]`: entropy of P normalised over languages (0 log 0 = 0)."""
    total = P.sum(axis=1, keepdims=True)
    shares = np.divide(P, total, out=np.zeros_like(P), where=total > 0)
    logs = np.log(shares, out=np.zeros_like(shares), where=shares > 0)
    return -(shares * logs).sum(axis=1)


def threshold(P: np.ndarray, quantile: float) -> float:
    """τ: the k-th smallest of all P values, k = round(quantile · count) (at least 1)."""
    flat = P.ravel()
    k = min(flat.size, max(1, round(quantile * flat.size)))
    return float(np.partition(flat, k - 1)[k - 1])


@dataclass(frozen=True)
class Selection:
    """LAPE's choice: entropy of every unit, τ, the kept units and their languages."""

    entropy: np.ndarray  # [units]
    threshold: float
    units: np.ndarray  # kept unit indices, lowest entropy first (ties: lower index first)
    assigned: np.ndarray  # [len(units), K] bool: P > τ


def select_units(P: np.ndarray, top_rate: float = TOP_RATE, quantile: float = QUANTILE) -> Selection:
    """Keep the `top_rate` share of all units with the lowest entropy among those with a P > τ."""
    H, tau = entropy(P), threshold(P, quantile)
    candidates = np.flatnonzero((P > tau).any(axis=1))
    keep = round(top_rate * P.shape[0])
    units = candidates[np.lexsort((candidates, H[candidates]))][:keep]
    return Selection(H, tau, units, P[units] > tau)


def language_sets(selection: Selection, languages: list[str]) -> dict[str, set[int]]:
    """Unit indices assigned to each language."""
    return {lang: set(selection.units[selection.assigned[:, k]].tolist()) for k, lang in enumerate(languages)}


def neuron_table(P: np.ndarray, selection: Selection, sites: Sites, languages: list[str]) -> pd.DataFrame:
    """One row per (kept unit, assigned language): layer (module path), block, unit, neuron,
    lape, lape_norm, p_<lang> for every language, language; by language, lowest entropy first."""
    site_of = np.repeat(np.arange(len(sites)), [s.width for s in sites])
    units = selection.units
    base = pd.DataFrame({
        "layer": [sites.sites[i].name for i in site_of[units]],
        "block": [sites.sites[i].block for i in site_of[units]],
        "unit": units - np.array([sites.sites[i].offset for i in site_of[units]], dtype=np.int64),
        "neuron": units,
        "lape": selection.entropy[units],
        "lape_norm": selection.entropy[units] / np.log(len(languages)),
        **{f"p_{lang}": P[units, k] for k, lang in enumerate(languages)},
    })
    parts = [base[selection.assigned[:, k]].assign(language=lang) for k, lang in enumerate(languages)]
    return pd.concat(parts, ignore_index=True)


def lape_tables(store: ResponseStore, sites: Sites, labelset: LabelSet, top_rate: float = TOP_RATE,
                quantile: float = QUANTILE, device: torch.device | str = "cpu",
                progress: bool = True) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """The LAPE neurons, the activation sites' expertise table and a summary for run.json.

    The expertise table (AP and on_p50 etc. of the mean activation, as for linears) gains the
    columns block, lape, lape_norm and lape_set (the unit is one of this language's LAPE neurons).
    """
    langs = labelset.languages
    weights = row_weights([labelset.positives[l] for l in langs], len(labelset.texts))
    P = activation_probability(store, sites, weights)
    selection = select_units(P, top_rate, quantile)
    neurons = neuron_table(P, selection, sites, langs)
    activation = compute_expertise(store, sites, labelset, device, progress=progress)
    neuron = activation["neuron"].to_numpy()
    activation["block"] = activation["layer"].map({s.name: s.block for s in sites})
    activation["lape"] = selection.entropy[neuron]
    activation["lape_norm"] = activation["lape"] / np.log(len(langs))
    member = np.zeros(P.shape, dtype=bool)  # [units, K]: unit is a LAPE neuron of language k
    member[selection.units] = selection.assigned
    activation["lape_set"] = member[neuron, activation["concept"].map(langs.index).to_numpy()]
    summary = {"top_rate": top_rate, "quantile": quantile, "threshold": selection.threshold,
               "selected": len(selection.units),
               "per_language": neurons["language"].value_counts().reindex(langs, fill_value=0).to_dict()}
    return neurons, activation, summary


def write_lape(out: Path, store: ResponseStore, sites: Sites, labelset: LabelSet, top_rate: float,
               quantile: float, device: torch.device | str = "cpu", progress: bool = True) -> dict:
    """Write RUN/lape/<lang>.csv, RUN/lape.parquet and RUN/activation_expertise.parquet from a
    filled LAPE store; returns run.json's `lape` entry (without the store fingerprint)."""
    neurons, activation, summary = lape_tables(store, sites, labelset, top_rate, quantile, device, progress)
    for lang in labelset.languages:
        write_table(neurons[neurons["language"] == lang], out / "lape" / f"{lang}.csv")
    write_table(neurons, out / "lape.parquet")
    write_table(activation, out / "activation_expertise.parquet")
    return {"modules": len(sites), "neurons": sites.total, **summary, "sites": sites.to_records()}


def run_activation_sites(info: RunInfo) -> Sites:
    """The activation sites recorded in run.json (`info.lape["sites"]`)."""
    sites = tuple(Site(**record) for record in info.lape["sites"])
    first = sites[0]
    return Sites(first.name[: -len(f".{first.block}.{first.local}")], info.blocks, sites)
