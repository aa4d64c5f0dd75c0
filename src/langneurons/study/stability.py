"""How stable each method's neuron sets are when the sentences are resampled, and what scores
chance alone gives (shuffled language labels).

Each bootstrap resample draws the unique sentences with replacement; a sentence drawn m times
counts m times in every set it belongs to. Only the selection is rerun: the AP kernel on the
resampled rows (no percentiles) and LAPE's P from the stored per-sentence counts. The control
permutes the sentences once, so every language's positives and negatives become random
sentences in the same numbers. The trap: AP's top-N is over all modules at once, so every
neuron's AP is kept until the last module has streamed by.
"""

from __future__ import annotations

from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..data import LabelSet, build_labels, load_corpus
from ..errors import LangneuronsError
from ..find.expertise import BLOCK_ELEMENTS, average_precision_rows, sort_rows
from ..find.tables import select
from ..find.lape import Selection, activation_probability, language_sets, row_weights, run_activation_sites, select_units
from ..find.tables import lape_sizes, load_activation
from ..find.info import RunInfo, load_run, sites_from_run
from ..find.store import ResponseStore
from ..io import read_jsonl, write_table
from ..progress import bar
from ..sites import Sites

Variant = dict[str, tuple[np.ndarray, np.ndarray]]  # language -> (positive rows, negative rows)


def variants(labelset: LabelSet, resamples: int, seed: int = 0) -> list[Variant]:
    """The bootstrap resamples, then the shuffled-label control as the last variant."""
    rng = np.random.default_rng(seed)
    n = len(labelset.texts)
    groups = {l: (labelset.positives[l], labelset.negatives[l]) for l in labelset.languages}
    out = []
    for _ in range(resamples):
        m = np.bincount(rng.integers(0, n, size=n), minlength=n)  # times each sentence is drawn
        out.append({l: (np.repeat(p, m[p]), np.repeat(q, m[q])) for l, (p, q) in groups.items()})
    perm = rng.permutation(n)
    out.append({l: (perm[p], perm[q]) for l, (p, q) in groups.items()})
    return out


