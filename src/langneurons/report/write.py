"""One self-contained HTML report of a RUN folder: summary sentences, figures, tables, samples.

`write_report(run)` writes RUN/report.html, every figure as PNG and SVG under RUN/figures/, and
the analysis tables under RUN/analysis/. The trap: the HTML must open offline and fetch nothing,
so figures are inlined as base64 PNG (matplotlib's SVG names its namespace with an http URL),
the CSS is inline, and generated text is escaped so that it cannot form a link or a tag.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import LogFormatter

from ..find.info import RunInfo, load_run
from ..io import write_table, write_text
from ..lock import run_lock
from .analysis import (
    SIDES,
    Analysis,
    analyze,
    edge_blocks,
    has_values,
    overlap_matrix,
    site_table,
    summary_sentences,
)
from .frontier import frontier_section
from .methods import methods_section
from .page import (
    escape,
    figure_grid,
    heatmap,
    html_table,
    new_figure,
    page,
    section,
)
from .steering import steering_section
from .task import task_section

ATTENTION_COLORS = ["#08519c", "#3182bd", "#6baed6", "#9ecae1", "#c6dbef"]
MLP_COLORS = ["#a63603", "#e6550d", "#fd8d3c", "#fdae6b", "#fdd0a2"]


def language_colors(langs: list[str]) -> dict[str, str]:
    palette = [f"C{i}" for i in range(10)]
    return {lang: palette[i % len(palette)] for i, lang in enumerate(langs)}


def overlap_figure(table: pd.DataFrame, side: str) -> Figure:
    """Percent of shared neurons between languages' sets (diagonal left blank)."""
    matrix = overlap_matrix(table).astype(float)
    matrix = matrix.mask(np.eye(len(matrix), dtype=bool))
    fig = new_figure(4.4, 3.7)
    ax = fig.add_subplot()
    heatmap(ax, matrix, "Blues", ".1f")
    ax.set_title(f"Shared {side}-{int(table['n'].iloc[0])} neurons (% of N)")
    return fig


