"""The vectorised AP kernel equals sklearn's average_precision_score, ties included."""

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import average_precision_score

from langneurons.find.expertise import average_precision, neuron_stats


def reference(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    return np.array([average_precision_score(labels, scores[:, j]) for j in range(scores.shape[1])])


def test_random_scores_with_many_ties():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 5, size=(300, 64)).astype(np.float32)  # heavy ties
    labels = rng.random(300) < 0.2
    ours = average_precision(torch.from_numpy(scores), torch.from_numpy(labels)).numpy()
    assert np.abs(ours - reference(scores, labels)).max() <= 1e-9


def test_continuous_scores():
    rng = np.random.default_rng(1)
    scores = rng.normal(size=(500, 40)).astype(np.float32)
    labels = rng.random(500) < 0.5
    ours = average_precision(torch.from_numpy(scores), torch.from_numpy(labels)).numpy()
    assert np.abs(ours - reference(scores, labels)).max() <= 1e-9


def test_perfect_and_constant_and_single_positive():
    labels = np.array([1, 0, 0, 0, 0], bool)
    scores = np.array([[5, 1, 0], [4, 1, 1], [3, 1, 2], [2, 1, 3], [1, 1, 4]], np.float32)
    ours = average_precision(torch.from_numpy(scores), torch.from_numpy(labels)).numpy()
    np.testing.assert_allclose(ours, [1.0, 0.2, 0.2], atol=1e-12)
    np.testing.assert_allclose(ours, reference(scores, labels), atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(
    st.integers(2, 40).flatmap(
        lambda n: st.tuples(
            st.lists(st.integers(-3, 3), min_size=n, max_size=n),
            st.lists(st.booleans(), min_size=n, max_size=n).filter(any),
        )
    )
)
def test_matches_sklearn_property(data):
    values, labels = data
    scores = np.array(values, np.float32)[:, None]
    labels = np.array(labels)
    ours = average_precision(torch.from_numpy(scores), torch.from_numpy(labels)).numpy()
    assert abs(ours[0] - average_precision_score(labels, scores[:, 0])) <= 1e-9


def test_stats_percentiles_match_numpy():
    rng = np.random.default_rng(2)
    responses = rng.normal(size=(60, 7)).astype(np.float32)
    labels = np.arange(60) < 20
    stats = {k: v.numpy() for k, v in neuron_stats(torch.from_numpy(responses), torch.from_numpy(labels)).items()}
    pos, neg = responses[labels].astype(np.float64), responses[~labels].astype(np.float64)
    np.testing.assert_allclose(stats["on_p50"], np.percentile(pos, 50, axis=0), atol=1e-12)
    np.testing.assert_allclose(stats["on_p90"], np.percentile(pos, 90, axis=0), atol=1e-12)
    np.testing.assert_allclose(stats["off_mean"], neg.mean(axis=0), atol=1e-12)
    np.testing.assert_allclose(stats["off_p50"], np.median(neg, axis=0), atol=1e-12)
