"""paper_style: the authors' way of computing expertise, re-enacted, against `langneurons find`.

The original pipeline (Suau et al.'s self-conditioning code, reused by Kojima et al.) works one
language ("concept") at a time: it runs the full causal LM, LM head included, at batch size 1 over
that language's positives and negatives, saves each hooked linear's token-mean output per
sentence, reads them back as `[units, sentences]` arrays, computes one
`sklearn.metrics.average_precision_score` per neuron in a `multiprocessing.Pool`, and the forcing
statistics with numpy. A sentence listed in several languages' sets is run once per set.
(The original also round-trips every response through Python lists when reading it back; that
step is left out here, which only makes this re-enactment faster than the original.)

The trap when comparing: the two paths see responses that differ in the last float bits (bs=1
full model vs batched decoder stack), so an AP can differ where two responses nearly tie. Every
neuron whose AP differs by more than 1e-9 is re-checked with sklearn on langneurons' own stored
responses, to tell a kernel difference from an input difference.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import tempfile
import time
from functools import partial
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from common import (
    GEMMA_NEURONS,
    PAPER_FORWARDS,
    PAPER_LANGUAGES,
    PAPER_POSITIVES,
    PAPER_SET_SIZE,
    PAPER_UNIQUE,
    Context,
    corpus_spec,
    emit,
    rounded,
    sync,
)
from sklearn.metrics import average_precision_score

from langneurons.data import LabelSet, build_labels, load_corpus
from langneurons.find.expertise import BLOCK_ELEMENTS, neuron_stats
from langneurons.find.run import find
from langneurons.model import context_length, discover_sites

NAME = "paper_style"
TOLERANCE = 1e-9
QUICK_AP_NEURONS = 1_000  # per language, spread over all modules; all neurons in a full run
TINY_AP_NEURONS = 300
CALIBRATION_NEURONS = (200, 1_000, 4_000)  # sklearn calls timed at 3,000 samples: tiny, quick, full


def sklearn_ap(scores: np.ndarray, labels: np.ndarray) -> float:
    """One neuron, one language: exactly the original's per-unit call."""
    return average_precision_score(y_true=labels, y_score=scores)


@torch.inference_mode()
def record_language(model, tokenizer, names: list[str], texts: list[str], folder: Path) -> None:
    """Run the full LM at batch size 1 over `texts`; pickle each module's token mean per sentence."""
    modules = dict(model.named_modules())
    current: dict[str, np.ndarray] = {}

    def saver(name: str):
        def hook(_module, _inputs, out: torch.Tensor) -> None:  # out: [1, pos, width]
            current[name] = out[0].float().mean(dim=0).cpu().numpy()

        return hook

    handles = [modules[name].register_forward_hook(saver(name)) for name in names]
    max_length = context_length(model, tokenizer)
    device = next(model.parameters()).device
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for index, text in enumerate(texts):
            inputs = tokenizer(text, return_tensors="pt", truncation=True, max_length=max_length)
            model(**inputs.to(device))
            with (folder / f"{index:06d}.pkl").open("wb") as fh:
                pickle.dump(current, fh)
    finally:
        for handle in handles:
            handle.remove()


def read_language(folder: Path, names: list[str]) -> dict[str, np.ndarray]:
    """The saved responses of one language as `{module: [units, sentences]}` float64 (the original
    reads them back through Python lists, which gives float64 arrays)."""
    saved = []
    for path in sorted(folder.glob("*.pkl")):
        with path.open("rb") as fh:
            saved.append(pickle.load(fh))
    return {name: np.stack([s[name] for s in saved], axis=1).astype(np.float64) for name in names}


def pool_ap(responses: dict[str, np.ndarray], labels: np.ndarray, units: dict[str, np.ndarray],
            cores: int) -> dict[str, np.ndarray]:
    """sklearn AP of the chosen `units` of each module, one call per neuron, in a Pool."""
    aps = {}
    with Pool(processes=cores) as pool:
        for name, rows in responses.items():
            aps[name] = np.array(pool.map(partial(sklearn_ap, labels=labels), list(rows[units[name]])))
    return aps


