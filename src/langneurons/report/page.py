"""The pieces every report section is built of: figures on an Agg canvas, escaped HTML tables,
figure grids inlined as base64 PNG, and the page itself.

The trap: the page must open offline and fetch nothing, and generated text must never form a link
or a tag: everything shown passes through `escape`, and figures are inlined, not linked.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.image import AxesImage

from ..io import write_bytes

DPI = 100
PNG_METADATA = {"Software": None}  # keep matplotlib's URL out of the PNG
CSS = """
body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1b1b1b}
main{max-width:1120px;margin:0 auto;padding:12px 16px 48px}
h1{font-size:1.5em;margin:.6em 0 .2em}h2{font-size:1.2em;margin:1.6em 0 .4em;border-bottom:1px solid #ddd}
.meta{color:#555;margin:0 0 1em}ul.summary li{margin:.3em 0}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(min(100%,460px),1fr));gap:16px}
figure{margin:0}figure img{width:100%;height:auto;display:block}
figcaption{font-size:.85em;color:#555}
.scroll{overflow-x:auto;margin:.5em 0}
table{border-collapse:collapse;font-size:.85em}
th,td{padding:3px 8px;border-bottom:1px solid #e3e3e3;text-align:left;vertical-align:top}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.text{min-width:16em;max-width:40em;white-space:pre-wrap;overflow-wrap:anywhere}
details{margin:.4em 0}summary{cursor:pointer;font-weight:600}
"""


def escape(text: object) -> str:
    """HTML-escaped text in which no `scheme://` can appear (generated text may hold URLs)."""
    return html.escape(str(text)).replace("://", ":&#47;&#47;")


def new_figure(width: float = 4.8, height: float = 3.4) -> Figure:
    """A figure on an Agg canvas (no pyplot, no global state)."""
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def heatmap(ax: Axes, matrix: pd.DataFrame, cmap: str, fmt: str | None) -> AxesImage:
    """Draw `matrix` with row/column labels and optional cell annotations; returns the image."""
    image = ax.imshow(matrix.to_numpy(dtype=float), cmap=cmap, aspect="auto")
    ax.set_xticks(range(matrix.shape[1]), [str(c) for c in matrix.columns])
    ax.set_yticks(range(matrix.shape[0]), [str(r) for r in matrix.index])
    if fmt:
        for (i, j), value in np.ndenumerate(matrix.to_numpy(dtype=float)):
            ax.text(j, i, "–" if np.isnan(value) else format(value, fmt), ha="center", va="center",
                    fontsize=9)
    return image


def save_figure(fig: Figure, folder: Path, name: str) -> str:
    """Save `fig` as PNG and SVG in `folder`, atomically; return the PNG as a data URI."""
    png, svg = io.BytesIO(), io.BytesIO()
    fig.savefig(png, format="png", dpi=DPI, metadata=PNG_METADATA)
    fig.savefig(svg, format="svg")
    write_bytes(folder / f"{name}.png", png.getvalue())
    write_bytes(folder / f"{name}.svg", svg.getvalue())
    return "data:image/png;base64," + base64.b64encode(png.getvalue()).decode("ascii")


def number(value: float) -> str:
    """Three decimals for shares, AP and small values; one for large ones; blank for NaN."""
    return "" if np.isnan(value) else format(value, ",.3f" if abs(value) < 100 else ",.1f")


def cell(value: object) -> str:
    """A table cell: numbers right-aligned and rounded, everything else escaped text."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        return f'<td class="num">{value:,}</td>'
    if isinstance(value, (float, np.floating)):
        return f'<td class="num">{number(value)}</td>'
    return f'<td class="text">{escape(value)}</td>' if len(str(value)) > 40 else f"<td>{escape(value)}</td>"


def html_table(table: pd.DataFrame) -> str:
    head = "".join(f"<th>{escape(c)}</th>" for c in table.columns)
    body = "".join("<tr>" + "".join(cell(v) for v in row) + "</tr>"
                   for row in table.itertuples(index=False))
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def figure_grid(figures: list[tuple[str, Figure]], folder: Path) -> str:
    """Save each figure under RUN/figures and inline it; captions name the saved files."""
    items = [f'<figure><img alt="{escape(name)}" src="{save_figure(fig, folder, name)}">'
             f"<figcaption>figures/{escape(name)}.png, .svg</figcaption></figure>" for name, fig in figures]
    return f'<div class="grid">{"".join(items)}</div>'


def section(title: str, *parts: str) -> str:
    return f"<section><h2>{escape(title)}</h2>{''.join(parts)}</section>"


def page(title: str, meta: str, body: str) -> str:
    return ('<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>{escape(title)}</title><style>{CSS}</style></head>"
            f"<body><main><h1>{escape(title)}</h1><p class=\"meta\">{meta}</p>{body}</main></body></html>\n")
