"""The no-loops rule: no token begins one more copy of a unit the written text repeats in a row."""

import numpy as np
import torch

from langneurons.steer.rules import LOOP_PERIOD, NoLoops, no_loops


def banned(rows: list[list[int]], vocab: int = 12) -> list[set[int]]:
    out = no_loops(torch.zeros(len(rows), vocab), rows)
    return [set(torch.nonzero(row == float("-inf")).flatten().tolist()) for row in out]


def longest_run(tokens: list[int], period: int) -> int:
    """The most copies in a row of any unit of `period` tokens in `tokens`."""
    best = 1
    for start in range(len(tokens)):
        unit, copies = tokens[start : start + period], 1
        while len(unit) == period and tokens[start + copies * period : start + (copies + 1) * period] == unit:
            copies += 1
        best = max(best, copies)
    return best


def test_the_token_that_would_begin_another_copy_is_banned_and_no_other():
    assert banned([[5, 5, 5], [1, 2, 1, 2], [1, 2, 3, 1, 2, 3], [4, 7, 3, 1, 2, 3, 1, 2]]) == \
        [{5}, {1}, {1}, {3}]  # the last: "3 1 2" twice, its phase shifted
    assert banned([[5, 5], [1, 2, 1], [1, 2, 3, 4], []]) == [set(), set(), set(), set()]  # not yet a loop


def test_units_longer_than_the_period_are_left_alone():
    unit = list(range(LOOP_PERIOD + 1))
    assert banned([unit * 2], vocab=LOOP_PERIOD + 1) == [set()]
    assert banned([unit[:-1] * 2], vocab=LOOP_PERIOD + 1) == [{0}]


def test_sampled_text_never_repeats_a_unit_a_third_time_or_a_token_a_fourth():
    rng = np.random.default_rng(0)
    rows = [[] for _ in range(8)]
    for _ in range(200):  # a peaked distribution over 3 tokens: loops at every turn without the rule
        logits = torch.from_numpy(rng.normal(size=(len(rows), 3)) * 0.1).float() + torch.tensor([3.0, 0, 0])
        logits = no_loops(logits, rows)
        for row, token in zip(rows, torch.argmax(logits, dim=-1).tolist()):
            row.append(token)
    for row in rows:
        assert longest_run(row, 1) <= 3
        assert all(longest_run(row, p) <= 2 for p in range(2, LOOP_PERIOD + 1))


def test_the_prompt_does_not_count():
    class Tok:
        eos_token_id = 0

    rule = NoLoops(Tok(), prompt_width=3)
    scores = rule(torch.tensor([[7, 7, 7, 7, 7, 7]]), torch.zeros(1, 9))  # three new 7s: banned
    assert torch.isinf(scores[0, 7]) and torch.isfinite(scores[0, :7]).all()
    scores = rule(torch.tensor([[7, 7, 7, 7, 7]]), torch.zeros(1, 9))  # two new 7s after three in the prompt
    assert torch.isfinite(scores).all()
