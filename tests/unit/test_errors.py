"""Guards that protect a long run: non-finite activations, over-long sentences, foreign plans."""

import numpy as np
import pytest
import torch

from langneurons.errors import LangneuronsError
from langneurons.find.record import check_finite, tokenize
from langneurons.steer.apply import Edit, Plan, steer


def test_non_finite_activations_name_the_modules_and_suggest_a_dtype():
    pooled = {"model.layers.0.mlp.up_proj": np.array([[1.0, np.inf]]), "model.layers.1.mlp.up_proj": np.ones((1, 2))}
    with pytest.raises(LangneuronsError, match=r"NaN/inf activations in 1 module\(s\) with --dtype float16: "
                                               r"model.layers.0.mlp.up_proj; rerun with --dtype bfloat16"):
        check_finite(pooled, "float16")


def test_long_sentences_are_truncated_with_a_warning(tiny_llama):
    with pytest.warns(UserWarning, match=r"1 sentence\(s\) are longer than the model's context of 5 tokens.*\[1\]"):
        ids = tokenize(tiny_llama.tokenizer, ["Hi", "The cat sleeps on the warm windowsill."], 5)
    assert [len(x) for x in ids][1] == 5


def test_plan_for_another_model_is_refused(tiny_llama):
    plan = Plan({"model.layers.0.mlp.up_proj": {"all": Edit(torch.tensor([0]), torch.zeros(1), torch.tensor([1.0]))}},
                {"model.layers.0.mlp.up_proj": 4096})
    with pytest.raises(LangneuronsError, match="made for another model"):
        with steer(tiny_llama.model, plan):
            pass
    plan = Plan({"model.layers.7.mlp.up_proj": {"all": Edit(torch.tensor([0]), torch.zeros(1), torch.tensor([1.0]))}}, {})
    with pytest.raises(LangneuronsError, match="made for another model"):
        with steer(tiny_llama.model, plan):
            pass
