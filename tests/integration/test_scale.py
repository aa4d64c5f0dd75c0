"""Scaling out: models sharded with a device map, and data-parallel `find` under torchrun (gloo)."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import make_model, read_jsonl

from langneurons.errors import LangneuronsError
from langneurons.find.record import plan_batches
from langneurons.find.run import find, run_fingerprint
from langneurons.find.store import ResponseStore
from langneurons.model import discover_sites, load_model
from langneurons.steer.generate import Sampling, generate
from langneurons.steer.steerable import open_run

# the tiny Llama split over the CPU and the disk: Accelerate dispatches it and its layer-1 weights
# live on the meta device, read from the checkpoint for each forward (a real device map on CPU)
DISK_MAP = json.dumps({"model.embed_tokens": "cpu", "model.rotary_emb": "cpu", "model.layers.0": "cpu",
                       "model.layers.1": "disk", "model.norm": "cpu", "lm_head": "cpu"})


def load_run_texts(run):
    return [s["text"] for s in read_jsonl(run / "sentences.jsonl")]


def steered_texts(run, loaded):
    steerable = open_run(run, loaded=loaded)
    from langneurons.steer.intervene import Intervention

    plan = steerable.plan([Intervention("de", 12, "both")])
    return generate(loaded.model, loaded.tokenizer, None, [1, 2, 3], Sampling(max_new_tokens=8), plan,
                    progress=False)


def test_device_map_auto_without_gpus_loads_on_the_cpu(saved_tiny):
    plain, auto = load_model(str(saved_tiny), "cpu"), load_model(str(saved_tiny), device_map="auto")
    assert auto.device == torch.device("cpu")
    ids = torch.tensor([[2, 40, 41, 42]])
    torch.testing.assert_close(plain.model(ids).logits, auto.model(ids).logits, rtol=0, atol=0)


def test_device_map_with_offloaded_weights_gives_the_same_results(saved_tiny, corpus_dir, tmp_path):
    plain = load_model(str(saved_tiny), "cpu")
    mapped = load_model(str(saved_tiny), device_map=DISK_MAP)
    assert mapped.model.hf_device_map["model.layers.1"] == "disk"
    assert mapped.model.model.layers[1].mlp.up_proj.weight.device.type == "meta"
    a = find(tmp_path / "a", corpus=str(corpus_dir), loaded=plain, progress=False)
    b = find(tmp_path / "b", corpus=str(corpus_dir), loaded=mapped, progress=False)
    assert a.fingerprint == b.fingerprint  # offloaded weights are read for the signature
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "a" / "expertise.parquet"),
                                  pd.read_parquet(tmp_path / "b" / "expertise.parquet"))
    assert steered_texts(tmp_path / "a", plain) == steered_texts(tmp_path / "b", mapped)


def test_bad_device_map_is_one_clear_error():
    with pytest.raises(LangneuronsError, match="--device-map 'everywhere': use one of auto, balanced"):
        load_model("unused", device_map="everywhere")


def test_device_map_with_several_processes_per_node_is_refused(monkeypatch):
    from langneurons.find.distributed import join

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    with pytest.raises(LangneuronsError, match="each would spread the model over the same GPUs"):
        join("auto", "auto")


def test_more_processes_than_gpus_is_refused(monkeypatch):
    from langneurons.find.distributed import join

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "3")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    with pytest.raises(LangneuronsError, match="4 processes per node but 2 GPU"):
        join("cuda", None)


def test_ranks_share_the_work_and_resume_on_their_own(tiny_llama, corpus_dir, tmp_path):
    """Shards in one process: disjoint rows, one done file per rank, a killed rank's rows redone."""
    from langneurons.data import build_labels, load_corpus
    from langneurons.find.record import record_responses

    labels = build_labels(load_corpus(str(corpus_dir)))
    sites = discover_sites(tiny_llama.model)
    widths = {s.name: s.width for s in sites}
    fp = run_fingerprint(tiny_llama, sites, labels, "float32")
    args = (tiny_llama.model, tiny_llama.tokenizer, labels.texts, sites)
    stores = [ResponseStore.open(tmp_path / "store", fp, widths, len(labels.texts), rank=r) for r in (0, 1)]
    counts = [record_responses(*args, stores[r], batch_size=4, progress=False, shard=(r, 2)) for r in (0, 1)]
    flags = [np.load(tmp_path / "store" / name) for name in ("done.npy", "done.rank1.npy")]
    assert not (flags[0] & flags[1]).any() and (flags[0] | flags[1]).all()
    assert counts[0]["batches_computed"] == 3 and counts[1]["batches_computed"] == 3
    flags[1][np.flatnonzero(flags[1])[:3]] = False  # as if rank 1 had been killed before its last rows
    np.save(tmp_path / "store" / "done.rank1.npy", flags[1])
    stores[1] = ResponseStore.open(tmp_path / "store", fp, widths, len(labels.texts), rank=1)
    again = [record_responses(*args, stores[r], batch_size=4, progress=False, shard=(r, 2)) for r in (0, 1)]
    assert [a["sentences_computed"] for a in again] == [0, 3]
    one = ResponseStore.open(tmp_path / "one", fp, widths, len(labels.texts))
    record_responses(*args, one, batch_size=4, progress=False)
    for name in widths:  # the redone rows ran in a batch of another shape: equal to float tolerance
        np.testing.assert_allclose(one.responses(name), stores[0].responses(name), rtol=1e-5, atol=1e-6)


