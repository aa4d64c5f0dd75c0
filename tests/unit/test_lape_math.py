"""LAPE's math against a slow, obviously correct reference on hand-made counts."""

import math

import numpy as np
import pytest

from langneurons.errors import LangneuronsError
from langneurons.find.lape import (activation_probability, check_settings, neuron_table, row_weights,
                                   select_units, store_widths)
from langneurons.find.record import COUNT, TOKENS
from langneurons.find.store import ResponseStore
from langneurons.sites import ACTIVATION, Site, Sites

LANGS = ["en", "de", "fr"]


def reference(counts, tokens, groups, top_rate, quantile):
    """Loops over units and languages, exactly as the definition reads."""
    units, K = counts.shape[1], len(groups)
    P = [[sum(counts[r][u] for r in groups[k]) / sum(tokens[r] for r in groups[k]) for k in range(K)]
         for u in range(units)]
    H = []
    for row in P:
        total = sum(row)
        shares = [p / total if total > 0 else 0.0 for p in row]
        H.append(-sum(s * math.log(s) for s in shares if s > 0))
    flat = sorted(p for row in P for p in row)
    tau = flat[round(quantile * len(flat)) - 1]
    candidates = [u for u in range(units) if any(p > tau for p in P[u])]
    kept = sorted(candidates, key=lambda u: (H[u], u))[: round(top_rate * units)]
    assigned = {u: [LANGS[k] for k in range(K) if P[u][k] > tau] for u in kept}
    return np.array(P), np.array(H), tau, kept, assigned


@pytest.fixture
def hand_made():
    """8 sentences × 10 units over two sites; sentence 0 is listed twice among en's positives."""
    tokens = np.array([4, 6, 5, 3, 7, 2, 8, 5], dtype=float)
    counts = np.zeros((8, 10))
    counts[:, 0] = tokens                      # active everywhere: high entropy
    counts[[0, 1, 2], 1] = tokens[[0, 1, 2]]   # only en (rows 0-2): entropy 0
    counts[[3, 4], 2] = [3, 6]                 # only de
    counts[[5, 6, 7], 3] = [1, 4, 2]           # only fr, partly
    counts[:, 4] = 0                           # never active: entropy 0 by 0 log 0, but excluded
    counts[[0, 3], 5] = [2, 2]                 # en and de
    counts[[1, 4, 6], 6] = [6, 7, 1]           # en, de, a little fr
    counts[:, 7] = np.minimum(tokens, 1)       # weakly active everywhere
    counts[[2], 8] = [5]                       # en only, one sentence
    counts[[5, 7], 9] = [2, 5]                 # fr only, two sentences
    groups = [np.array([0, 0, 1, 2]), np.array([3, 4]), np.array([5, 6, 7])]
    return counts, tokens, groups


def write_store(tmp_path, counts, tokens):
    sites = Sites("model.layers", 2, (Site("model.layers.0.mlp.act_fn", 0, "mlp.act_fn", ACTIVATION, 4, 0),
                                      Site("model.layers.1.mlp.act_fn", 1, "mlp.act_fn", ACTIVATION, 6, 4)))
    store = ResponseStore.open(tmp_path / "lape_store", "f" * 64, store_widths(sites), len(tokens))
    rows = np.arange(len(tokens))
    store.write(rows, {"model.layers.0.mlp.act_fn" + COUNT: counts[:, :4], "model.layers.1.mlp.act_fn" + COUNT: counts[:, 4:],
                       "model.layers.0.mlp.act_fn": counts[:, :4] / 10, "model.layers.1.mlp.act_fn": counts[:, 4:] / 10,
                       TOKENS: tokens[:, None]})
    store.flush()
    return store, sites


@pytest.mark.parametrize("top_rate, quantile", [(0.3, 0.8), (0.5, 0.7), (1.0, 0.95), (0.1, 0.5)])
def test_selection_equals_the_slow_reference(hand_made, tmp_path, top_rate, quantile):
    counts, tokens, groups = hand_made
    store, sites = write_store(tmp_path, counts, tokens)
    P = activation_probability(store, sites, row_weights(groups, len(tokens)))
    ref_P, ref_H, tau, kept, assigned = reference(counts, tokens, groups, top_rate, quantile)
    np.testing.assert_allclose(P, ref_P, rtol=0, atol=1e-15)
    chosen = select_units(P, top_rate, quantile)
    np.testing.assert_allclose(chosen.entropy, ref_H, atol=1e-12)
    assert chosen.threshold == tau and chosen.units.tolist() == kept
    table = neuron_table(P, chosen, sites, LANGS)
    got = {u: sorted(table.loc[table["neuron"] == u, "language"]) for u in kept}
    assert got == {u: sorted(v) for u, v in assigned.items()}
    assert 4 not in chosen.units  # never active: entropy 0, yet excluded (no P > τ)
    if not kept:  # τ = 1.0 here: no unit can exceed it
        assert table.empty and tau == 1.0
        return
    row = table.iloc[0]
    assert row["layer"] == sites.sites[int(row["neuron"]) >= 4].name
    assert row["unit"] == row["neuron"] - (4 if row["neuron"] >= 4 else 0)
    assert row["lape_norm"] == pytest.approx(row["lape"] / math.log(3))
    assert row[[f"p_{l}" for l in LANGS]].tolist() == pytest.approx(ref_P[int(row["neuron"])].tolist())


def test_token_shares_not_sentence_averages(hand_made, tmp_path):
    counts, tokens, groups = hand_made
    store, sites = write_store(tmp_path, counts, tokens)
    P = activation_probability(store, sites, row_weights(groups, len(tokens)))
    # unit 6 in de: (7 tokens of 7) + (0 of 3) over 10 tokens, not the mean of 1.0 and 0.0
    assert P[6, 1] == pytest.approx(7 / 10)
    assert P[1, 0] == pytest.approx((4 + 4 + 6 + 5) / (4 + 4 + 6 + 5))  # row 0 listed twice counts twice


@pytest.mark.parametrize("seed", range(5))
def test_random_probabilities_match_the_reference(seed):
    rng = np.random.default_rng(seed)
    tokens = rng.integers(1, 20, size=30).astype(float)
    counts = np.floor(rng.random((30, 40)) ** 3 * tokens[:, None])
    counts[:, :3] = 0  # some dead units
    groups = [np.arange(0, 10), np.arange(10, 20), np.arange(20, 30)]
    weights = row_weights(groups, 30)
    P = ((weights @ counts) / (weights @ tokens)[:, None]).T
    ref_P, ref_H, tau, kept, _ = reference(counts, tokens, groups, 0.1, 0.9)
    chosen = select_units(P, 0.1, 0.9)
    assert chosen.threshold == pytest.approx(tau) and chosen.units.tolist() == kept


def test_settings_are_checked():
    with pytest.raises(LangneuronsError, match=r"--lape-top-rate 0: must be in \(0, 1\]"):
        check_settings(0, 0.95)
    with pytest.raises(LangneuronsError, match=r"--lape-quantile 1.0: must be in \(0, 1\)"):
        check_settings(0.01, 1.0)
