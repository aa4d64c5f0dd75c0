"""ap_kernel: langneurons' all-neurons-at-once AP against one sklearn call per neuron.

Scores are synthetic at the paper's size (3,000 samples per language: 500 positives, 2,500
negatives) with a realistic mix: plain float32 responses, responses rounded to a few levels (many
ties, the case that breaks a naive AP), and a constant neuron (all tied). sklearn runs on K
neurons in one process; langneurons on a larger block on the chosen device; both are scaled to
every neuron of Gemma-3-270M in six languages (124,416 x 6). sklearn's scaled time is also given
divided by the core count, the best a Pool of that many processes could do.
"""

from __future__ import annotations

import os
import time

import numpy as np
import torch
from sklearn.metrics import average_precision_score

from common import GEMMA_NEURONS, PAPER_LANGUAGES, PAPER_POSITIVES, PAPER_SET_SIZE, Context, emit, rounded, sync
from langneurons.find.expertise import average_precision, neuron_stats

NAME = "ap_kernel"
# (sklearn neurons, langneurons neurons) for --tiny, --quick, full
SIZES = {"tiny": (50, 512), "quick": (300, 4_096), "full": (2_000, 16_384)}
CHUNK = 2_048  # neurons per call, as compute_expertise does


def synthetic(neurons: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Scores `[samples, neurons]` float32 and labels `[samples]` bool, with ties in a third of the neurons."""
    rng = np.random.default_rng(seed)
    labels = np.zeros(PAPER_SET_SIZE, bool)
    labels[:PAPER_POSITIVES] = True
    shift = rng.uniform(0, 1.5, neurons).astype(np.float32)
    scores = rng.standard_normal((PAPER_SET_SIZE, neurons)).astype(np.float32)
    scores += labels[:, None] * shift
    tied = np.arange(neurons) % 3 == 1
    scores[:, tied] = np.round(scores[:, tied] * 2) / 2  # about 15 distinct values: many ties
    scores[:, 2] = 0.25  # one constant neuron: every score tied
    return scores, labels


def time_langneurons(scores: np.ndarray, labels: np.ndarray, device: torch.device,
                     fn) -> tuple[float, np.ndarray]:
    """Seconds and result of `fn(block, labels)` over CHUNK-wide blocks of every neuron."""
    data = torch.from_numpy(scores).to(device)
    mask = torch.from_numpy(labels).to(device)
    fn(data[:, :64], mask)  # warm-up
    sync(device)
    started = time.perf_counter()
    parts = [fn(data[:, lo : lo + CHUNK], mask) for lo in range(0, data.shape[1], CHUNK)]
    sync(device)
    seconds = time.perf_counter() - started
    first = [p["ap"] if isinstance(p, dict) else p for p in parts]
    return seconds, torch.cat(first).cpu().numpy()


def main(ctx: Context) -> None:
    device = ctx.torch_device
    k_sklearn, k_ours = SIZES[ctx.pick("tiny", "quick", "full")]
    scores, labels = synthetic(k_ours)
    y = labels.astype(int)
    started = time.perf_counter()
    reference = np.array([average_precision_score(y, scores[:, j]) for j in range(k_sklearn)])
    sklearn_per = (time.perf_counter() - started) / k_sklearn
    ap_seconds, ours = time_langneurons(scores, labels, device, average_precision)
    stats_seconds, ours_stats = time_langneurons(scores, labels, device, neuron_stats)
    diff = np.abs(ours[:k_sklearn] - reference)
    total = GEMMA_NEURONS * PAPER_LANGUAGES
    cores = os.cpu_count() or 1
    ours_per, stats_per = ap_seconds / k_ours, stats_seconds / k_ours
    emit(ctx, NAME, "ap_vs_sklearn", device,
         sizes={"samples": PAPER_SET_SIZE, "positives": PAPER_POSITIVES, "sklearn_neurons": k_sklearn,
                "langneurons_neurons": k_ours, "chunk": CHUNK, "scaled_to_neuron_languages": total,
                "cores": cores},
         seconds=rounded({"sklearn_per_neuron": sklearn_per, "langneurons_ap_per_neuron": ours_per,
                          "langneurons_stats_per_neuron": stats_per,
                          "sklearn_all_scaled": sklearn_per * total,
                          "sklearn_all_scaled_over_cores": sklearn_per * total / cores,
                          "langneurons_ap_all_scaled": ours_per * total,
                          "langneurons_stats_all_scaled": stats_per * total}),
         ratios=rounded({"sklearn_over_langneurons_ap": sklearn_per / ours_per,
                         "sklearn_over_cores_over_langneurons_stats": sklearn_per / cores / stats_per}, 3),
         checks={"max_abs_diff": float(diff.max()), "neurons_diff_gt_1e-9": int((diff > 1e-9).sum()),
                 "stats_ap_equals_ap": bool(np.array_equal(ours_stats, ours))},
         scaled=True)
