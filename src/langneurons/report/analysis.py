"""Analyses of a RUN folder: overlap of language sets, where the experts sit, AP, steering sweep.

Everything here is a pure function of the run's tables (`find.info.load_run`, `sweep.parquet`,
`sweep/*.jsonl`) and returns DataFrames or sentences; `report.py` draws them. The trap: a small
model can have fewer neurons per language than the N asked for, so every set size goes through
`effective_n`, and every sentence quotes the N actually used.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import pandas as pd

from ..errors import LangneuronsError
from ..find.info import RunInfo
from ..find.tables import select
from ..io import read_jsonl

SIDES = ("top", "bottom")
AP_LEVELS = (0.9, 0.8)
AP_QUANTILES = (0.5, 0.9, 0.99, 0.999)
EDGE_FRACTION = 0.2  # "first and last few layers": the first and last 20% of blocks


def effective_n(expertise: pd.DataFrame, n: int) -> int:
    """`n`, capped at the number of neurons per language."""
    return min(n, int(expertise.groupby("concept").size().min()))


def languages(expertise: pd.DataFrame) -> list[str]:
    """Languages in the order they appear in the table."""
    return list(dict.fromkeys(expertise["concept"]))


def neuron_sets(expertise: pd.DataFrame, n: int, selection: str) -> dict[str, set[int]]:
    """Global neuron indices of each language's `selection` n."""
    return {l: set(select(expertise, l, n, selection)["neuron"]) for l in languages(expertise)}


def overlap(expertise: pd.DataFrame, n: int = 1000, selection: str = "top") -> pd.DataFrame:
    """Shared neurons of every ordered pair of languages (a language with itself included).

    Returns columns language, other, n, shared, percent (shared / n * 100).
    """
    n = effective_n(expertise, n)
    sets = neuron_sets(expertise, n, selection)
    rows = [{"language": a, "other": b, "n": n, "shared": len(sets[a] & sets[b]),
             "percent": 100 * len(sets[a] & sets[b]) / n if n else 0.0}
            for a in sets for b in sets]
    return pd.DataFrame(rows)


def overlap_matrix(table: pd.DataFrame, value: str = "percent") -> pd.DataFrame:
    """The square language × language matrix of an `overlap` table."""
    order = list(dict.fromkeys(table["language"]))
    return table.pivot(index="language", columns="other", values=value).loc[order, order]


def site_table(info: RunInfo) -> pd.DataFrame:
    """The run's neuron sites, one row per module: name, block, local, kind, width, offset."""
    return pd.DataFrame(info.sites)


def layer_distribution(expertise: pd.DataFrame, info: RunInfo, n: int = 1000) -> pd.DataFrame:
    """Counts of each language's top and bottom n neurons per block, module kind and module.

    Returns columns language, side, block, kind, local, count (only non-zero counts).
    """
    n = effective_n(expertise, n)
    sites = site_table(info).rename(columns={"name": "layer"})[["layer", "block", "kind", "local"]]
    parts = [select(expertise, lang, n, side)[["concept", "side", "layer"]]
             for lang in languages(expertise) for side in SIDES]
    chosen = pd.concat(parts).merge(sites, on="layer", how="left", validate="many_to_one")
    counts = chosen.groupby(["concept", "side", "block", "kind", "local"], sort=False).size()
    return counts.rename("count").reset_index().rename(columns={"concept": "language"})


def edge_blocks(blocks: int, fraction: float = EDGE_FRACTION) -> tuple[range, range]:
    """The first and the last `fraction` of blocks (at least one block each)."""
    k = max(1, round(blocks * fraction))
    return range(0, min(k, blocks)), range(max(0, blocks - k), blocks)


def edge_share(dist: pd.DataFrame, info: RunInfo, fraction: float = EDGE_FRACTION) -> pd.DataFrame:
    """Per language and side: share of the chosen neurons in the first / last `fraction` of blocks.

    Returns columns language, side, neurons, first, last, edge (shares in 0..1).
    """
    first, last = edge_blocks(info.blocks, fraction)
    rows = []
    for (lang, side), part in dist.groupby(["language", "side"], sort=False):
        total = part["count"].sum()
        in_first = part.loc[part["block"].isin(first), "count"].sum()
        in_last = part.loc[part["block"].isin(last), "count"].sum()
        in_edge = part.loc[part["block"].isin(set(first) | set(last)), "count"].sum()
        rows.append({"language": lang, "side": side, "neurons": int(total), "first": in_first / total,
                     "last": in_last / total, "edge": in_edge / total})
    return pd.DataFrame(rows)


def ap_summary(expertise: pd.DataFrame) -> pd.DataFrame:
    """Per language: neuron count, max AP, neurons with AP ≥ 0.9 and ≥ 0.8, AP quantiles."""
    rows = []
    for lang in languages(expertise):
        ap = expertise.loc[expertise["concept"] == lang, "ap"]
        row = {"language": lang, "neurons": len(ap), "max_ap": ap.max()}
        row.update({f"ap>={level}": int((ap >= level).sum()) for level in AP_LEVELS})
        row.update({f"q{q * 100:g}": ap.quantile(q) for q in AP_QUANTILES})
        rows.append(row)
    return pd.DataFrame(rows)


