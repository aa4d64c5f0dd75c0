"""Hooks on named modules, and the recording of mean token responses of every neuron (DESIGN §3).

`hooks()` is the one place that touches hook handles (like baukit's TraceDict): it attaches a
function to each named module and always removes them on exit, also on errors. Recording runs
only the decoder stack (`model.base_model`), never the LM head, over length-sorted batches of the
unique sentences, right-padded; padding is excluded by a masked mean in float32.
"""

from __future__ import annotations

import time
import warnings
from contextlib import contextmanager
from typing import Callable, Iterator

import numpy as np
import torch
from torch import nn

from .errors import LangneuronsError
from .progress import bar
from .sites import Sites, modules_by_name
from .store import ResponseStore

HookFn = Callable[[torch.Tensor], torch.Tensor | None]  # output -> replacement or None


@contextmanager
def hooks(model: nn.Module, fns: dict[str, HookFn]) -> Iterator[None]:
    """Run `fns[name](output)` after each named module's forward; remove every hook on exit."""
    modules = modules_by_name(model, list(fns))
    handles = []
    try:
        for name, fn in fns.items():
            handles.append(modules[name].register_forward_hook(lambda _m, _a, out, fn=fn: fn(out)))
        yield
    finally:
        for handle in reversed(handles):
            handle.remove()


def token_sum(out: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Σ_p weights[b, p] · out[b, p, :] → `[batch, width]`, as one batched matmul (torch's einsum
    takes a path up to 14x slower for this shape on CPU, comparable to the linear layer itself)."""
    return torch.bmm(weights.unsqueeze(1), out).squeeze(1)


class MeanCache:
    """Masked token-mean of each hooked module's output for the current batch, `[batch, width]`."""

    def __init__(self) -> None:
        self.weights: torch.Tensor | None = None  # [batch, pos]: mask / tokens per sentence
        self.means: dict[str, torch.Tensor] = {}

    def set_mask(self, attention_mask: torch.Tensor) -> None:
        mask = attention_mask.float()
        self.weights = mask / mask.sum(dim=1, keepdim=True)

    def hook(self, name: str) -> HookFn:
        def pool(out: torch.Tensor) -> None:
            self.means[name] = token_sum(out.float(), self.weights)

        return pool


@contextmanager
def record(model: nn.Module, names: list[str]) -> Iterator[MeanCache]:
    """`with record(model, names) as cache:` fills `cache.means` on every forward."""
    cache = MeanCache()
    with hooks(model, {name: cache.hook(name) for name in names}):
        yield cache


TOKENIZE_CHUNK = 1024  # texts encoded at once: bounds the tokenizer's temporary lists


def tokenize(tokenizer, texts: list[str], max_length: int) -> list[np.ndarray]:
    """Default encoding of each text (with BOS where the tokenizer adds one), truncated with a warning.

    Ids are kept as int32 arrays, 4 bytes a token instead of ~36 for a list of Python ints.
    """
    ids = []
    for lo in range(0, len(texts), TOKENIZE_CHUNK):
        encoded = tokenizer(texts[lo : lo + TOKENIZE_CHUNK], add_special_tokens=True)["input_ids"]
        ids.extend(np.asarray(seq, dtype=np.int32) for seq in encoded)
    long = [i for i, seq in enumerate(ids) if len(seq) > max_length]
    if long:
        warnings.warn(
            f"{len(long)} sentence(s) are longer than the model's context of {max_length} tokens "
            f"and were truncated (sentence ids {long[:10]})",
            stacklevel=2,
        )
    return [seq[:max_length] for seq in ids]


def context_length(model: nn.Module, tokenizer) -> int:
    limits = [getattr(model.config, k, None) for k in ("max_position_embeddings", "n_positions")]
    limits.append(getattr(tokenizer, "model_max_length", None))
    valid = [int(x) for x in limits if isinstance(x, int) and 0 < x < 10**7]
    return min(valid) if valid else 2048


def plan_batches(lengths: np.ndarray, rows: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Group `rows` into batches of similar token length (longest first) to minimise padding."""
    order = rows[np.argsort(-lengths[rows], kind="stable")]
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def pad_batch(ids: list, pad_id: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad token id sequences into `[batch, pos]` ids and attention mask."""
    width = max(len(seq) for seq in ids)
    input_ids = torch.full((len(ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for i, seq in enumerate(ids):
        input_ids[i, : len(seq)] = torch.as_tensor(seq)
        mask[i, : len(seq)] = 1
    return input_ids.to(device), mask.to(device)


def check_finite(pooled: dict[str, np.ndarray], dtype: str) -> None:
    bad = [name for name, values in pooled.items() if not np.isfinite(values).all()]
    if bad:
        raise LangneuronsError(
            f"NaN/inf activations in {len(bad)} module(s) with --dtype {dtype}: {', '.join(bad[:5])}"
            f"{' ...' if len(bad) > 5 else ''}; rerun with --dtype bfloat16 or --dtype float32"
        )


@torch.inference_mode()
def record_responses(
    model: nn.Module,
    tokenizer,
    texts: list[str],
    sites: Sites,
    store: ResponseStore,
    batch_size: int = 16,
    dtype: str = "float32",
    progress: bool = True,
) -> dict:
    """Fill `store` with each unique sentence's mean response of every neuron; skip stored rows.

    Returns counts and timing: batches and sentences computed in this call, and tokens.
    """
    if batch_size < 1:
        raise LangneuronsError(f"--batch-size {batch_size}: must be at least 1")
    ids = tokenize(tokenizer, texts, context_length(model, tokenizer))
    lengths = np.array([len(seq) for seq in ids])
    if (lengths == 0).any():
        raise LangneuronsError(f"sentence {int(np.argmax(lengths == 0))} encodes to no tokens")
    batches = plan_batches(lengths, store.pending_rows(), batch_size)
    device = next(model.parameters()).device
    start, tokens = time.perf_counter(), 0
    with record(model, sites.names) as cache, bar(
        "recording", len(texts), progress, completed=store.n_done
    ) as progress_bar:
        for rows in batches:
            input_ids, mask = pad_batch([ids[r] for r in rows], tokenizer.pad_token_id, device)
            cache.set_mask(mask)
            model.base_model(input_ids=input_ids, attention_mask=mask, use_cache=False)
            pooled = {name: cache.means[name].cpu().numpy() for name in sites.names}
            check_finite(pooled, dtype)
            store.write(rows, pooled)
            tokens += int(mask.sum())
            progress_bar.advance(len(rows))
    store.flush()
    return {
        "batches_computed": len(batches),
        "sentences_computed": int(sum(len(b) for b in batches)),
        "tokens_computed": tokens,
        "record_seconds": round(time.perf_counter() - start, 3),
    }
