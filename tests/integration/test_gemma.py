"""The real embedded Gemma-3-270M (marked slow: converted and cached on first use, ~100 s)."""

import pytest
import torch

from langneurons.find.record import record
from langneurons.model import discover_sites, load_model, pad_batch

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def gemma():
    return load_model("gemma-3-270m", "cpu")


def test_gemma_has_126_modules_and_124416_neurons(gemma):
    sites = discover_sites(gemma.model)
    assert len(sites) == 126 and sites.total == 124_416 and sites.n_blocks == 18
    block = {s.local: s.width for s in sites if s.block == 3}
    assert block == {"self_attn.q_proj": 1024, "self_attn.k_proj": 256, "self_attn.v_proj": 256,
                     "self_attn.o_proj": 640, "mlp.gate_proj": 2048, "mlp.up_proj": 2048, "mlp.down_proj": 640}


def test_gemma_batched_means_equal_single_sentence_means(gemma):
    sites = discover_sites(gemma.model)
    texts = ["Der Hund schläft.", "The weather was unusually warm for the middle of November."]
    names = sites.names[::9]
    single = []
    with torch.inference_mode(), record(gemma.model, names) as cache:
        for text in texts:
            ids = gemma.tokenizer([text], return_tensors="pt")
            cache.set_mask(ids["attention_mask"])
            gemma.model.base_model(**ids)
            single.append({k: v.clone() for k, v in cache.means.items()})
        input_ids, mask = pad_batch(gemma.tokenizer(texts)["input_ids"], gemma.tokenizer.pad_token_id, gemma.device)
        cache.set_mask(mask)
        gemma.model.base_model(input_ids=input_ids, attention_mask=mask)
    for row, means in enumerate(single):
        for name in names:
            torch.testing.assert_close(cache.means[name][row], means[name][0], rtol=1e-4, atol=1e-5)