def load_sweep(run: Path) -> pd.DataFrame | None:
    """RUN/sweep.parquet, or None when the run has no sweep."""
    path = Path(run) / "sweep.parquet"
    return pd.read_parquet(path) if path.exists() else None


def has_values(table: pd.DataFrame, column: str) -> bool:
    """Whether `table` has `column` with at least one value."""
    return column in table and bool(table[column].notna().any())


def best_n(sweep: pd.DataFrame) -> pd.DataFrame:
    """Per mode and language: the smallest N reaching the highest target share, and N = 0's share.

    Returns columns mode, language, n, selection, value, target_share, baseline (and
    perplexity / baseline_perplexity, chrf when the sweep has them).
    """
    rows = []
    for (mode, lang), part in sweep.groupby(["mode", "language"], sort=False):
        best_share = part["target_share"].max()
        best = part[part["target_share"] >= best_share - 1e-12].sort_values("n", kind="stable").iloc[0]
        base = part[part["n"] == 0]
        row = {"mode": mode, "language": lang, "n": int(best["n"]), "selection": best["selection"],
               "value": best["value"], "target_share": float(best["target_share"]),
               "baseline": float(base["target_share"].iloc[0]) if len(base) else float("nan")}
        if has_values(part, "perplexity"):
            row["perplexity"] = float(best["perplexity"])
            row["baseline_perplexity"] = float(base["perplexity"].iloc[0]) if len(base) else float("nan")
        if has_values(part, "chrf"):
            row["chrf"] = float(best["chrf"])
        rows.append(row)
    return pd.DataFrame(rows)


def setting_label(setting: list[dict]) -> dict:
    """language, n, selection, value of a sample's setting (N = 0: no intervention)."""
    active = [iv for iv in setting if iv.get("n", 0) > 0]
    if not active:
        return {"language": "none", "n": 0, "selection": "", "value": ""}
    return {"language": "+".join(iv["language"] for iv in active),
            "n": sum(int(iv["n"]) for iv in active),
            "selection": "/".join(dict.fromkeys(iv["selection"] for iv in active)),
            "value": "/".join(dict.fromkeys(iv.get("value", "on_p50") for iv in active))}


def sample_generations(run: Path, per_setting: int = 3) -> pd.DataFrame:
    """The first `per_setting` samples of every RUN/sweep/*.jsonl file, one row each.

    Returns columns mode, language, n, selection, value, seed, lang, lang_prob, text.
    """
    rows = []
    for path in sorted((Path(run) / "sweep").glob("*.jsonl")):
        for record in read_jsonl(path)[:per_setting]:
            rows.append({"mode": record["mode"], **setting_label(record["setting"]),
                         "seed": record.get("seed"), "lang": record["lang"],
                         "lang_prob": record["lang_prob"], "text": record["text"]})
    columns = ["mode", "language", "n", "selection", "value", "seed", "lang", "lang_prob", "text"]
    table = pd.DataFrame(rows, columns=columns)
    return table.sort_values(["mode", "language", "selection", "n"], kind="stable", ignore_index=True)


@dataclass
class Analysis:
    """All tables of one run's analysis; sweep tables are None without a sweep."""

    info: dict
    n: int
    overlap_top: pd.DataFrame
    overlap_bottom: pd.DataFrame
    layers: pd.DataFrame
    edges: pd.DataFrame
    ap: pd.DataFrame
    sweep: pd.DataFrame | None = None
    best: pd.DataFrame | None = None
    samples: pd.DataFrame | None = None


def analyze(info: RunInfo, expertise: pd.DataFrame, n: int = 1000, run: Path | None = None,
            per_setting: int = 3) -> Analysis:
    """Every analysis of a run; the sweep parts only when `run` holds a sweep."""
    if n < 1:
        raise LangneuronsError(f"--n {n}: the compared sets need at least 1 neuron")
    layers = layer_distribution(expertise, info, n)
    sweep = load_sweep(run) if run is not None else None
    if sweep is not None and "method" in sweep:  # the steering analyses are AP's; LAPE cells are left out
        sweep = sweep[sweep["method"] == "ap"]
    has_sweep = sweep is not None and not sweep.empty
    return Analysis(
        info=info, n=effective_n(expertise, n),
        overlap_top=overlap(expertise, n, "top"), overlap_bottom=overlap(expertise, n, "bottom"),
        layers=layers, edges=edge_share(layers, info), ap=ap_summary(expertise),
        sweep=sweep if has_sweep else None, best=best_n(sweep) if has_sweep else None,
        samples=sample_generations(run, per_setting) if has_sweep else None,
    )


