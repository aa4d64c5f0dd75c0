"""Residual-stream language directions (DiffMean and its ReCoVeR variant; docs/method.md §11).

`find --method diffmean` (or `all`) records, in the same forward passes as the neurons, each
decoder block's output hidden state mean-pooled over each sentence's tokens after the first, and
the mean per-token norm of that state over the same tokens. The first token (BOS where the
tokenizer adds one) is left out: its state is the same in every sentence, an attention sink whose
norm is many times the others' (on Gemma-3-270M the pooled state's norm exceeded the typical
per-token norm with it), and weighing 1/length it would put sentence length into the directions.
A one-token sentence keeps its token. From that store, per language L and block ℓ:

- `diffmean`: v = mean over L's sentences − mean over the other languages' sentences (L's negatives);
- `recover`: u = mean over L's sentences − the mean of all languages' means (ReCoVeR's centring);
- `typical_norm`: the mean over all sentences of the mean per-token norm of the block's output, the
  unit of an intervention's strength α (`add:α` adds α·typical_norm·v̂);
- `means`: the mean over L's sentences itself, from which `clamp:β` reads where L's states lie along v̂
  (schema 2; a schema-1 file has none and steers with `add:α` only).

They are written to `RUN/diffmean.npz` (the vectors) and `RUN/diffmean.parquet` (norms per
language and block). Torch-free: the steering and the export read the npz through `Directions`.
The trap: a block's forward returns a tuple in most transformers versions; the hidden state is its
first element (the recording and the steering hook both take it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..data import LabelSet
from ..errors import LangneuronsError
from ..io import NPZ_DAMAGE, write_npz, write_table
from ..schema import SCHEMAS, migrate
from ..sites import Site, Sites, block_name
from .store import ResponseStore

RESIDUAL = "residual"  # the `kind` of a block-output site
NORM = ".norm"  # store array suffix: per sentence, the mean per-token norm of the block's output
FILE = "diffmean.npz"
SUMMARY = "diffmean.parquet"
VARIANTS = ("diffmean", "recover")


def residual_sites(blocks_path: str, n_blocks: int, hidden: int) -> Sites:
    """One site per decoder block: its output hidden state, `hidden` wide."""
    sites = tuple(Site(block_name(blocks_path, i), i, "", RESIDUAL, hidden, i * hidden)
                  for i in range(n_blocks))
    return Sites(blocks_path, n_blocks, sites)


def store_widths(sites: Sites) -> dict[str, int]:
    """Arrays of the residual store: the pooled state and the mean per-token norm of each block."""
    return {**{s.name: s.width for s in sites}, **{s.name + NORM: 1 for s in sites}}


@dataclass(frozen=True)
class Directions:
    """A run's language directions: `vectors[variant][language]` is `[blocks, hidden]` float32."""

    languages: tuple[str, ...]
    blocks: tuple[str, ...]  # the block modules' names, in order
    diffmean: np.ndarray  # [languages, blocks, hidden]
    recover: np.ndarray  # [languages, blocks, hidden]
    typical_norm: np.ndarray  # [blocks]: mean per-token norm of the block's output
    pooled_norm: np.ndarray  # [blocks]: mean norm of the mean-pooled output (smaller: pooling averages)
    means: np.ndarray | None = None  # [languages, blocks, hidden]: the mean over L's sentences; None: schema 1

    @property
    def hidden(self) -> int:
        return int(self.diffmean.shape[-1])

    def vector(self, language: str, block: int, variant: str = "diffmean") -> np.ndarray:
        """The unnormalised direction of `language` at `block`."""
        if language not in self.languages:
            raise LangneuronsError(f"language {language}: no DiffMean direction in this run "
                                   f"(it has {', '.join(self.languages)})")
        if not 0 <= block < len(self.blocks):
            raise LangneuronsError(f"block {block}: this model has blocks 0-{len(self.blocks) - 1}")
        table = {"diffmean": self.diffmean, "recover": self.recover, "means": self.means}[variant]
        if table is None:
            raise LangneuronsError("this run's DiffMean directions predate the language means (diffmean.npz schema 1); "
                                   "rerun `langneurons find --method all --out RUN` (it reuses what is recorded)")
        return table[self.languages.index(language), block]

    def write(self, run: Path) -> None:
        write_npz(Path(run) / FILE, schema=np.int64(SCHEMAS["diffmean"]), languages=np.array(self.languages),
                  blocks=np.array(self.blocks), diffmean=self.diffmean, recover=self.recover,
                  typical_norm=self.typical_norm, pooled_norm=self.pooled_norm,
                  **({} if self.means is None else {"means": self.means}))
        write_table(self.summary(), Path(run) / SUMMARY)

    def summary(self) -> pd.DataFrame:
        """One row per language and block: the norms of both vectors and the block's typical norms."""
        rows = []
        for li, lang in enumerate(self.languages):
            for b, name in enumerate(self.blocks):
                rows.append({"schema": SCHEMAS["diffmean"], "language": lang, "block": b, "module": name,
                             "diffmean_norm": float(np.linalg.norm(self.diffmean[li, b])),
                             "recover_norm": float(np.linalg.norm(self.recover[li, b])),
                             "typical_norm": float(self.typical_norm[b]),
                             "pooled_norm": float(self.pooled_norm[b])})
        return pd.DataFrame(rows)

    @classmethod
    def read(cls, run: Path) -> "Directions":
        """RUN/diffmean.npz, checked; refuses a run without one with the command that makes it."""
        path = Path(run) / FILE
        if not path.exists():
            raise LangneuronsError(f"{run}: no DiffMean directions ({FILE}); run "
                                   f"`langneurons find --method all --out {run}` (it keeps what is recorded)")
        try:
            with np.load(path, allow_pickle=False) as data:
                migrate("diffmean", {"schema": int(data["schema"])}, f"langneurons find --method all --out {run}")
                return cls(tuple(str(x) for x in data["languages"]), tuple(str(x) for x in data["blocks"]),
                           data["diffmean"].astype(np.float32), data["recover"].astype(np.float32),
                           data["typical_norm"].astype(np.float32), data["pooled_norm"].astype(np.float32),
                           data["means"].astype(np.float32) if "means" in data.files else None)
        except NPZ_DAMAGE as exc:
            raise LangneuronsError(f"{path} is damaged ({exc}); rerun `langneurons find --method all "
                                   f"--out {run}`") from None


