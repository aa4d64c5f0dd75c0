"""The report's AP-vs-LAPE section: set overlap, where each method's neurons sit, perplexity with
each method's neurons set to 0, and bootstrap stability.

Built from the run's tables (compare.comparison_tables) and, when they exist, the CSVs written by
`langneurons compare` and `langneurons stability`. The trap: the perplexity matrices and the
stability figures need the model or minutes of work, so the report only shows them, never
computes them; without them it says which command makes them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..find.info import RunInfo
from ..io import write_table
from ..study.agreement import comparison_tables, perplexity_matrix
from .page import escape, figure_grid, heatmap, html_table, new_figure, section

EXPLANATION = (
    "AP scores the output of every linear module, pooled as the mean over a sentence's tokens; LAPE "
    "(Tang et al., ACL 2024) scores the MLP activation act_fn(gate_proj(x)) token by token: the share of a "
    "language's tokens on which the unit is > 0, and the entropy of those shares over languages. The two "
    "meet at the gate: LAPE's activation unit (block l, unit i) is compared with AP's gate_proj unit (l, i). "
    "Even there they measure different things, since the mean of act(g) is not act of the mean of g, and a "
    "share of active tokens is not a ranking of sentences, so the sets are not expected to coincide. Every "
    "comparison takes the same count N per language: the size of its LAPE set. jaccard_gate: AP's top-N "
    "among the gate_proj units; jaccard_all: AP's top-N over all linears (only its gate_proj members can "
    "match); jaccard_act: AP of the mean activation itself."
)


def layers_figure(layers: pd.DataFrame, langs: list[str]) -> Figure:
    """Neurons per language and block, AP's top-N next to LAPE's set."""
    fig = new_figure(8.4, 1.6 + 0.3 * len(langs))
    axes = fig.subplots(1, 2, sharey=True)
    for ax, method in zip(axes, ("ap", "lape")):
        counts = layers[layers["method"] == method].pivot(index="language", columns="block", values="count")
        image = heatmap(ax, counts.reindex(index=langs), "viridis", None)
        ax.set_xticks(range(0, counts.shape[1], max(1, counts.shape[1] // 6)))
        ax.set_xlabel("block")
        ax.set_title(f"{method.upper()}: neurons per block")
        fig.colorbar(image, ax=ax, shrink=0.9)
    return fig


def perplexity_ratios(table: pd.DataFrame, method: str) -> pd.DataFrame:
    """Mask × evaluated perplexity of one method divided by the unforced perplexity."""
    matrix = perplexity_matrix(table, method)
    base = table[table["method"] == "none"].set_index("evaluated")["perplexity"]
    return matrix / base.reindex(matrix.columns).to_numpy()


def perplexity_figure(ratios: pd.DataFrame, method: str, limits: tuple[float, float]) -> Figure:
    """One method's perplexity ratios; rows = the language whose neurons are set to 0."""
    fig = new_figure(4.6, 3.8)
    ax = fig.add_subplot()
    heatmap(ax, ratios, "Reds", ".2f").set_clim(*limits)  # one colour scale for both methods
    ax.set_xlabel("evaluated language")
    ax.set_ylabel("neurons set to 0")
    ax.set_title(f"{method.upper()}: perplexity ÷ unforced")
    return fig


def stability_figure(summary: pd.DataFrame, langs: list[str]) -> Figure:
    """Mean pairwise Jaccard of the bootstrap sets per language, one bar per method."""
    fig = new_figure()
    ax = fig.add_subplot()
    methods = list(dict.fromkeys(summary["method"]))
    width = 0.8 / len(methods)
    for i, method in enumerate(methods):
        part = summary[summary["method"] == method].set_index("language").reindex(langs)
        ax.bar(np.arange(len(langs)) + i * width, part["mean_jaccard"], width, label=method.upper(), color=f"C{i}")
    ax.set_xticks(np.arange(len(langs)) + width * (len(methods) - 1) / 2, langs)
    ax.set_ylim(0, 1.15)
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.set_ylabel("mean pairwise Jaccard")
    ax.set_title(f"Stability over {int(summary['resamples'].iloc[0])} bootstrap resamples")
    ax.legend(fontsize=8, loc="upper center", ncol=len(methods), frameon=False)
    return fig


def read_csv(path: Path) -> pd.DataFrame | None:
    return pd.read_csv(path) if path.exists() else None


def methods_section(run: Path, info: RunInfo, langs: list[str], figures: Path) -> str:
    """The HTML section, or "" for a run without LAPE; writes compare_overlap/layers CSVs."""
    tables = comparison_tables(run)
    if tables is None:
        return ""
    for name, table in tables.items():
        write_table(table, run / "analysis" / f"{name}.csv")
    lape = info.lape
    facts = (f"LAPE kept {lape['selected']} of {lape['neurons']:,} activation units (top_rate "
             f"{lape['top_rate']}, τ = {lape['threshold']:.4f}, the {lape['quantile']} quantile of all P).")
    parts = [f"<p>{escape(EXPLANATION)}</p><p>{escape(facts)}</p>", html_table(tables["compare_overlap"]),
             figure_grid([("methods-layers", layers_figure(tables["compare_layers"], langs))], figures)]
    ppl = read_csv(run / "analysis" / "compare_perplexity.csv")
    if ppl is None:
        parts.append(f"<p>Perplexity matrices: run <code>langneurons compare {escape(run)}</code>.</p>")
    else:
        parts.append("<p>Perplexity of held-out sentences (columns) with one language's N neurons (rows) set to "
                     "0, divided by the unforced perplexity; both methods remove the same N per language.</p>")
        ratios = {m: perplexity_ratios(ppl, m) for m in ("ap", "lape")}
        limits = (min(r.min().min() for r in ratios.values()), max(r.max().max() for r in ratios.values()))
        parts.append(figure_grid([(f"methods-perplexity-{m}", perplexity_figure(r, m, limits))
                                  for m, r in ratios.items()], figures))
    summary, control = (read_csv(run / "analysis" / f"stability_{k}.csv") for k in ("summary", "control"))
    if summary is None:
        parts.append(f"<p>Stability: run <code>langneurons stability {escape(run)}</code>.</p>")
    else:
        parts += ["<p>Bootstrap over sentences: mean pairwise Jaccard of each language's set, its mean size, the "
                  "mean selection frequency of the full-data set's neurons (full_frequency) and how many of "
                  "them are chosen in at least 90% of resamples; then the scores under shuffled language "
                  "labels (what chance alone gives).</p>",
                  figure_grid([("methods-stability", stability_figure(summary, langs))], figures),
                  html_table(summary), html_table(control)]
    return section("AP and LAPE compared", *parts)
