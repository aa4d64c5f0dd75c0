"""Expertise of every neuron for every language: exact average precision and response statistics.

AP is computed for a whole block of neurons at once (DESIGN §4), equal to
`sklearn.metrics.average_precision_score` including ties: each positive contributes the precision
at the *end* of its run of tied scores. The trap: ties must be grouped, or AP depends on sort order.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from .data import LabelSet
from .errors import LangneuronsError
from .progress import bar
from .sites import Sites
from .store import ResponseStore

COLUMNS = ["layer", "unit", "ap", "on_p50", "on_p90", "off_mean", "off_p50", "concept", "group"]
STATS = ["ap", "on_p50", "on_p90", "off_mean", "off_p50"]
SELECTIONS = ("top", "bottom", "both")
QUANTILE_LIMIT = 8_000_000  # torch.quantile refuses inputs above 2**24 elements


def average_precision(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """AP of each column of `scores` `[n, m]` against boolean `labels` `[n]`, in float64 → `[m]`.

    Columns with no positive get NaN (sklearn warns and returns 0 or NaN there).
    """
    scores = scores.to(torch.float64)
    n = scores.shape[0]
    order = torch.argsort(scores, dim=0, descending=True, stable=True)  # [n, m]
    sorted_scores = torch.gather(scores, 0, order)
    hits = labels.to(torch.float64)[order]  # [n, m]
    true_pos = torch.cumsum(hits, dim=0)
    precision = true_pos / torch.arange(1, n + 1, dtype=torch.float64, device=scores.device)[:, None]
    # index of the last row of each run of tied scores, propagated back over the run
    is_end = torch.ones_like(hits, dtype=torch.bool)
    is_end[:-1] = sorted_scores[:-1] != sorted_scores[1:]
    rank = torch.arange(n, device=scores.device)[:, None].expand_as(hits)
    end = torch.where(is_end, rank, torch.full_like(rank, n))
    end = torch.flip(torch.cummin(torch.flip(end, [0]), dim=0).values, [0])
    n_pos = labels.sum().to(torch.float64)
    return (hits * torch.gather(precision, 0, end)).sum(dim=0) / n_pos


def neuron_stats(responses: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    """AP and positive/negative percentiles for each column of `responses` `[n, m]`."""
    pos, neg = responses[labels].to(torch.float64), responses[~labels].to(torch.float64)
    probs = torch.tensor([0.5, 0.9], dtype=torch.float64, device=responses.device)
    on = torch.quantile(pos, probs, dim=0)
    return {
        "ap": average_precision(responses, labels),
        "on_p50": on[0],
        "on_p90": on[1],
        "off_mean": neg.mean(dim=0),
        "off_p50": torch.quantile(neg, 0.5, dim=0),
    }


def compute_expertise(
    store: ResponseStore,
    sites: Sites,
    labelset: LabelSet,
    device: torch.device | str = "cpu",
    chunk: int = 2048,
    progress: bool = True,
) -> pd.DataFrame:
    """Expertise table of every (language, neuron): columns COLUMNS plus `neuron` (global index)."""
    rows_labels = {}
    for lang in labelset.languages:
        rows, labels = labelset.indices_and_labels(lang)
        rows_labels[lang] = (torch.from_numpy(rows), torch.from_numpy(labels).to(device))
    parts: dict[str, dict[str, list[np.ndarray]]] = {l: {k: [] for k in STATS} for l in labelset.languages}
    with bar("expertise", sites.total, progress) as progress_bar:
        for site in sites:
            data = torch.from_numpy(np.asarray(store.responses(site.name)))
            step = max(1, min(chunk, QUANTILE_LIMIT // max(1, data.shape[0])))
            for lo in range(0, site.width, step):
                block = data[:, lo : lo + step]
                for lang, (rows, labels) in rows_labels.items():
                    stats = neuron_stats(block[rows].to(device), labels)
                    for key, value in stats.items():
                        parts[lang][key].append(value.cpu().numpy())
                progress_bar.advance(block.shape[1])
    layer = np.repeat([s.name for s in sites], [s.width for s in sites])
    unit = np.concatenate([np.arange(s.width) for s in sites])
    frames = []
    for lang in labelset.languages:
        frame = pd.DataFrame({"layer": layer, "unit": unit})
        for key in STATS:
            frame[key] = np.concatenate(parts[lang][key])
        frame["concept"], frame["group"] = lang, "sense"
        frame["neuron"] = np.arange(sites.total)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


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