def numpy_stats(responses: dict[str, np.ndarray], labels: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
    """on_p50, on_p90, off_mean, off_p50 per module, from `[units, sentences]` float32 arrays."""
    out = {}
    for name, resp in responses.items():
        on, off = resp[:, labels == 1], resp[:, labels == 0]
        out[name] = {"on_p50": np.percentile(on, 50, axis=1), "on_p90": np.percentile(on, 90, axis=1),
                     "off_mean": np.mean(off, axis=1), "off_p50": np.percentile(off, 50, axis=1)}
    return out


def spread_units(widths: dict[str, int], limit: int | None) -> dict[str, np.ndarray]:
    """Unit indices per module: all, or every k-th so that about `limit` neurons are chosen."""
    total = sum(widths.values())
    stride = 1 if limit is None else max(1, math.ceil(total / limit))
    return {name: np.arange(0, width, stride) for name, width in widths.items()}


def paper_style(loaded, labelset: LabelSet, names: list[str], widths: dict[str, int],
                ap_limit: int | None, work: Path) -> dict:
    """The whole per-language pipeline; returns its tables and the time of each phase."""
    cores = os.cpu_count() or 1
    units = spread_units(widths, ap_limit)
    seconds = {"forward": 0.0, "read": 0.0, "ap": 0.0, "stats": 0.0}
    forwards, ap_calls, results = 0, 0, {}
    for lang in labelset.languages:
        rows, labels = labelset.indices_and_labels(lang)
        texts = [labelset.texts[r] for r in rows]
        started = time.perf_counter()
        record_language(loaded.model, loaded.tokenizer, names, texts, work / lang)
        sync(loaded.device)
        seconds["forward"] += time.perf_counter() - started
        started = time.perf_counter()
        responses = read_language(work / lang, names)
        seconds["read"] += time.perf_counter() - started
        started = time.perf_counter()
        aps = pool_ap(responses, labels.astype(int), units, cores)
        seconds["ap"] += time.perf_counter() - started
        started = time.perf_counter()
        stats = numpy_stats(responses, labels.astype(int))
        seconds["stats"] += time.perf_counter() - started
        forwards += len(texts)
        ap_calls += sum(len(u) for u in units.values())
        results[lang] = {"rows": rows, "responses": responses, "aps": aps, "stats": stats}
    return {"results": results, "units": units, "seconds": seconds, "forwards": forwards,
            "ap_calls": ap_calls, "cores": cores}


def compare_module(theirs: np.ndarray, mine: np.ndarray, aps: np.ndarray, stats: dict,
                   units: np.ndarray, ours: pd.DataFrame, labels: np.ndarray) -> dict:
    """One module, one language. theirs/mine: `[units, sentences]` responses of the paper-style
    path and of langneurons' store; aps/stats: the paper-style results; ours: find's rows."""
    def max_gap(values: dict[str, np.ndarray]) -> float:
        return max(float(np.abs(v - ours[key].to_numpy()).max()) for key, v in values.items())

    diff = np.abs(theirs - mine)
    out = {"max_response_diff": float(diff.max()),
           "max_response_rel_diff": float((diff / np.maximum(np.abs(theirs), 1e-6)).max()),
           "max_stat_diff": max_gap(stats),
           # the same numpy statistics on langneurons' responses: isolates the kernel from the inputs
           "max_stat_diff_on_langneurons_responses": max_gap(numpy_stats({"m": mine}, labels)["m"]),
           "ap_compared": len(units)}
    our_ap = ours["ap"].to_numpy()
    gap = np.abs(aps - our_ap[units])
    out["max_ap_diff"] = float(gap.max())
    suspects = units[gap > TOLERANCE]
    out["ap_diff_gt_tol"] = len(suspects)
    # why: sklearn on langneurons' own responses gives langneurons' AP -> the inputs differ, not the kernel
    out["ap_diff_gt_tol_same_ap_on_langneurons_responses"] = sum(
        abs(sklearn_ap(mine[u], labels) - our_ap[u]) <= TOLERANCE for u in suspects)
    out["ap_diff_gt_tol_rank_changed"] = sum(
        not np.array_equal(np.argsort(-theirs[u], kind="stable"), np.argsort(-mine[u], kind="stable"))
        for u in suspects)
    return out


def compare(paper: dict, table: pd.DataFrame, run: Path, labelset: LabelSet, names: list[str],
            widths: dict[str, int]) -> dict:
    """Largest AP / statistic / response differences, and the reason for every AP above 1e-9."""
    offsets = dict(zip(names, np.cumsum([0] + [widths[n] for n in names[:-1]])))
    totals: dict = {}
    for lang, res in paper["results"].items():
        part = table[table["concept"] == lang].sort_values("neuron")
        labels = labelset.indices_and_labels(lang)[1].astype(int)
        for name in names:
            store = np.load(run / "store" / f"{name}.npy", mmap_mode="r")
            mine = store[res["rows"]].T.astype(np.float64)  # [units, sentences]
            ours = part.iloc[offsets[name] : offsets[name] + widths[name]]
            found = compare_module(res["responses"][name], mine, res["aps"][name], res["stats"][name],
                                   paper["units"][name], ours, labels)
            for key, value in found.items():  # max of the max_* entries, sum of the counts
                merged = max if key.startswith("max_") else (lambda a, b: a + b)
                totals[key] = merged(totals.get(key, 0), value)
    return totals


def calibrate(neurons: int, device: torch.device, cores: int) -> dict:
    """Per neuron-language cost of both paths at the paper's 3,000 samples (synthetic scores)."""
    rng = np.random.default_rng(0)
    labels = np.zeros(PAPER_SET_SIZE, int)
    labels[:PAPER_POSITIVES] = 1
    scores = rng.standard_normal((neurons, PAPER_SET_SIZE))  # [neurons, samples] float64
    with Pool(processes=cores) as pool:  # started outside the timer: the original reuses one per language
        started = time.perf_counter()
        pool.map(partial(sklearn_ap, labels=labels), list(scores))
        sklearn_per = (time.perf_counter() - started) / neurons
    started = time.perf_counter()
    numpy_stats({"m": scores}, labels)
    numpy_per = (time.perf_counter() - started) / neurons
    block = torch.from_numpy(scores.T.astype(np.float32)).to(device)  # [samples, neurons] as stored
    mask = torch.from_numpy(labels.astype(bool)).to(device)
    step = min(2048, BLOCK_ELEMENTS // PAPER_UNIQUE)  # compute_expertise's chunk for 5,873 sentences
    neuron_stats(block[:, :64], mask)  # warm-up
    sync(device)
    started = time.perf_counter()
    for lo in range(0, neurons, step):
        neuron_stats(block[:, lo : lo + step], mask)
    sync(device)
    return {"sklearn_pool_s_per_neuron_language": sklearn_per,
            "numpy_stats_s_per_neuron_language": numpy_per,
            "langneurons_stats_s_per_neuron_language": (time.perf_counter() - started) / neurons}


def full_scale(paper: dict, info, neurons: int, calib: dict) -> dict:
    """The paper's setting scaled up from the per-sentence and per-neuron costs measured here."""
    neuron_languages = neurons * PAPER_LANGUAGES
    forward_per = paper["seconds"]["forward"] / paper["forwards"]
    theirs = {"forward": PAPER_FORWARDS * forward_per,
              "ap": neuron_languages * calib["sklearn_pool_s_per_neuron_language"],
              "stats": neuron_languages * calib["numpy_stats_s_per_neuron_language"]}
    t = info.timings
    record_per = t["record_seconds"] / max(1, t["sentences_computed"])
    ours = {"record": PAPER_UNIQUE * record_per,
            "expertise": neuron_languages * calib["langneurons_stats_s_per_neuron_language"]}
    return {"scaled": True,
            "sizes": {"forwards": PAPER_FORWARDS, "unique_sentences": PAPER_UNIQUE,
                      "samples_per_language": PAPER_SET_SIZE, "neurons": neurons,
                      "languages": PAPER_LANGUAGES},
            "seconds": {"paper_style": rounded({**theirs, "total": sum(theirs.values())}),
                        "langneurons_find": rounded({**ours, "total": sum(ours.values())})},
            "ratios": {"paper_style_over_find": round(sum(theirs.values()) / sum(ours.values()), 2)},
            "per_unit_costs": rounded({"paper_forward_s_per_sentence_bs1_full_lm": forward_per,
                                       "find_record_s_per_unique_sentence": record_per, **calib})}


def measured_find(path: Path | None, paper_total: float) -> dict:
    """Timings of a finished full paper-setting find RUN named with --paper-run, if it is one."""
    if path is None:
        return {"skipped": "no --paper-run RUN given"}
    if not (path / "run.json").exists():
        return {"skipped": f"{path}/run.json does not exist (run not finished)"}
    info = json.loads((path / "run.json").read_text())
    if info.get("unique_sentences") != PAPER_UNIQUE or not str(info.get("corpus", "")).startswith("paper:"):
        return {"skipped": f"{path} is not a full paper-setting run ({info.get('unique_sentences')} sentences)"}
    t = info["timings"]
    total = t["record_seconds"] + t["expertise_seconds"]
    return {"run": str(path), "measured_model": info.get("model"),
            "sentences_computed_in_last_session": t["sentences_computed"],  # < 5,873 if it was resumed
            "seconds": rounded({"record": t["record_seconds"], "expertise": t["expertise_seconds"],
                                "total": total}),
            "ratios": {"paper_style_scaled_over_find_measured": round(paper_total / total, 2)}}


def phase_seconds(paper: dict, total: float, neuron_languages: int) -> dict:
    """The paper-style phases; when sklearn ran on a subset of neurons, also scaled to all."""
    seconds = dict(paper["seconds"], total=total)
    fraction = paper["ap_calls"] / neuron_languages
    if fraction < 1:
        seconds["ap_all_neurons_scaled"] = seconds["ap"] / fraction
        seconds["total_all_neurons_scaled"] = total - seconds["ap"] + seconds["ap_all_neurons_scaled"]
    return rounded(seconds)


def main(ctx: Context) -> None:
    spec, reason = corpus_spec()
    if reason:
        emit(ctx, NAME, "paper_sets", skipped=reason)
    n = ctx.n(tiny=2, quick=3, full=20)
    labelset = build_labels(load_corpus(spec), None, n)
    loaded = ctx.loaded()
    sites = discover_sites(loaded.model)
    names, widths = sites.names, {s.name: s.width for s in sites}
    with tempfile.TemporaryDirectory(prefix="paper-style-", dir=ctx.workdir) as tmp:
        started = time.perf_counter()
        ap_limit = ctx.pick(TINY_AP_NEURONS, QUICK_AP_NEURONS, None)
        paper = paper_style(loaded, labelset, names, widths, ap_limit, Path(tmp))
        elapsed = time.perf_counter() - started
    paper_seconds = phase_seconds(paper, elapsed, sites.total * len(labelset.languages))
    run = Path(tempfile.mkdtemp(prefix="find-", dir=ctx.workdir))
    started = time.perf_counter()
    info = find(run, corpus=spec, positives=n, loaded=loaded, progress=False)
    find_seconds = time.perf_counter() - started
    ctx.runs[n] = run  # the steering benchmark may reuse it
    checks = compare(paper, pd.read_parquet(run / "expertise.parquet"), run, labelset, names, widths)
    t = info.timings
    emit(ctx, NAME, "subset", loaded.device, corpus=spec,
         sizes={"positives_per_language": n, "languages": len(labelset.languages),
                "forwards_paper_style": paper["forwards"], "unique_sentences": len(labelset.texts),
                "neurons": sites.total, "ap_neuron_languages_sklearn": paper["ap_calls"],
                "pool_processes": paper["cores"]},
         seconds={"paper_style": paper_seconds,
                  "langneurons_find": rounded({"total": find_seconds, "record": t["record_seconds"],
                                               "expertise": t["expertise_seconds"]})},
         ratios={"paper_style_over_find": round(
             paper_seconds.get("total_all_neurons_scaled", paper_seconds["total"]) / find_seconds, 2)},
         checks=rounded(checks, 6), tolerance=TOLERANCE)
    calib = calibrate(ctx.pick(*CALIBRATION_NEURONS), loaded.device, paper["cores"])
    scaled = full_scale(paper, info, sites.total, calib)
    emit(ctx, NAME, "paper_setting_scaled", loaded.device, **scaled,
         note=f"scaled from measured per-sentence and per-neuron costs (AP costs at 3,000 synthetic "
              f"samples); Gemma-3-270M has {GEMMA_NEURONS:,} neurons, this model {sites.total:,}")
    emit(ctx, NAME, "paper_setting_find_measured", loaded.device,
         **measured_find(ctx.paper_run, scaled["seconds"]["paper_style"]["total"]))
