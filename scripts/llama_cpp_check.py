"""Manual check that an exported control vector steers llama.cpp: samples from BOS of the embedded
Gemma-3-270M GGUF with llama-cpp-python, without and then with the vector, and counts each sample's
language (docs/steering.md, "Serving with llama.cpp"). Needs `pip install llama-cpp-python`, which
the tests do not.

    langneurons export runs/builtin -l de --blocks 12 --alpha 0.1 --out de.gguf
    python scripts/llama_cpp_check.py de.gguf --samples 20
"""

from __future__ import annotations

import argparse
import ctypes
from collections import Counter

import numpy as np
from gguf import GGUFReader

from langneurons.model import embedded_gguf
from langneurons.steer.evaluate import detect_language


def control_buffer(path: str, n_embd: int) -> tuple[np.ndarray, int]:
    """The file's `direction.<il>` tensors laid out as llama.cpp's loader does: layer il at (il − 1)·n_embd."""
    tensors = {t.name: np.asarray(t.data, dtype=np.float32) for t in GGUFReader(path).tensors}
    layers = max(int(name.split(".")[1]) for name in tensors)
    buffer = np.zeros(n_embd * layers, dtype=np.float32)
    for name, data in tensors.items():
        layer = int(name.split(".")[1])
        buffer[(layer - 1) * n_embd: layer * n_embd] = data
    return buffer, layers


def show_languages(llm, samples: int, label: str) -> None:
    """Print the detected language of `samples` texts of 64 tokens from BOS (temperature 0.7, seeds
    1..samples) and the first three texts."""
    found = Counter()
    for seed in range(1, samples + 1):
        text = llm.create_completion("", max_tokens=64, temperature=0.7, top_p=1.0, top_k=0, seed=seed)["choices"][0]["text"]
        found[detect_language(text)[0][0] if text.strip() else "(empty)"] += 1
        if seed <= 3:
            print(f"  {label}, seed {seed}: {text[:80]!r}")
    print(f"{label}: {dict(found.most_common())}", flush=True)


def main() -> None:
    import llama_cpp

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("vector", help="a control-vector GGUF written by `langneurons export`")
    parser.add_argument("--samples", type=int, default=20)
    args = parser.parse_args()
    llm = llama_cpp.Llama(model_path=str(embedded_gguf()), n_ctx=256, verbose=False)
    show_languages(llm, args.samples, "plain")
    buffer, layers = control_buffer(args.vector, llm.n_embd())
    pointer = buffer.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
    if llama_cpp.llama_set_adapter_cvec(llm.ctx, pointer, buffer.size, llm.n_embd(), 1, layers) != 0:
        raise SystemExit(f"{args.vector}: llama.cpp refused the control vector")
    show_languages(llm, args.samples, "with the control vector")


if __name__ == "__main__":
    main()