def layers_figure(result: Analysis, side: str, langs: list[str]) -> Figure:
    """Neurons per language and block: a heatmap of counts."""
    part = result.layers[result.layers["side"] == side]
    counts = part.pivot_table(index="language", columns="block", values="count", aggfunc="sum")
    counts = counts.reindex(index=langs, columns=range(result.info.blocks), fill_value=0).fillna(0)
    fig = new_figure(4.8, 1.4 + 0.3 * len(langs))
    ax = fig.add_subplot()
    image = heatmap(ax, counts, "viridis", None)
    ax.set_xticks(range(0, counts.shape[1], max(1, counts.shape[1] // 9)))
    ax.set_xlabel("block")
    fig.colorbar(image, ax=ax, label="neurons", shrink=0.9)
    ax.set_title(f"{side.capitalize()}-{result.n} neurons per block")
    return fig


def module_colors(sites: pd.DataFrame) -> dict[str, str]:
    """Blues for attention modules, oranges for MLP modules, in block order."""
    locals_ = sites.drop_duplicates("local")
    colors = {}
    for kind, palette in (("attention", ATTENTION_COLORS), ("mlp", MLP_COLORS)):
        for i, local in enumerate(locals_.loc[locals_["kind"] == kind, "local"]):
            colors[local] = palette[i % len(palette)]
    return colors


def modules_figure(result: Analysis, side: str, langs: list[str]) -> Figure:
    """Share of each module among a language's neurons, with all neurons as the reference bar."""
    sites = site_table(result.info)
    part = result.layers[result.layers["side"] == side]
    shares = part.pivot_table(index="language", columns="local", values="count", aggfunc="sum")
    shares = shares.reindex(index=langs).fillna(0)
    shares.loc["all neurons"] = sites.groupby("local")["width"].sum()
    colors = module_colors(sites)
    shares = shares.reindex(columns=list(colors), fill_value=0).fillna(0)
    shares = shares.div(shares.sum(axis=1), axis=0) * 100
    fig = new_figure(4.8, 2.2 + 0.28 * len(shares))
    ax = fig.add_subplot()
    left = np.zeros(len(shares))
    for local, color in colors.items():
        ax.barh(range(len(shares)), shares[local], left=left, color=color, label=local)
        left += shares[local].to_numpy()
    ax.set_yticks(range(len(shares)), list(shares.index))
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("% of neurons")
    fig.legend(loc="outside lower center", ncol=min(3, len(colors)), fontsize=8.5, frameon=False)
    ax.set_title(f"{side.capitalize()}-{result.n} neurons per module")
    return fig


def ap_figure(expertise: pd.DataFrame, langs: list[str]) -> Figure:
    """Histogram of AP per language (log count), to show the tail of strong experts."""
    fig = new_figure()
    ax = fig.add_subplot()
    bins = np.linspace(0, 1, 51)
    for lang, color in language_colors(langs).items():
        ap = expertise.loc[expertise["concept"] == lang, "ap"].dropna()
        ax.hist(ap, bins=bins, histtype="step", color=color, label=lang, linewidth=1.3)
    ax.set_yscale("log")
    ax.set_xlabel("average precision")
    ax.set_ylabel("neurons")
    ax.legend(fontsize=8, ncol=2)
    ax.set_title("AP of every neuron, per language")
    return fig


def short_n(n: float) -> str:
    return f"{n / 1000:g}k" if n >= 1000 else f"{n:g}"


def sweep_figure(points: pd.DataFrame, metric: str, title: str, langs: list[str]) -> Figure:
    """`metric` against N per language on a log axis, with N = 0 drawn at the far left.

    The target share gets a shaded band where the sweep has `target_low`/`target_high`.
    """
    ns = sorted(points.loc[points["n"] > 0, "n"].unique())
    zero_at = (ns[0] if ns else 1) / 10
    fig = new_figure()
    ax = fig.add_subplot()
    for lang, color in language_colors(langs).items():
        line = points[points["language"] == lang].sort_values("n")
        x = line["n"].replace(0, zero_at)
        if len(line):
            ax.plot(x, line[metric], marker="o", markersize=3.5, color=color, label=lang)
        if metric == "target_share" and has_values(line, "target_low"):  # confidence interval
            ax.fill_between(x, line["target_low"], line["target_high"], color=color, alpha=0.12, lw=0)
    ax.set_xscale("log")
    ax.set_xticks([zero_at, *ns], ["0", *(short_n(n) for n in ns)])
    ax.minorticks_off()
    ax.set_xlabel("N (neurons forced)")
    ax.set_title(title)
    if metric == "target_share":
        ax.set_ylim(-0.03, 1.03)
    elif metric == "perplexity":
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(LogFormatter(labelOnlyBase=False))
        ax.yaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False))  # plain numbers, not 10^k
    ax.legend(fontsize=8, ncol=2)
    return fig


PANEL = ("selection", "value", "positions")  # one figure panel per combination


def panel_points(sweep: pd.DataFrame, mode: str, key: tuple) -> pd.DataFrame:
    """Rows of one (selection, value, positions) panel plus each language's N = 0 baseline."""
    rows = sweep[(sweep["mode"] == mode) & (sweep["n"] > 0)]
    rows = rows[[tuple(r) == key for r in rows[list(PANEL)].itertuples(index=False)]]
    base = sweep[(sweep["mode"] == mode) & (sweep["n"] == 0)].drop_duplicates("language")
    return pd.concat([base, rows], ignore_index=True)


def sweep_figures(sweep: pd.DataFrame, langs: list[str]) -> list[tuple[str, Figure]]:
    """Target share per mode and panel; perplexity for the first mode; chrF for translation."""
    steered = sweep[sweep["n"] > 0]
    keys = list(dict.fromkeys(tuple(r) for r in steered[list(PANEL)].itertuples(index=False)))
    plots = [("target_share", mode, "target-language share") for mode in sweep["mode"].unique()]
    if has_values(sweep, "perplexity"):
        plots.append(("perplexity", sweep.loc[sweep["perplexity"].notna(), "mode"].iloc[0], "perplexity"))
    if has_values(sweep[sweep["mode"] == "translation"], "chrf"):
        plots.append(("chrf", "translation", "chrF"))
    figures = []
    for metric, mode, label in plots:
        for key in keys:
            points = panel_points(sweep, mode, key).dropna(subset=[metric])
            if (points["n"] > 0).any():
                title = f"{label}: {mode}, {' · '.join(k for k in key if k not in ('on_p50', 'all'))}"
                figures.append((f"{metric}-{mode}-{'-'.join(key)}".replace(":", "_"),
                                sweep_figure(points, metric, title, langs)))
    return figures


def samples_html(samples: pd.DataFrame) -> str:
    """Sample generations, one collapsible block per mode and language."""
    parts = []
    for index, ((mode, lang), part) in enumerate(samples.groupby(["mode", "language"], sort=False)):
        shown = part.assign(detected=[f"{l} {p:.2f}" for l, p in zip(part["lang"], part["lang_prob"])])
        shown = shown[["selection", "n", "value", "seed", "detected", "text"]].rename(columns={"n": "N"})
        label = "no intervention" if lang == "none" else lang
        parts.append(f"<details{' open' if index == 0 else ''}><summary>{escape(mode)} · {escape(label)} "
                     f"({len(part)} samples)</summary>"
                     f"{html_table(shown)}</details>")
    return "".join(parts)


def run_facts(info: RunInfo, sweep: pd.DataFrame | None) -> pd.DataFrame:
    """Counts, settings and timings of the run as a two-column table."""
    keys = ["model", "model_class", "method", "corpus", "languages", "positives_per_language",
            "negatives_per_language", "unique_sentences", "modules", "neurons", "blocks", "device",
            "dtype", "store_dtype", "batch_size", "langneurons", "torch", "transformers"]
    facts = [(k, getattr(info, k)) for k in keys]
    facts += [(f"timings.{k}", v) for k, v in info.timings.items()]
    if sweep is not None:
        facts.append(("sweep cells", len(sweep)))
        if "seconds" in sweep:
            facts.append(("sweep seconds", round(float(sweep["seconds"].sum()), 1)))
    return pd.DataFrame([(k, fact_text(v)) for k, v in facts], columns=["item", "value"])


def fact_text(value: object) -> object:
    """Numbers stay numbers; lists and dicts become short text (`en, de` / `en 500, de 500`)."""
    if isinstance(value, dict):
        return ", ".join(f"{k} {v}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(map(str, value))
    return value if isinstance(value, (int, float)) else str(value)


def write_tables(result: Analysis, folder: Path) -> None:
    """The analysis tables as CSV under RUN/analysis/."""
    tables = {"overlap_top": result.overlap_top, "overlap_bottom": result.overlap_bottom,
              "layers": result.layers, "edge_share": result.edges, "ap_summary": result.ap}
    if result.best is not None:
        tables["best_n"] = result.best
    for name, table in tables.items():
        write_table(table, folder / f"{name}.csv")


def steering_sections(result: Analysis, langs: list[str], figures: Path) -> list[str]:
    if result.sweep is None:
        return []
    return [section("Steering", "<p>Target-language share, perplexity of held-out text and chrF against N "
                    "(log scale; N = 0 is the unforced model, drawn at the left).</p>",
                    html_table(result.best), figure_grid(sweep_figures(result.sweep, langs), figures)),
            section("Sample generations", samples_html(result.samples))]


def neuron_sections(result: Analysis, expertise: pd.DataFrame, langs: list[str], figures: Path) -> list[str]:
    """Overlap, location (blocks and modules) and AP of the language neurons."""
    overlaps = {"top": result.overlap_top, "bottom": result.overlap_bottom}
    first, last = edge_blocks(result.info.blocks)
    where = [(f"{kind}-{side}", draw(result, side, langs)) for side in SIDES
             for kind, draw in (("blocks", layers_figure), ("modules", modules_figure))]
    return [
        section("Overlap between languages",
                figure_grid([(f"overlap-{s}", overlap_figure(overlaps[s], s)) for s in SIDES], figures)),
        section("Where the neurons sit", figure_grid(where, figures),
                f"<p>Share in the first {len(first)} and last {len(last)} blocks:</p>",
                html_table(result.edges)),
        section("Average precision", figure_grid([("ap", ap_figure(expertise, langs))], figures),
                html_table(result.ap)),
    ]


def write_report(run: Path, n: int = 1000, per_setting: int = 3) -> Path:
    """Analyse RUN and write RUN/report.html (self-contained), RUN/figures/, RUN/analysis/, holding the
    RUN's lock (a second writer is refused at once).

    Args:
        n: size of the top and bottom sets compared (capped at the neurons per language).
        per_setting: sample generations shown per sweep setting.
    """
    run = Path(run)
    with run_lock(run, "report"):
        return write_pages(run, n, per_setting)


def write_pages(run: Path, n: int, per_setting: int) -> Path:
    """The body of `write_report`, under the lock."""
    info, expertise = load_run(run)
    result = analyze(info, expertise, n, run, per_setting)
    write_tables(result, run / "analysis")
    langs, figures = list(info.languages), run / "figures"
    sentences = "".join(f"<li>{escape(s)}</li>" for s in summary_sentences(result))
    body = [section("Summary", f'<ul class="summary">{sentences}</ul>'),
            *neuron_sections(result, expertise, langs, figures),
            methods_section(run, info, langs, figures),
            *steering_sections(result, langs, figures),
            frontier_section(run, langs, figures),
            steering_section(run, langs, figures),
            task_section(run, langs, figures),
            section("Run", html_table(run_facts(info, result.sweep)))]
    meta = (f"corpus {escape(info.corpus)} · languages {escape(', '.join(langs))} · "
            f"{info.neurons:,} neurons in {info.modules} modules, {info.blocks} blocks")
    path = run / "report.html"
    write_text(path, page(f"Language neurons of {info.model}", meta, "".join(body)))
    return path