def compute_directions(store: ResponseStore, sites: Sites, labelset: LabelSet) -> Directions:
    """Per language and block the DiffMean and ReCoVeR vectors, and each block's typical norms.

    Every mean is over sentences (each sentence's state already mean-pooled over its tokens), in
    float64; reads one block at a time, `[sentences, hidden]`."""
    langs = list(labelset.languages)
    lonely = [l for l in langs if len(labelset.negatives[l]) == 0 or len(labelset.positives[l]) == 0]
    if lonely:
        raise LangneuronsError(f"DiffMean needs sentences of the language and of at least one other; "
                               f"{', '.join(lonely)} has none (give find two or more --languages)")
    n_l, n_b, hidden = len(langs), len(sites), sites.sites[0].width
    diffmean = np.zeros((n_l, n_b, hidden), np.float32)
    recover = np.zeros((n_l, n_b, hidden), np.float32)
    language_means = np.zeros((n_l, n_b, hidden), np.float32)
    typical, pooled = np.zeros(n_b, np.float32), np.zeros(n_b, np.float32)
    used = np.unique(np.concatenate([labelset.positives[l] for l in langs]))
    for b, site in enumerate(sites):
        states = np.asarray(store.responses(site.name), dtype=np.float64)
        norms = np.asarray(store.responses(site.name + NORM), dtype=np.float64)[:, 0]
        means = np.stack([states[labelset.positives[l]].mean(axis=0) for l in langs])
        centre = means.mean(axis=0)
        language_means[:, b] = means
        for li, lang in enumerate(langs):
            diffmean[li, b] = means[li] - states[labelset.negatives[lang]].mean(axis=0)
            recover[li, b] = means[li] - centre
        typical[b] = norms[used].mean()
        pooled[b] = np.linalg.norm(states[used], axis=1).mean()
        del states
    return Directions(tuple(langs), tuple(sites.names), diffmean, recover, typical, pooled, language_means)


def write_diffmean(out: Path, store: ResponseStore, sites: Sites, labelset: LabelSet) -> dict:
    """Compute and write the directions; returns run.json's `diffmean` entry."""
    directions = compute_directions(store, sites, labelset)
    directions.write(out)
    return {"file": FILE, "summary": SUMMARY, "blocks": len(sites), "hidden": directions.hidden,
            "sites": sites.to_records()}
