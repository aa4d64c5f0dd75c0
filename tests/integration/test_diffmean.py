"""`find --method diffmean|all` on tiny models: the residual means recorded in the same pass, the
directions against a brute-force computation, resume; the DiffMean intervention; the GGUF export."""

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import make_model

from langneurons.errors import LangneuronsError
from langneurons.find.diffmean import Directions
from langneurons.find.info import RunInfo
from langneurons.find.run import find
from langneurons.io import read_jsonl
from langneurons.model import find_blocks, pad_batch


def counted_find(out, corpus, loaded, method, batch_size=4):
    calls = []
    handle = loaded.model.base_model.register_forward_hook(lambda *_: calls.append(1))
    try:
        info = find(out, corpus=str(corpus), loaded=loaded, batch_size=batch_size, progress=False, method=method,
                    lape_top_rate=0.1)
    finally:
        handle.remove()
    return info, len(calls)


@pytest.fixture
def all_run(corpus_dir, tmp_path):
    loaded = make_model("llama")
    info, _ = counted_find(tmp_path / "all", corpus_dir, loaded, "all")
    return tmp_path / "all", info, loaded


def brute_states(loaded, texts):
    """Per block, each sentence's mean output state and mean per-token norm after the first token,
    one sentence at a time (no padding)."""
    _, blocks = find_blocks(loaded.model)
    means = [[] for _ in blocks]
    norms = [[] for _ in blocks]
    for text in texts:
        ids = loaded.tokenizer(text)["input_ids"]
        captured = {}
        handles = [b.register_forward_hook(lambda _m, _a, out, i=i: captured.__setitem__(
            i, (out[0] if isinstance(out, tuple) else out)[0].detach())) for i, b in enumerate(blocks)]
        try:
            with torch.no_grad():
                loaded.model.base_model(input_ids=torch.tensor([ids]))
        finally:
            for h in handles:
                h.remove()
        for i in range(len(blocks)):
            means[i].append(captured[i].mean(0).numpy())
            norms[i].append(captured[i][1:].norm(dim=-1).mean().item())
    return np.array(means), np.array(norms)


@pytest.mark.parametrize("family", ["llama", "gemma3", "gpt2"])
def test_diffmean_in_one_pass_matches_brute_force(family, corpus_dir, tmp_path):
    loaded = make_model(family)
    info, calls = counted_find(tmp_path / "run", corpus_dir, loaded, "diffmean")
    assert calls == info.timings["batches_computed"] == 6 and info.method == "diffmean"
    assert info.lape is None and info.diffmean["blocks"] == info.blocks
    assert not (tmp_path / "run" / "store").exists() and not (tmp_path / "run" / "expertise.parquet").exists()
    sentences = read_jsonl(tmp_path / "run" / "sentences.jsonl")
    means, norms = brute_states(loaded, [s["text"] for s in sentences])
    d = Directions.read(tmp_path / "run")
    assert d.languages == tuple(info.languages) and d.diffmean.shape == (len(d.languages), info.blocks, 32)
    for li, lang in enumerate(d.languages):
        pos = [s["id"] for s in sentences if lang in s["positive_for"]]
        neg = [s["id"] for s in sentences if lang in s["negative_for"]]
        centre = np.mean([means[:, [s["id"] for s in sentences if l in s["positive_for"]]].mean(1)
                          for l in d.languages], axis=0)
        np.testing.assert_allclose(d.diffmean[li], means[:, pos].mean(1) - means[:, neg].mean(1), atol=2e-5)
        np.testing.assert_allclose(d.recover[li], means[:, pos].mean(1) - centre, atol=2e-5)
    np.testing.assert_allclose(d.typical_norm, norms.mean(1), rtol=1e-4)
    summary = pd.read_parquet(tmp_path / "run" / "diffmean.parquet")
    assert len(summary) == len(d.languages) * info.blocks and (summary["schema"] == 1).all()
    np.testing.assert_allclose(summary["diffmean_norm"], np.linalg.norm(d.diffmean, axis=-1).ravel(), rtol=1e-5)


def test_all_is_ap_lape_diffmean_in_one_pass_and_resumes(corpus_dir, tmp_path):
    loaded = make_model("llama")
    both, _ = counted_find(tmp_path / "both", corpus_dir, loaded, "both")
    info, calls = counted_find(tmp_path / "all", corpus_dir, loaded, "all")
    assert calls == 6 and info.method == "all" and info.lape == both.lape and info.diffmean is not None
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "both" / "expertise.parquet"),
                                  pd.read_parquet(tmp_path / "all" / "expertise.parquet"))
    first = Directions.read(tmp_path / "all")
    again, calls = counted_find(tmp_path / "all", corpus_dir, loaded, "all")
    assert calls == 0 and again.timings["sentences_computed"] == 0
    np.testing.assert_array_equal(first.diffmean, Directions.read(tmp_path / "all").diffmean)
    # both → all records only the residual store, in one pass over the stored rows
    info, calls = counted_find(tmp_path / "both", corpus_dir, loaded, "all")
    assert calls == 6 and info.method == "all"
    np.testing.assert_allclose(first.diffmean, Directions.read(tmp_path / "both").diffmean, atol=1e-5)
    with pytest.raises(LangneuronsError, match="--method all"):
        counted_find(tmp_path / "all", corpus_dir, loaded, "diffmean")
    assert RunInfo.read(tmp_path / "all").methods == ("ap", "lape", "diffmean")


def test_padding_is_excluded(corpus_dir, tmp_path):
    loaded = make_model("gemma3")
    one, _ = counted_find(tmp_path / "one", corpus_dir, loaded, "diffmean", batch_size=1)
    many, _ = counted_find(tmp_path / "many", corpus_dir, loaded, "diffmean", batch_size=8)
    a, b = Directions.read(tmp_path / "one"), Directions.read(tmp_path / "many")
    np.testing.assert_allclose(a.diffmean, b.diffmean, atol=2e-5)
    np.testing.assert_allclose(a.typical_norm, b.typical_norm, rtol=1e-5)
