"""Self-checks on every tiny architecture: each hook (linears and MLP activations) fires on every
block, the activation sits on the first MLP linear's output, and no-op interventions reproduce the
logits exactly."""

from dataclasses import replace

import pytest
import torch
from torch.nn import functional as F

from langneurons.errors import LangneuronsError
from langneurons.find.record import pooled_values, record
from langneurons.hooks import hooks
from langneurons.model import activation_sites, discover_sites
from langneurons.sites import feeding_sites
from langneurons.steer.apply import Edit, Plan, steer

from conftest import make_model

SENTENCE = ["Die Katze schläft auf der warmen Fensterbank."]


def all_sites(loaded):
    linear = discover_sites(loaded.model)
    return linear, activation_sites(loaded.model, linear)


def test_every_hook_fires_on_every_block(tiny):
    linear, act = all_sites(tiny)
    assert [s.block for s in act] == list(range(linear.n_blocks))
    ids = tiny.tokenizer(SENTENCE, return_tensors="pt")
    calls: dict[str, int] = {}
    names = linear.names + act.names
    with torch.inference_mode(), hooks(tiny.model, {n: (lambda out, n=n: calls.__setitem__(n, calls.get(n, 0) + 1))
                                                     for n in names}):
        tiny.model.base_model(**ids)
    assert calls == {n: 1 for n in names}
    with torch.inference_mode(), record(tiny.model, act.names, frozenset(act.names)) as cache:
        cache.set_mask(ids["attention_mask"])
        tiny.model.base_model(**ids)
    values = pooled_values(cache, act, ids["attention_mask"])
    tokens = ids["attention_mask"].sum()
    for site in act:
        assert values[site.name].shape == (1, site.width)
        assert ((values[site.name + ".count"] >= 0) & (values[site.name + ".count"] <= tokens.item())).all()
    assert values["tokens"].tolist() == [[float(tokens)]]


def test_activation_transforms_the_first_mlp_linear(tiny):
    linear, act = all_sites(tiny)
    feeding = feeding_sites(linear)
    modules = dict(tiny.model.named_modules())
    seen = {}
    handles = [modules[s.name].register_forward_pre_hook(lambda _m, args, n=s.name: seen.__setitem__(n, args[0].clone()))
               for s in act]
    ids = tiny.tokenizer(SENTENCE, return_tensors="pt")
    try:
        spies = {feeding[s.block].name: (lambda out, n=s.name: seen.__setitem__(n + "<", out.clone())) for s in act}
        with torch.inference_mode(), hooks(tiny.model, spies):
            tiny.model.base_model(**ids)
    finally:
        for handle in handles:
            handle.remove()
    for site in act:
        assert site.width == feeding[site.block].width
        assert torch.equal(seen[site.name], seen[site.name + "<"])


def identity_plan(sites) -> Plan:
    return Plan({s.name: {"all": Edit(torch.arange(s.width), torch.ones(s.width), torch.zeros(s.width))} for s in sites},
                {s.name: s.width for s in sites})


def test_no_op_interventions_reproduce_the_logits(tiny):
    linear, act = all_sites(tiny)
    ids = tiny.tokenizer(SENTENCE, return_tensors="pt")
    bos = {k: v[:, :1] for k, v in ids.items()}
    model = tiny.model
    with torch.inference_mode():
        plain, plain_bos = model(**ids).logits, model(**bos).logits
        with steer(model, None):  # N = 0
            assert torch.equal(model(**ids).logits, plain)
        with steer(model, identity_plan(list(linear) + list(act))):  # every unit: 1·output + 0
            assert torch.equal(model(**ids).logits, plain)
        recorded = {}
        with hooks(model, {s.name: (lambda out, n=s.name: recorded.__setitem__(n, out[0, 0].clone()))
                           for s in list(linear) + list(act)}):
            model(**bos)
        forced = Plan({n: {"all": Edit(torch.arange(len(v)), torch.zeros(len(v)), v)} for n, v in recorded.items()},
                      {s.name: s.width for s in list(linear) + list(act)})
        with steer(model, forced):  # every unit forced to its own recorded value (0·output + value)
            assert torch.equal(model(**bos).logits, plain_bos)
    assert all(not m._forward_hooks for m in model.modules())


def test_a_model_without_activation_modules_is_refused():
    loaded = make_model("llama")
    for layer in loaded.model.model.layers:
        del layer.mlp.act_fn
        layer.mlp.act_fn = F.silu  # applied as a plain function
    with pytest.raises(LangneuronsError, match="has no activation module outside attention"):
        activation_sites(loaded.model)
    shared = make_model("llama")
    shared.model.model.layers[1].mlp.act_fn = shared.model.model.layers[0].mlp.act_fn
    with pytest.raises(LangneuronsError, match="is shared between blocks"):
        activation_sites(shared.model)


def test_an_activation_of_another_width_is_refused(tiny_llama):
    _, act = all_sites(tiny_llama)
    wrong = type(act)(act.blocks_path, act.n_blocks, (replace(act.sites[0], width=5),))
    ids = tiny_llama.tokenizer(SENTENCE, return_tensors="pt")
    with torch.inference_mode(), record(tiny_llama.model, wrong.names, frozenset(wrong.names)) as cache:
        cache.set_mask(ids["attention_mask"])
        tiny_llama.model.base_model(**ids)
    with pytest.raises(LangneuronsError, match="outputs 48 features, not the 5 of the MLP linear before it"):
        pooled_values(cache, wrong, ids["attention_mask"])