def ap_scores(store: ResponseStore, sites: Sites, runs: list[Variant], progress: bool = True) -> np.ndarray:
    """AP of every neuron for every variant and language, `[variants, languages, neurons]`."""
    langs = list(runs[0])
    out = np.empty((len(runs), len(langs), sites.total))
    index = [{l: tuple(torch.from_numpy(rows) for rows in v[l]) for l in langs} for v in runs]
    with bar("bootstrap AP", sites.total, progress) as progress_bar:
        for site in sites:
            data = np.array(store.responses(site.name))  # [sentences, width]
            step = max(1, BLOCK_ELEMENTS // max(1, data.shape[0]))
            for lo in range(0, site.width, step):
                block = torch.from_numpy(np.ascontiguousarray(data[:, lo : lo + step].T))  # [m, n]
                cols = slice(site.offset + lo, site.offset + lo + block.shape[0])
                for v, groups in enumerate(index):
                    for k, (pos, neg) in enumerate(groups.values()):
                        ap = average_precision_rows(sort_rows(block[:, pos]), sort_rows(block[:, neg]))
                        out[v, k, cols] = ap.numpy()
                progress_bar.advance(block.shape[0])
    return out


def top_n(ap: np.ndarray, n: int) -> set[int]:
    """Indices of the n highest values, ties broken by the lower index (as `select`)."""
    return set(np.lexsort((np.arange(len(ap)), -ap))[:n].tolist())


def lape_runs(store: ResponseStore, sites: Sites, runs: list[Variant], n_rows: int, top_rate: float,
              quantile: float) -> list[Selection]:
    """LAPE's selection for every variant, from the stored per-sentence counts."""
    langs = list(runs[0])
    weights = np.concatenate([row_weights([v[l][0] for l in langs], n_rows) for v in runs])
    P = activation_probability(store, sites, weights).reshape(sites.total, len(runs), len(langs))
    return [select_units(P[:, v], top_rate, quantile) for v in range(len(runs))]


def mean_jaccard(sets: list[set[int]]) -> float:
    """Mean Jaccard index over all pairs of sets (pairs of two empty sets skipped)."""
    values = [len(a & b) / len(a | b) for a, b in combinations(sets, 2) if a | b]
    return float(np.mean(values)) if values else float("nan")


def summarise(method: str, lang: str, full: set[int], sets: list[set[int]],
              name_of: np.ndarray) -> tuple[dict, pd.DataFrame]:
    """One summary row and the per-neuron selection frequencies of one method and language."""
    counts = pd.Series([u for s in sets for u in s], dtype=np.int64).value_counts()
    units = sorted(set(counts.index) | full)
    frequency = counts.reindex(units, fill_value=0).to_numpy() / len(sets)
    freq = pd.DataFrame({"method": method, "language": lang, "layer": name_of[units, 0],
                         "unit": name_of[units, 1].astype(int), "neuron": units,
                         "frequency": frequency, "in_full": [u in full for u in units]})
    row = {"method": method, "language": lang, "n": len(full), "resamples": len(sets),
           "mean_jaccard": mean_jaccard(sets), "mean_size": float(np.mean([len(s) for s in sets])),
           "full_frequency": float(freq.loc[freq["in_full"], "frequency"].mean()) if full else float("nan"),
           "full_in_90": int((freq["in_full"] & (freq["frequency"] >= 0.9)).sum())}
    return row, freq


def site_names(sites: Sites) -> np.ndarray:
    """`[neurons, 2]` object array: module path and unit of every global neuron index."""
    return np.array([(s.name, u) for s in sites for u in range(s.width)], dtype=object)


def labelset_from_run(run: Path, info: RunInfo) -> LabelSet:
    """The run's sentence sets, rebuilt from its corpus and checked against sentences.jsonl."""
    n = max(info.positives_per_language.values())
    labelset = build_labels(load_corpus(info.corpus), info.languages, n)
    texts = [row["text"] for row in read_jsonl(run / "sentences.jsonl")]
    if texts != labelset.texts:
        raise LangneuronsError(f"{run}: the corpus {info.corpus} changed since `find`; its "
                               "sentences no longer match sentences.jsonl")
    return labelset


def ap_stability(expertise: pd.DataFrame, sites: Sites, ap: np.ndarray, ns: dict[str, int]) -> tuple[list, list, list]:
    """Summary rows, frequency tables and control rows of AP (`ap`: from `ap_scores`)."""
    summary, frequency, control = [], [], []
    name_of = site_names(sites)
    for k, (lang, n) in enumerate(ns.items()):
        full = set(select(expertise, lang, n, "top")["neuron"])
        row, freq = summarise("ap", lang, full, [top_n(ap[v, k], n) for v in range(len(ap) - 1)], name_of)
        summary.append(row)
        frequency.append(freq)
        observed = expertise.loc[expertise["concept"] == lang, "ap"].sort_values(ascending=False).to_numpy()
        shuffled = np.sort(ap[-1, k])[::-1]
        nth = max(1, n) - 1
        control += [{"method": "ap", "language": lang, "statistic": stat, "observed": float(o), "shuffled": float(c)}
                    for stat, o, c in (("max_ap", observed[0], shuffled[0]),
                                       ("p95_ap", np.quantile(observed, 0.95), np.quantile(shuffled, 0.95)),
                                       (f"ap_of_top_{nth + 1}", observed[nth], shuffled[nth]))]
    return summary, frequency, control


def lape_stability(activation: pd.DataFrame, sites: Sites, runs: list[Selection],
                   langs: list[str]) -> tuple[list, list, list]:
    """Summary rows, frequency tables and control rows of LAPE (`runs`: from `lape_runs`)."""
    summary, frequency, control = [], [], []
    sets = [language_sets(selection, langs) for selection in runs]
    shuffled = runs[-1]
    for lang in langs:
        mine = activation[(activation["concept"] == lang) & activation["lape_set"]]
        row, freq = summarise("lape", lang, set(mine["neuron"]), [s[lang] for s in sets[:-1]], site_names(sites))
        summary.append(row)
        frequency.append(freq)
        chance = [shuffled.entropy[u] for u in sets[-1][lang]]
        control += [{"method": "lape", "language": lang, "statistic": "neurons", "observed": float(len(mine)),
                     "shuffled": float(len(chance))},
                    {"method": "lape", "language": lang, "statistic": "min_lape",
                     "observed": float(mine["lape"].min()) if len(mine) else float("nan"),
                     "shuffled": float(min(chance)) if chance else float("nan")}]
    first = shuffled.entropy[shuffled.units[0]] if len(shuffled.units) else float("nan")
    control.append({"method": "lape", "language": "all", "statistic": "min_lape",
                    "observed": float(activation.loc[activation["lape_set"], "lape"].min()), "shuffled": float(first)})
    return summary, frequency, control


def stability(run: Path, resamples: int = 20, n: int | None = None, seed: int = 0,
              progress: bool = True) -> dict[str, pd.DataFrame]:
    """Bootstrap AP (and LAPE when the run has it) and the shuffled control; writes
    RUN/analysis/stability_{summary,frequency,control}.csv.

    AP's N per language is `n`, else the size of its LAPE set when the run has LAPE, else 1000.
    """
    if resamples < 2:
        raise LangneuronsError(f"--resamples {resamples}: at least 2 are needed for a Jaccard index")
    run = Path(run)
    info, expertise = load_run(run)
    labelset = labelset_from_run(run, info)
    runs, langs, lape = variants(labelset, resamples, seed), list(info.languages), info.lape
    activation = load_activation(run)
    sizes = lape_sizes(activation) if activation is not None else {}
    ns = {lang: n if n is not None else sizes.get(lang, 1000) for lang in langs}
    sites = sites_from_run(info)
    store = ResponseStore.open(run / "store", info.fingerprint, {}, 0)
    parts = [ap_stability(expertise, sites, ap_scores(store, sites, runs, progress), ns)]
    store.close()
    if lape and activation is not None:
        act = run_activation_sites(info)
        lape_store = ResponseStore.open(run / "lape_store", lape["fingerprint"], {}, 0)
        selections = lape_runs(lape_store, act, runs, len(labelset.texts), lape["top_rate"], lape["quantile"])
        lape_store.close()
        parts.append(lape_stability(activation, act, selections, langs))
    tables = {"stability_summary": pd.DataFrame([r for p in parts for r in p[0]]),
              "stability_frequency": pd.concat([f for p in parts for f in p[1]], ignore_index=True),
              "stability_control": pd.DataFrame([r for p in parts for r in p[2]])}
    for name, table in tables.items():
        write_table(table, run / "analysis" / f"{name}.csv")
    return tables
