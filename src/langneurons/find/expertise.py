"""Expertise of every neuron for every language: exact average precision and response statistics.

AP is computed for a whole block of neurons at once (docs/method.md §4), equal to
`sklearn.metrics.average_precision_score` including ties: each positive contributes the precision
at its own score counting *all* tied scores. The trap: ties must be grouped, or AP depends on
the order in which tied sentences happen to be sorted.
"""

from __future__ import annotations

import ctypes
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import torch

from ..data import LabelSet
from ..progress import bar
from ..sites import Sites
from .store import ResponseStore
from .tables import STATS

BLOCK_ELEMENTS = 8_000_000  # responses per chunk (32 MB): bounds the memory of the expertise pass


def _libc_malloc_trim():
    """glibc's malloc_trim, or None where there is no glibc (macOS, musl)."""
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim if sys.platform.startswith("linux") else None
    except (OSError, AttributeError):
        return None


MALLOC_TRIM = _libc_malloc_trim()


def release_free_memory() -> None:
    """Give freed heap memory back to the OS: glibc keeps the chunks' buffers otherwise, and with
    varying sizes the peak RSS creeps up chunk after chunk (1.2 GB over 25k neurons x 1,200 sentences)."""
    if MALLOC_TRIM is not None:
        MALLOC_TRIM(0)


def sort_rows(x: torch.Tensor) -> torch.Tensor:
    """Each row sorted ascending (numpy's SIMD sort on CPU, several times faster than torch's).

    numpy sorts on one core and releases the GIL, so CPU rows are split over torch's threads.
    """
    if x.is_cuda:
        return torch.sort(x, dim=1).values
    out = x.numpy().copy()
    parts = [p for p in np.array_split(np.arange(len(out)), torch.get_num_threads()) if len(p)]
    with ThreadPoolExecutor(len(parts)) as pool:
        list(pool.map(lambda p: out[p[0] : p[-1] + 1].sort(axis=1), parts))
    return torch.from_numpy(out)


def count_at_least(sorted_rows: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
    """For each query, how many values of its row of `sorted_rows` are >= it (ties included)."""
    below = torch.searchsorted(sorted_rows, queries, side="left")
    return sorted_rows.shape[1] - below


def average_precision_rows(pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
    """AP per row from the ascending-sorted positive `[m, P]` and negative `[m, N]` scores.

    Each positive with score s adds precision at threshold s, #pos>=s / #all>=s, weighted 1/P:
    the same sum as sklearn's over distinct thresholds, so ties are handled identically.
    """
    pos_ge = count_at_least(pos, pos).double()
    neg_ge = count_at_least(neg, pos).double()
    return (pos_ge / (pos_ge + neg_ge)).mean(dim=1)


def average_precision(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """AP of each column of `scores` `[n, m]` against boolean `labels` `[n]` → `[m]` float64.

    Columns with no positive get NaN (sklearn warns and returns 0 or NaN there).
    """
    rows = scores.T.contiguous()
    return average_precision_rows(sort_rows(rows[:, labels]), sort_rows(rows[:, ~labels]))


def quantile_rows(ascending: torch.Tensor, q: float) -> torch.Tensor:
    """numpy's default (linear) percentile of each ascending-sorted row of `[m, k]`."""
    position = q * (ascending.shape[1] - 1)
    lo, frac = int(position), position - int(position)
    low = ascending[:, lo].double()
    if frac == 0:
        return low
    return low + (ascending[:, lo + 1].double() - low) * frac


def neuron_stats(responses: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    """AP and positive/negative percentiles for each column of `responses` `[n, m]`."""
    rows = responses.T.contiguous()  # [m, n]: one row per neuron
    return stats_from_sorted(sort_rows(rows[:, labels]), sort_rows(rows[:, ~labels]))


def stats_from_sorted(pos: torch.Tensor, neg: torch.Tensor) -> dict[str, torch.Tensor]:
    """AP and percentiles per row from ascending-sorted positive `[m, P]` and negative `[m, N]` rows."""
    return {
        "ap": average_precision_rows(pos, neg),
        "on_p50": quantile_rows(pos, 0.5),
        "on_p90": quantile_rows(pos, 0.9),
        "off_mean": neg.double().mean(dim=1),
        "off_p50": quantile_rows(neg, 0.5),
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
    groups = {lang: (torch.from_numpy(labelset.positives[lang]).to(device),
                     torch.from_numpy(labelset.negatives[lang]).to(device)) for lang in labelset.languages}
    parts: dict[str, dict[str, list[np.ndarray]]] = {l: {k: [] for k in STATS} for l in labelset.languages}
    step = max(1, min(chunk, BLOCK_ELEMENTS // max(1, store.meta["n_rows"])))  # memory flat in sentences
    with bar("expertise", sites.total, progress) as progress_bar:
        for site in sites:
            for lo in range(0, site.width, step):
                columns = store.columns(site.name, lo, min(site.width, lo + step))  # [sentences, m]
                block = torch.from_numpy(np.ascontiguousarray(columns.T)).to(device)
                for lang, (pos, neg) in groups.items():
                    stats = stats_from_sorted(sort_rows(block[:, pos]), sort_rows(block[:, neg]))
                    for key, value in stats.items():
                        parts[lang][key].append(value.cpu().numpy())
                progress_bar.advance(block.shape[0])
                del columns, block
                release_free_memory()
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