def test_torchrun_two_processes_equal_one_process(saved_tiny, corpus_dir, tmp_path):
    """2 gloo ranks on CPU resume a partly stored run and give the 1-process tables exactly."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # torchrun gives each rank one thread: the same kernels, the same bits
    try:
        one = find(tmp_path / "one", corpus=str(corpus_dir), loaded=load_model(str(saved_tiny), "cpu"),
                   batch_size=4, progress=False)
    finally:
        torch.set_num_threads(threads)
    two = tmp_path / "two"
    shutil.copytree(tmp_path / "one" / "store", two / "store")
    loaded = load_model(str(saved_tiny), "cpu")
    lengths = np.array([len(ids) for ids in loaded.tokenizer(load_run_texts(tmp_path / "one"))["input_ids"]])
    kept = plan_batches(lengths, np.arange(len(lengths)), 4)[-1]  # stored by an earlier, killed run;
    done = np.zeros(one.unique_sentences, bool)  # every other row is zeroed and redone
    done[kept] = True
    np.save(two / "store" / "done.npy", done)
    for name in json.loads((two / "store" / "meta.json").read_text())["widths"]:
        values = np.load(two / "store" / f"{name}.npy", mmap_mode="r+")
        values[~done] = 0
        values.flush()
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "--monitor-interval", "0.1", "-m", "langneurons", "find", "--model", str(saved_tiny),
           "--corpus", str(corpus_dir), "--out", str(two), "--device", "cpu", "--batch-size", "4"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    info = json.loads((two / "run.json").read_text())
    assert info["timings"]["ranks"] == 2
    assert info["timings"]["sentences_computed"] == one.unique_sentences - len(kept)
    rank1 = np.load(two / "store" / "done.rank1.npy")
    assert rank1.any() and not rank1[kept].any() and not (rank1 & np.load(two / "store" / "done.npy") & ~done).any()
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "one" / "expertise.parquet"),
                                  pd.read_parquet(two / "expertise.parquet"), check_exact=True)


@pytest.mark.skipif(torch.cuda.device_count() < 1, reason="needs a CUDA GPU")
def test_outputs_on_another_device_than_the_mask(tiny_llama, corpus_dir, tmp_path):
    """The recording mask and the plan start on the CPU; the module outputs are on the GPU."""
    from langneurons.find.record import record
    from langneurons.steer.apply import resolve, steer
    from langneurons.steer.intervene import Intervention

    cpu_run = find(tmp_path / "cpu", corpus=str(corpus_dir), loaded=tiny_llama, progress=False)
    gpu = make_model("llama")
    gpu.model.to("cuda")
    names = discover_sites(gpu.model).names
    ids = torch.tensor([[2, 40, 41, 42, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 0]])
    with record(gpu.model, names) as cache:
        cache.set_mask(mask)  # on the CPU
        gpu.model.base_model(input_ids=ids.cuda(), attention_mask=mask.cuda())
    with record(tiny_llama.model, names) as reference:
        reference.set_mask(mask)
        tiny_llama.model.base_model(input_ids=ids, attention_mask=mask)
    for name in names:
        torch.testing.assert_close(cache.means[name].cpu(), reference.means[name], rtol=1e-4, atol=1e-5)
    plan = resolve([Intervention("de", 12)], pd.read_parquet(tmp_path / "cpu" / "expertise.parquet"),
                   {s["name"]: s["width"] for s in cpu_run.sites})
    with steer(gpu.model, plan):
        gpu.model(input_ids=ids.cuda())


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA GPUs")
def test_model_split_over_two_gpus(saved_tiny, corpus_dir, tmp_path):
    split = json.dumps({"model.embed_tokens": 0, "model.rotary_emb": 0, "model.layers.0": 0,
                        "model.layers.1": 1, "model.norm": 1, "lm_head": 1})
    plain, mapped = load_model(str(saved_tiny), "cpu"), load_model(str(saved_tiny), device_map=split)
    find(tmp_path / "a", corpus=str(corpus_dir), loaded=plain, progress=False)
    find(tmp_path / "b", corpus=str(corpus_dir), loaded=mapped, progress=False)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "a" / "expertise.parquet"),
                                  pd.read_parquet(tmp_path / "b" / "expertise.parquet"), atol=1e-5, rtol=1e-4)
    assert steered_texts(tmp_path / "b", mapped)


def test_bad_device_map_on_the_command_line(corpus_dir, tmp_path):
    from typer.testing import CliRunner

    from langneurons.cli.app import app

    result = CliRunner().invoke(app, ["find", "--out", str(tmp_path / "r"), "--corpus", str(corpus_dir),
                                      "--device-map", "{not json"])
    assert result.exit_code == 2 and "--device-map '{not json': use one of auto" in result.output
    assert "Traceback" not in result.output


MEASURE_EXPERTISE = """
import sys, tempfile
from pathlib import Path
import numpy as np
from langneurons.data import LabelSet
from langneurons.find.expertise import compute_expertise
from langneurons.find.run import expertise_ram, write_outputs
from langneurons.find.store import ResponseStore
from langneurons.sites import Site, Sites

