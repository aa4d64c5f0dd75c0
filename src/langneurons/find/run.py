"""`find`: corpus → unique sentences → recorded responses → expertise tables in a RUN folder.

Layout of RUN: `run.json` (settings, fingerprint, counts, timings), `sentences.jsonl`,
`store/` (responses, resumable), `expertise/<lang>.csv` and `expertise.parquet`; with
`method="lape"` or `"both"` also `lape_store/` (activation means and counts, float32),
`lape/<lang>.csv`, `lape.parquet` and `activation_expertise.parquet` (lape.py); with
`method="diffmean"` or `"all"` also `diffmean_store/` (each block's mean-pooled output and per-token
norm, float32), `diffmean.npz` and `diffmean.parquet` (diffmean.py).
Rerunning the same command continues a killed run; a different model or corpus is refused.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import transformers

from .. import __version__
from ..data import LabelSet, build_labels, load_corpus
from ..errors import LangneuronsError
from ..io import ensure_writable, write_jsonl, write_table
from ..model import (
    EMBEDDED,
    LoadedModel,
    activation_sites,
    discover_sites,
    load_model,
    named_weights,
)
from ..progress import console
from ..sites import Sites
from .distributed import join
from .info import RUN_METHODS, RunInfo, load_run, sites_from_run  # noqa: F401  re-exported: their earlier home
from .expertise import BLOCK_ELEMENTS, compute_expertise
from .tables import COLUMNS
from .lape import QUANTILE, TOP_RATE, check_settings, store_widths, write_lape
from .diffmean import residual_sites, write_diffmean
from .diffmean import store_widths as residual_widths
from .record import record_responses
from .store import STORE_DTYPES, ResponseStore
from ..lock import main_rank_lock

METHODS = RUN_METHODS  # --method → methods computed


def model_signature(model: torch.nn.Module) -> str:
    """Cheap identity of a model: its config and a checksum of the start of every weight."""
    h = hashlib.sha256(model.config.to_json_string(use_diff=False).encode())
    for name, param in named_weights(model):
        head = param.detach().flatten()[:256].double().cpu()
        h.update(f"{name}{tuple(param.shape)}{head.sum().item():.12e}{head.abs().sum().item():.12e}".encode())
    return h.hexdigest()


def run_fingerprint(loaded: LoadedModel, sites: Sites, labelset: LabelSet, store_dtype: str) -> str:
    parts = [model_signature(loaded.model), json.dumps(sites.names), labelset.fingerprint(),
             loaded.dtype, store_dtype]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


@dataclass(frozen=True)
class FindSettings:
    """What `find` records and how: model and hardware, corpus and languages, method and its settings."""

    model: str = "gemma-3-270m"
    corpus: str = "builtin"
    languages: tuple[str, ...] | None = None  # None: every language of the corpus
    positives: int | None = None  # sentences per language; None: all
    device: str = "auto"
    dtype: str = "float32"
    batch_size: int = 16
    store_dtype: str = "float32"
    trust_remote_code: bool = False
    device_map: str | None = None
    method: str = "ap"
    lape_top_rate: float = TOP_RATE
    lape_quantile: float = QUANTILE

    def __post_init__(self) -> None:
        if self.languages is not None:
            object.__setattr__(self, "languages", tuple(self.languages))
        if self.method not in METHODS:
            raise LangneuronsError(f"--method {self.method!r} is not one of {', '.join(METHODS)}")
        if self.batch_size < 1:
            raise LangneuronsError(f"--batch-size {self.batch_size}: must be 1 or more")
        local = Path(self.model).expanduser()
        if self.model != EMBEDDED and local.exists():  # stored absolute: steering works from any folder
            object.__setattr__(self, "model", str(local.resolve()))
        check_settings(self.lape_top_rate, self.lape_quantile)

    def to_dict(self) -> dict:
        return {**asdict(self), "languages": None if self.languages is None else list(self.languages)}

    @classmethod
    def from_dict(cls, data: dict) -> "FindSettings":
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise LangneuronsError(f"find settings have unknown field(s) {sorted(unknown)}")
        return cls(**data)


def find(
    out: Path,
    model: str = "gemma-3-270m",
    corpus: str = "builtin",
    languages: list[str] | None = None,
    positives: int | None = None,
    device: str = "auto",
    dtype: str = "float32",
    batch_size: int = 16,
    store_dtype: str = "float32",
    trust_remote_code: bool = False,
    progress: bool = True,
    loaded: LoadedModel | None = None,
    device_map: str | None = None,
    method: str = "ap",
    lape_top_rate: float = TOP_RATE,
    lape_quantile: float = QUANTILE,
) -> RunInfo | None:
    """Find the expertise of every neuron for every language; returns the content of run.json.

    `method`: `ap` (every linear's AP), `lape` (LAPE of the MLP activations), `both`, `diffmean`
    (each block's mean output, for residual directions) or `all`, recorded in the same forward passes.
    Under torchrun each rank records its share (see distributed.py);
    ranks other than 0 return None. The keywords are those of `FindSettings` (see `find_with`).
    """
    settings = FindSettings(model, corpus, languages, positives, device, dtype, batch_size, store_dtype,
                            trust_remote_code, device_map, method, lape_top_rate, lape_quantile)
    return find_with(out, settings, progress, loaded)


def find_with(out: Path, settings: FindSettings, progress: bool = True,
              loaded: LoadedModel | None = None) -> RunInfo | None:
    """`find` with its settings as one object (`loaded`: a model already loaded, for tests); it holds
    the RUN's lock (lock.py) for its whole run, so a second writer is refused at once."""
    with main_rank_lock(Path(out), f"find --model {settings.model} --corpus {settings.corpus}"):
        return find_locked(out, settings, progress, loaded)


def find_locked(out: Path, settings: FindSettings, progress: bool = True,
                loaded: LoadedModel | None = None) -> RunInfo | None:
    model, corpus, dtype, store_dtype, method = (settings.model, settings.corpus, settings.dtype,
                                                 settings.store_dtype, settings.method)
    out = ensure_writable(Path(out))
    ranks, device = join(settings.device, settings.device_map)
    progress = progress and ranks.main
    labelset = build_labels(load_corpus(corpus), settings.languages and list(settings.languages),
                            settings.positives)
    started = time.perf_counter()
    loaded = loaded or load_model(model, device, dtype, settings.trust_remote_code, settings.device_map)
    load_seconds = time.perf_counter() - started
    sites = discover_sites(loaded.model)
    act = activation_sites(loaded.model, sites) if "lape" in METHODS[method] else None
    res = (residual_sites(sites.blocks_path, sites.n_blocks, hidden_size(loaded.model))
           if "diffmean" in METHODS[method] else None)
    fingerprint = run_fingerprint(loaded, sites, labelset, store_dtype)
    previous = out / "run.json"
    with ranks.main_first():  # rank 0 checks RUN and creates the store, then the other ranks open it
        before = previous_run(out)
        if before is not None and before.fingerprint != fingerprint:
            raise LangneuronsError(
                f"{out} already holds a run of another model, corpus or settings; choose another --out"
            )
        check_methods(previous, method, before)
        stores = []
        if "ap" in METHODS[method]:
            check_disk(out / "store", len(labelset.texts), sites.total, store_dtype, progress)
            if progress:
                ram = expertise_ram(len(labelset.texts), sites.total, len(labelset.languages))
                console.print(f"expertise pass: about {ram / 2**30:.2f} GiB of RAM besides the model")
            stores.append((sites, ResponseStore.open(out / "store", fingerprint, {s.name: s.width for s in sites},
                                                     len(labelset.texts), store_dtype, ranks.rank)))
        if act is not None:
            lape_fingerprint = run_fingerprint(loaded, act, labelset, "float32")
            check_disk(out / "lape_store", len(labelset.texts), 2 * act.total + 1, "float32", progress)
            stores.append((act, ResponseStore.open(out / "lape_store", lape_fingerprint, store_widths(act),
                                                   len(labelset.texts), "float32", ranks.rank)))
        if res is not None:
            res_fingerprint = run_fingerprint(loaded, res, labelset, "float32")
            check_disk(out / "diffmean_store", len(labelset.texts), res.total + res.n_blocks, "float32", progress)
            stores.append((res, ResponseStore.open(out / "diffmean_store", res_fingerprint, residual_widths(res),
                                                   len(labelset.texts), "float32", ranks.rank)))
        if ranks.main:  # only after the run and store checks: a refused run leaves the RUN as it was
            write_jsonl(out / "sentences.jsonl", labelset.records())
    recorded = record_responses(loaded.model, loaded.tokenizer, labelset.texts, *stores[0], settings.batch_size,
                                dtype, progress, ranks.shard, stores[1:])
    for _, store in stores:
        store.close()
    recorded = ranks.finish(recorded)  # rank 0 waits for every rank; the others are done
    if recorded is None:
        return None
    started = time.perf_counter()
    if "ap" in METHODS[method]:
        write_outputs(out, compute_expertise(stores[0][1], sites, labelset, loaded.device, progress=progress))
    expertise_seconds = time.perf_counter() - started
    if act is not None:
        lape = write_lape(out, next(st for s, st in stores if s is act), act, labelset, settings.lape_top_rate, settings.lape_quantile,
                          loaded.device, progress)
        recorded["lape_seconds"] = round(time.perf_counter() - started - expertise_seconds, 3)
    if res is not None:
        begun = time.perf_counter()
        diffmean = write_diffmean(out, next(st for s, st in stores if s is res), res, labelset)
        recorded["diffmean_seconds"] = round(time.perf_counter() - begun, 3)
    info = RunInfo(
        langneurons=__version__,
        torch=torch.__version__,
        transformers=transformers.__version__,
        model=model if loaded.spec is None else loaded.spec,
        model_class=type(loaded.model).__name__,
        device=str(loaded.device),
        device_map=getattr(loaded.model, "hf_device_map", None),
        dtype=loaded.dtype,
        store_dtype=store_dtype,
        corpus=corpus,
        languages=labelset.languages,
        positives_per_language={l: len(labelset.positives[l]) for l in labelset.languages},
        negatives_per_language={l: len(labelset.negatives[l]) for l in labelset.languages},
        unique_sentences=len(labelset.texts),
        modules=len(sites),
        neurons=sites.total,
        blocks=sites.n_blocks,
        batch_size=settings.batch_size,
        fingerprint=fingerprint,
        sites=sites.to_records(),
        timings={"load_seconds": round(load_seconds, 3), **recorded,
                 "expertise_seconds": round(expertise_seconds, 3)},
        method=method,
        lape=None if act is None else {**lape, "fingerprint": lape_fingerprint},
        diffmean=None if res is None else {**diffmean, "fingerprint": res_fingerprint},
    )
    info.write(out)
    return info


def previous_run(out: Path) -> RunInfo | None:
    """The run.json already in `out`, None when absent or damaged: a damaged one is rewritten by
    this run (the stores' own fingerprints still refuse a recording of other settings)."""
    if not (Path(out) / "run.json").exists():
        return None
    try:
        return RunInfo.read(out)
    except LangneuronsError:
        warnings.warn(f"{Path(out) / 'run.json'} is damaged; this run rewrites it", stacklevel=2)
        return None


def check_methods(previous: Path, method: str, info: RunInfo | None = None) -> None:
    """Refuse a --method that would leave some of an earlier run's results stale."""
    info = info if info is not None else previous_run(previous.parent)
    before = info.method if info is not None else method
    dropped = set(METHODS[before]) - set(METHODS[method])
    if dropped:
        raise LangneuronsError(
            f"{previous.parent} holds a --method {before} run; --method {method} would leave its "
            f"{', '.join(sorted(dropped)).upper()} results stale; use --method {widest(before, method)} "
            "or another --out"
        )


def widest(before: str, method: str) -> str:
    """The narrowest --method that keeps the methods of both."""
    wanted = set(METHODS[before]) | set(METHODS[method])
    return min((m for m, parts in METHODS.items() if wanted <= set(parts)), key=lambda m: len(METHODS[m]))


def hidden_size(model: torch.nn.Module) -> int:
    """The width of the residual stream (a block's output)."""
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    for key in ("hidden_size", "n_embd", "d_model"):
        if isinstance(getattr(config, key, None), int):
            return getattr(config, key)
    raise LangneuronsError(f"{type(model).__name__}: no hidden size in its config; DiffMean cannot size its store")


def store_bytes(n_rows: int, neurons: int, store_dtype: str) -> int:
    """Disk size of a response store: sentences × neurons × bytes per response."""
    return n_rows * neurons * STORE_DTYPES.get(store_dtype, np.float32)().itemsize


def expertise_ram(n_rows: int, neurons: int, languages: int) -> int:
    """RAM the expertise pass needs on top of the model: one chunk of responses with its copies and
    statistics, and the table of every (neuron, language) while it is built and written.
    Calibrated on measured peaks (tests/integration/test_scale.py checks it): up to 55 bytes per
    chunk response with 6 languages (8.4 M responses: 282-523 MB over runs, by thread timing)."""
    chunk = n_rows * min(2048, max(1, BLOCK_ELEMENTS // max(1, n_rows)))  # as compute_expertise chunks
    return 2**26 + 72 * chunk + 400 * neurons * languages  # 64 MiB: buffers of pandas, Arrow, the sort threads


def check_disk(store: Path, n_rows: int, neurons: int, store_dtype: str, verbose: bool) -> None:
    """Say how large the response store will be, and refuse to start when the disk can't hold it."""
    if (store / "meta.json").exists():
        return
    needed = store_bytes(n_rows, neurons, store_dtype)
    free = shutil.disk_usage(store.parent).free
    if verbose:
        console.print(f"response store: {n_rows:,} sentences × {neurons:,} neurons × "
                      f"{store_dtype} = {needed / 2**30:.2f} GiB on disk ({free / 2**30:.0f} GiB free)")
    if needed > free:
        raise LangneuronsError(
            f"the response store needs {needed / 2**30:.2f} GiB but {store.parent} has "
            f"{free / 2**30:.2f} GiB free; free space, use --store-dtype float16, or --positives N"
        )


def write_outputs(out: Path, table: pd.DataFrame) -> None:
    """Per-language reference CSVs and one Parquet of all languages."""
    for lang, part in table.groupby("concept", sort=False):
        write_table(part[COLUMNS], out / "expertise" / f"{lang}.csv")
    write_table(table, out / "expertise.parquet")
