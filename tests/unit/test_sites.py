"""Generic site discovery and the hook context manager, on tiny models of six families."""

import pytest

from langneurons.errors import LangneuronsError
from langneurons.hooks import hooks
from langneurons.model import discover_sites, output_width

EXPECTED_LOCAL = {
    "tiny-llama": ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                   "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"],
    "tiny-gemma3": ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                    "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"],
    "tiny-qwen2": ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                   "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"],
    "tiny-gpt2": ["attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"],
    "tiny-bloom": ["self_attention.query_key_value", "self_attention.dense", "mlp.dense_h_to_4h", "mlp.dense_4h_to_h"],
    "tiny-xglm": ["self_attn.k_proj", "self_attn.v_proj", "self_attn.q_proj", "self_attn.out_proj", "fc1", "fc2"],
}


def test_sites_cover_every_linear_of_every_block(tiny):
    found = discover_sites(tiny.model)
    per_block = [s.local for s in found if s.block == 0]
    assert per_block == EXPECTED_LOCAL[tiny.spec]
    assert len(found) == len(per_block) * found.n_blocks
    assert found.total == sum(s.width for s in found)
    assert found.sites[-1].offset + found.sites[-1].width == found.total
    modules = dict(tiny.model.named_modules())
    for site in found:
        assert output_width(modules[site.name]) == site.width
    assert "lm_head" not in " ".join(found.names)


def test_hooks_removed_after_exception(tiny_llama):
    found = discover_sites(tiny_llama.model)
    with pytest.raises(RuntimeError):
        with hooks(tiny_llama.model, {n: (lambda out: None) for n in found.names}):
            raise RuntimeError("boom")
    assert all(not m._forward_hooks for m in tiny_llama.model.modules())


def test_unknown_site_name_is_a_clear_error(tiny_llama):
    found = discover_sites(tiny_llama.model)
    with pytest.raises(LangneuronsError, match="no neuron site named"):
        found["model.layers.99.mlp.up_proj"]
    with pytest.raises(LangneuronsError, match="not found"):
        with hooks(tiny_llama.model, {"model.layers.99.mlp": lambda out: None}):
            pass