per, n_lang, n_mod, width = map(int, sys.argv[1:5])
langs = [f"l{i}" for i in range(n_lang)]
n = per * n_lang
own = {l: np.arange(i * per, (i + 1) * per) for i, l in enumerate(langs)}
labels = LabelSet(langs, [str(i) for i in range(n)], [langs[i // per] for i in range(n)], own,
                  {l: np.concatenate([own[o] for o in langs if o != l]) for l in langs})
def sites_of(k, w):
    return Sites("m", k, tuple(Site(f"m.{i}.up", i, "up", "mlp", w, i * w) for i in range(k)))
def store_of(root, sites):
    store = ResponseStore.open(root, "fp", {s.name: s.width for s in sites}, n)
    rng = np.random.default_rng(0)
    for s in sites:
        store.write(np.arange(n), {s.name: rng.standard_normal((n, s.width), dtype=np.float32)})
    return store
def peak(key):
    return next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith(key))
tmp = Path(tempfile.mkdtemp())
warm = sites_of(1, 8)  # first use of every code path: imports and thread pools are not the estimate
write_outputs(tmp / "warm", compute_expertise(store_of(tmp / "w", warm), warm, labels, progress=False))
sites = sites_of(n_mod, width)
store = store_of(tmp / "s", sites)
open("/proc/self/clear_refs", "w").write("5")  # reset the peak to the current size
base = peak("VmRSS:")
write_outputs(tmp / "out", compute_expertise(store, sites, labels, progress=False))
print(peak("VmHWM:") - base, expertise_ram(n, sites.total, n_lang))
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="measures peak RSS on Linux")
@pytest.mark.parametrize("shape", [(500, 2, 2, 4096), (1400, 6, 2, 4096), (20, 4, 24, 2048)],
                         ids=["chunk", "six-languages", "table"])
def test_expertise_ram_estimate_bounds_the_measured_peak(shape):
    """The printed estimate is an upper bound, and not a wildly loose one (chunk- and table-dominated).

    Measured peaks vary from run to run with whether the sorting threads' buffers coexist (chunk
    case 54-120 MB, six languages 282-523 MB), hence the factor 5 below."""
    result = subprocess.run([sys.executable, "-c", MEASURE_EXPERTISE, *map(str, shape)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    measured, estimate = map(int, result.stdout.split())
    assert measured <= estimate <= 5 * measured, (measured, estimate)


def test_float16_store_end_to_end(tiny_llama, corpus_dir, tmp_path):
    """--store-dtype float16 halves the store (as check_disk says) and keeps the statistics."""
    from langneurons.find.run import store_bytes

    a = find(tmp_path / "a", corpus=str(corpus_dir), loaded=tiny_llama, progress=False)
    b = find(tmp_path / "b", corpus=str(corpus_dir), loaded=tiny_llama, store_dtype="float16", progress=False)
    arrays = [np.load(p, mmap_mode="r") for p in (tmp_path / "b" / "store").glob("model.*.npy")]
    assert {x.dtype for x in arrays} == {np.dtype(np.float16)}
    assert sum(x.nbytes for x in arrays) == store_bytes(24, b.neurons, "float16") == store_bytes(24, a.neurons, "float32") // 2
    ta, tb = pd.read_parquet(tmp_path / "a" / "expertise.parquet"), pd.read_parquet(tmp_path / "b" / "expertise.parquet")
    np.testing.assert_allclose(tb["on_p50"], ta["on_p50"], rtol=2e-3, atol=2e-3)
    assert (tb["ap"] - ta["ap"]).abs().mean() < 0.01  # float16 rounding makes a few ties
