"""`find`: corpus → unique sentences → recorded responses → expertise tables in a RUN folder.

Layout of RUN: `run.json` (settings, fingerprint, counts, timings), `sentences.jsonl`,
`store/` (responses, resumable), `expertise/<lang>.csv` and `expertise.parquet`.
Rerunning the same command continues a killed run; a different model or corpus is refused.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import transformers

from . import __version__
from .data import LabelSet, build_labels, load_corpus
from .errors import LangneuronsError
from .expertise import COLUMNS, compute_expertise
from .model import LoadedModel, load_model
from .record import record_responses
from .sites import Sites, discover_sites
from .progress import console
from .store import STORE_DTYPES, ResponseStore, ensure_writable, write_json, write_jsonl, write_table


def model_signature(model: torch.nn.Module) -> str:
    """Cheap identity of a model: its config and a checksum of the start of every weight."""
    h = hashlib.sha256(model.config.to_json_string(use_diff=False).encode())
    for name, param in model.named_parameters():
        head = param.detach().flatten()[:256].double().cpu()
        h.update(f"{name}{tuple(param.shape)}{head.sum().item():.12e}{head.abs().sum().item():.12e}".encode())
    return h.hexdigest()


def run_fingerprint(loaded: LoadedModel, sites: Sites, labelset: LabelSet, store_dtype: str) -> str:
    parts = [model_signature(loaded.model), json.dumps(sites.names), labelset.fingerprint(),
             loaded.dtype, store_dtype]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


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
) -> dict:
    """Find the expertise of every neuron for every language; returns the content of run.json."""
    out = ensure_writable(Path(out))
    labelset = build_labels(load_corpus(corpus), languages, positives)
    started = time.perf_counter()
    loaded = loaded or load_model(model, device, dtype, trust_remote_code)
    load_seconds = time.perf_counter() - started
    sites = discover_sites(loaded.model)
    fingerprint = run_fingerprint(loaded, sites, labelset, store_dtype)
    previous = out / "run.json"
    if previous.exists() and json.loads(previous.read_text()).get("fingerprint") != fingerprint:
        raise LangneuronsError(
            f"{out} already holds a run of another model, corpus or settings; choose another --out"
        )
    write_jsonl(out / "sentences.jsonl", labelset.records())
    check_disk(out / "store", len(labelset.texts), sites.total, store_dtype, progress)
    store = ResponseStore.open(
        out / "store", fingerprint, {s.name: s.width for s in sites}, len(labelset.texts), store_dtype
    )
    recorded = record_responses(
        loaded.model, loaded.tokenizer, labelset.texts, sites, store, batch_size, dtype, progress
    )
    store.close()
    started = time.perf_counter()
    table = compute_expertise(store, sites, labelset, loaded.device, progress=progress)
    expertise_seconds = time.perf_counter() - started
    write_outputs(out, table)
    info = {
        "langneurons": __version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "model": model if loaded.spec is None else loaded.spec,
        "model_class": type(loaded.model).__name__,
        "device": str(loaded.device),
        "dtype": loaded.dtype,
        "store_dtype": store_dtype,
        "corpus": corpus,
        "languages": labelset.languages,
        "positives_per_language": {l: len(labelset.positives[l]) for l in labelset.languages},
        "negatives_per_language": {l: len(labelset.negatives[l]) for l in labelset.languages},
        "unique_sentences": len(labelset.texts),
        "modules": len(sites),
        "neurons": sites.total,
        "blocks": sites.n_blocks,
        "batch_size": batch_size,
        "fingerprint": fingerprint,
        "sites": sites.to_records(),
        "timings": {"load_seconds": round(load_seconds, 3), **recorded,
                    "expertise_seconds": round(expertise_seconds, 3)},
    }
    write_json(out / "run.json", info)
    return info


def check_disk(store: Path, n_rows: int, neurons: int, store_dtype: str, verbose: bool) -> None:
    """Say how large the response store will be, and refuse to start when the disk can't hold it."""
    if (store / "meta.json").exists():
        return
    needed = n_rows * neurons * STORE_DTYPES.get(store_dtype, np.float32)().itemsize
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


def load_run(run: Path) -> tuple[dict, pd.DataFrame]:
    """Read a RUN folder's run.json and expertise table, with clear errors when incomplete."""
    run = Path(run)
    info_path, table_path = run / "run.json", run / "expertise.parquet"
    if not info_path.exists() or not table_path.exists():
        raise LangneuronsError(
            f"{run}: not a finished run (no run.json/expertise.parquet); run `langneurons find --out {run}`"
        )
    return json.loads(info_path.read_text()), pd.read_parquet(table_path)


def sites_from_run(info: dict) -> Sites:
    """The neuron sites recorded in run.json."""
    from .sites import Site

    sites = tuple(Site(**record) for record in info["sites"])
    return Sites(sites[0].name.rsplit(".", 2)[0] if sites else "", info["blocks"], sites)
