"""AP and LAPE side by side on one run: the model-free agreement tables (`agreement`) and what
deactivating each method's neurons costs (perplexity matrices), written together by `compare`."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..errors import LangneuronsError
from ..find.tables import lape_sizes
from ..io import write_table
from ..progress import console
from ..steer.evaluate import perplexity
from ..steer.intervene import Intervention
from ..steer.steerable import Steerable, heldout_sentences, open_run
from .agreement import METHODS, comparison_tables


def deactivation_perplexity(steerable: Steerable, sentences: int = 50, progress: bool = True) -> pd.DataFrame:
    """Perplexity of each language's held-out sentences with each language's neurons set to 0.

    Both methods zero the same count N per language: LAPE its set, AP its top-N by AP. Returns
    columns method, mask, n, evaluated, perplexity, baseline (method and mask "none": no edit).
    """
    if steerable.activation is None or steerable.expertise is None:
        raise LangneuronsError(f"{steerable.run}: the comparison needs both methods; run "
                               f"`langneurons find --method both --out {steerable.run}`")
    lm, langs = steerable.loaded, list(steerable.info.languages)
    texts = {lang: heldout_sentences(lang, sentences) for lang in langs}
    baseline = {lang: perplexity(lm.model, lm.tokenizer, texts[lang]) for lang in langs}
    rows = [{"method": "none", "mask": "none", "n": 0, "evaluated": e, "perplexity": baseline[e],
             "baseline": baseline[e]} for e in langs]
    for method in METHODS:
        for mask, n in lape_sizes(steerable.activation).items():
            if progress:
                console.print(f"perplexity: {method} {mask} (N = {n}) off")
            plan = steerable.plan([Intervention(mask, n, "top", "zero", method=method)])
            rows += [{"method": method, "mask": mask, "n": n, "evaluated": e, "baseline": baseline[e],
                      "perplexity": perplexity(lm.model, lm.tokenizer, texts[e], plan)} for e in langs]
    return pd.DataFrame(rows)


def compare(run: Path, sentences: int = 50, device: str = "auto", steerable: Steerable | None = None,
            progress: bool = True) -> dict[str, pd.DataFrame]:
    """All comparison tables, written as RUN/analysis/compare_*.csv; loads the model for perplexity."""
    steerable = steerable or open_run(run, device)
    tables = comparison_tables(run)
    if tables is None:
        raise LangneuronsError(f"{run}: no LAPE results; run `langneurons find --method both --out {run}`")
    tables["compare_perplexity"] = deactivation_perplexity(steerable, sentences, progress)
    for name, table in tables.items():
        write_table(table, Path(run) / "analysis" / f"{name}.csv")
    return tables