def edge_label(first: range, last: range) -> str:
    """`blocks 0–3 and 14–17`, or `block 0` for a one-block model."""
    def span(r: range) -> str:
        return str(r[0]) if len(r) == 1 else f"{r[0]}–{r[-1]}"

    return f"block {span(first)}" if first == last else f"blocks {span(first)} and {span(last)}"


def overlap_sentence(table: pd.DataFrame, side: str) -> str:
    """Largest overlap between two different languages' sets, and how many pairs share nothing."""
    pairs = [(a, b) for a, b in combinations(dict.fromkeys(table["language"]), 2)]
    shared = table.set_index(["language", "other"])
    values = [(shared.loc[p, "percent"], shared.loc[p, "shared"], p) for p in pairs]
    n = int(table["n"].iloc[0])
    if not values:
        return f"Only one language: no overlap of {side}-{n} sets to compare."
    percent, count, (a, b) = max(values, key=lambda v: v[0])
    empty = sum(1 for v in values if v[1] == 0)
    if count == 0:
        return f"No two languages' {side}-{n} sets share a neuron ({len(pairs)} pairs)."
    return (f"The largest overlap between {side}-{n} sets is {percent:.1f}% ({a}–{b}, {count} shared); "
            f"{empty} of {len(pairs)} language pairs share no neuron.")


def edge_sentence(result: Analysis) -> str:
    """Share of top and bottom neurons in the first and last 20% of blocks, vs all neurons."""
    first, last = edge_blocks(result.info.blocks, EDGE_FRACTION)
    sites = site_table(result.info)
    everyone = sites.loc[sites["block"].isin(set(first) | set(last)), "width"].sum() / sites["width"].sum()
    edges = result.edges.assign(inside=result.edges["edge"] * result.edges["neurons"])
    share = edges.groupby("side")["inside"].sum() / edges.groupby("side")["neurons"].sum()
    return (f"{share['top']:.0%} of the top-{result.n} and {share['bottom']:.0%} of the "
            f"bottom-{result.n} neurons (all languages) lie in the first or last {EDGE_FRACTION:.0%} "
            f"of blocks ({edge_label(first, last)}), which hold {everyone:.0%} of all neurons.")


def module_sentence(result: Analysis) -> str:
    """Which module kind and which module hold most of the top neurons."""
    top = result.layers[result.layers["side"] == "top"]
    kinds = top.groupby("kind")["count"].sum() / top["count"].sum()
    modules = top.groupby("local")["count"].sum() / top["count"].sum()
    return (f"Of the top-{result.n} neurons, {kinds.get('mlp', 0):.0%} are in MLP and "
            f"{kinds.get('attention', 0):.0%} in attention modules; the most frequent module is "
            f"{modules.idxmax()} ({modules.max():.0%}).")


def ap_sentence(ap: pd.DataFrame) -> str:
    rows = ap.to_dict("records")
    best = ", ".join(f"{r['language']} {r['max_ap']:.2f}" for r in rows)
    strong = ", ".join(f"{r['language']} {r['ap>=0.9']:,}" for r in rows)
    return f"Highest AP per language: {best}; neurons with AP ≥ 0.9: {strong}."


def best_item(row) -> str:
    """`de 2000 both (0.97, vs 0.01 at N = 0)`, or `en 0 (0.92, unforced)`."""
    if row.n == 0:
        return f"{row.language} 0 ({row.target_share:.2f}, unforced)"
    return f"{row.language} {row.n} {row.selection} ({row.target_share:.2f}, vs {row.baseline:.2f} at N = 0)"


def sweep_sentences(best: pd.DataFrame) -> list[str]:
    """Best N per mode and language, and what it costs in perplexity / gives in chrF."""
    sentences = []
    for mode, part in best.groupby("mode", sort=False):
        items = ", ".join(best_item(r) for r in part.itertuples())
        sentences.append(f"Best N per language ({mode}, target-language share): {items}.")
        if has_values(part, "perplexity") and part["n"].gt(0).any():
            steered = part[part["n"] > 0]
            items = ", ".join(f"{r.language} {r.baseline_perplexity:.1f} → {r.perplexity:.1f}"
                              for r in steered.itertuples())
            sentences.append(f"Perplexity of held-out text, N = 0 → best N ({mode}): {items}.")
        if has_values(part, "chrf"):
            items = ", ".join(f"{r.language} {r.chrf:.1f}" for r in part.itertuples())
            sentences.append(f"chrF at the best N ({mode}): {items}.")
    return sentences


def summary_sentences(result: Analysis) -> list[str]:
    """Plain sentences computed from the tables, only for the data the run has."""
    sentences = [overlap_sentence(result.overlap_top, "top"),
                 overlap_sentence(result.overlap_bottom, "bottom"),
                 edge_sentence(result), module_sentence(result), ap_sentence(result.ap)]
    if result.best is not None:
        sentences += sweep_sentences(result.best)
    return sentences
