"""The recording of mean token responses of every neuron (docs/method.md §3).

Hooks come from `hooks.hooks()`, the one place that touches hook handles. Recording runs
only the decoder stack (`model.base_model`), never the LM head, over length-sorted batches of the
unique sentences, right-padded; padding is excluded by a masked mean in float32.
"""

from __future__ import annotations

import time
import warnings
from contextlib import contextmanager
from typing import Iterator

import numpy as np
import torch
from torch import nn

from ..errors import LangneuronsError
from ..hooks import HookFn, hooks
from ..model import context_length, input_device, pad_batch
from ..progress import bar
from ..sites import ACTIVATION, Sites
from .diffmean import NORM, RESIDUAL
from .store import ResponseStore

COUNT = ".count"  # store array suffix: per sentence, the tokens on which each activation unit is > 0
TOKENS = "tokens"  # store array `[n, 1]`: the tokens of each sentence



def token_sum(out: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Σ_p weights[b, p] · out[b, p, :] → `[batch, width]`, as one batched matmul (torch's einsum
    takes a path up to 14x slower for this shape on CPU, comparable to the linear layer itself)."""
    return torch.bmm(weights.unsqueeze(1), out).squeeze(1)


class MeanCache:
    """Masked token-mean of each hooked module's output for the current batch, `[batch, width]`.

    The means are float32 whatever the model's dtype, and stay on the device of the module's
    output (a model sharded with a device map has outputs on several devices). For `count`ed
    modules `counts` holds, per sentence and unit, the tokens on which the output is > 0 (LAPE).
    """

    def __init__(self) -> None:
        self.weights: dict[torch.device, torch.Tensor] = {}  # device -> [batch, pos]: mask / tokens
        self.means: dict[str, torch.Tensor] = {}
        self.counts: dict[str, torch.Tensor] = {}
        self.norms: dict[str, torch.Tensor] = {}  # `[batch, 1]`: mean per-token norm after the first token
        self.later: dict[torch.device, torch.Tensor] = {}  # device -> [batch, pos]: weights without token 0

    def set_mask(self, attention_mask: torch.Tensor) -> None:
        mask = attention_mask.float()
        self.weights = {mask.device: mask / mask.sum(dim=1, keepdim=True)}
        later = mask.clone()
        later[:, 0] *= (mask.sum(dim=1) == 1).float()  # the first token only where it is the only one
        self.later = {mask.device: later / later.sum(dim=1, keepdim=True)}

    def weights_on(self, device: torch.device) -> torch.Tensor:
        """The batch's mean weights on `device`, copied there once per batch."""
        if device not in self.weights:
            self.weights[device] = next(iter(self.weights.values())).to(device)
        return self.weights[device]

    def later_on(self, device: torch.device) -> torch.Tensor:
        if device not in self.later:
            self.later[device] = next(iter(self.later.values())).to(device)
        return self.later[device]

    def hook(self, name: str, count: bool = False, norm: bool = False) -> HookFn:
        """`norm`: a decoder block (its output a tuple whose first element is the hidden state): pool
        the state and its per-token norm over the tokens after the first (the first, BOS where the
        tokenizer adds one, is the same state in every sentence with an outlier norm: in a token mean
        it would weigh 1/length, a sentence-length signal, not a language one)."""
        def pool(out: torch.Tensor | tuple) -> None:
            if isinstance(out, tuple):
                out = out[0]
            weights = self.later_on(out.device) if norm else self.weights_on(out.device)
            states = out.float()
            self.means[name] = token_sum(states, weights)
            if count:  # exact in float32 up to 2**24 tokens per sentence
                self.counts[name] = token_sum((out > 0).float(), (weights > 0).float())
            if norm:
                self.norms[name] = token_sum(states.norm(dim=-1, keepdim=True), weights)

        return pool


@contextmanager
def record(model: nn.Module, names: list[str], counted: frozenset[str] = frozenset(),
           normed: frozenset[str] = frozenset()) -> Iterator[MeanCache]:
    """`with record(model, names) as cache:` fills `cache.means` (and `cache.counts` for the
    `counted` names, `cache.norms` for the `normed` ones: decoder blocks) on every forward."""
    cache = MeanCache()
    with hooks(model, {name: cache.hook(name, name in counted, name in normed) for name in names}):
        yield cache


def pooled_values(cache: MeanCache, sites: Sites, mask: torch.Tensor) -> dict[str, np.ndarray]:
    """One batch's store rows for `sites`: the means; activation sites add `<name>.count`, and
    then `tokens` (the tokens of each sentence, from the batch's `mask` `[batch, pos]`); residual
    sites (block outputs) add `<name>.norm`."""
    values = {s.name: cache.means[s.name].cpu().numpy() for s in sites}
    for site in (s for s in sites if s.kind == RESIDUAL):
        if values[site.name].shape[1] != site.width:
            raise LangneuronsError(f"{site.name} outputs {values[site.name].shape[1]} features, not the "
                                   f"model's hidden size {site.width}")
        values[site.name + NORM] = cache.norms[site.name].cpu().numpy()
    for site in (s for s in sites if s.kind == ACTIVATION):
        if values[site.name].shape[1] != site.width:
            raise LangneuronsError(
                f"{site.name} outputs {values[site.name].shape[1]} features, not the {site.width} of "
                "the MLP linear before it; LAPE cannot map its units to that linear's units"
            )
        values[site.name + COUNT] = cache.counts[site.name].cpu().numpy()
        values[TOKENS] = mask.sum(dim=1, keepdim=True).float().cpu().numpy()
    return values


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


def plan_batches(lengths: np.ndarray, rows: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Group `rows` into batches of similar token length (longest first) to minimise padding."""
    order = rows[np.argsort(-lengths[rows], kind="stable")]
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


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
    shard: tuple[int, int] = (0, 1),
    extra: tuple[Sites, ResponseStore] | list[tuple[Sites, ResponseStore]] | None = None,
) -> dict:
    """Fill `store` with each unique sentence's mean response of every neuron; skip stored rows.

    `extra` is a second set of sites with its own store (or a list of such pairs), filled in the same
    forward passes (`find --method both` or `all`); activation sites also store their counts and
    residual sites (block outputs) their per-token norms (see `pooled_values`).

    `shard=(rank, world)` records only the sentences of batches i % world == rank of the plan over
    all sentences (data parallelism under torchrun): which rank owns a sentence does not depend on
    what is stored, so ranks never overlap, also when resuming. Returns counts and timing of this
    call: batches, sentences, tokens.
    """
    if batch_size < 1:
        raise LangneuronsError(f"--batch-size {batch_size}: must be at least 1")
    ids = tokenize(tokenizer, texts, context_length(model, tokenizer))
    lengths = np.array([len(seq) for seq in ids])
    if (lengths == 0).any():
        raise LangneuronsError(f"sentence {int(np.argmax(lengths == 0))} encodes to no tokens")
    mine = plan_batches(lengths, np.arange(len(texts)), batch_size)[shard[0] :: shard[1]]
    owned = np.concatenate([np.zeros(0, dtype=np.int64), *mine])  # a rank may own no batch
    extras = [] if extra is None else [extra] if isinstance(extra, tuple) else list(extra)
    targets = [(sites, store), *extras]
    held = [target.done_mask() for _, target in targets]  # rows each store already has
    pending = owned[~np.logical_and.reduce(held)[owned]]
    active = [(s, t, h) for (s, t), h in zip(targets, held) if not h[owned].all()]
    names = [name for s, _, _ in active for name in s.names]
    counted = frozenset(site.name for s, _, _ in active for site in s if site.kind == ACTIVATION)
    normed = frozenset(site.name for s, _, _ in active for site in s if site.kind == RESIDUAL)
    batches = plan_batches(lengths, pending, batch_size)
    device = input_device(model)
    start, tokens = time.perf_counter(), 0
    with record(model, names, counted, normed) as cache, bar(
        "recording", len(owned), progress, completed=len(owned) - len(pending)
    ) as progress_bar:
        for rows in batches:
            input_ids, mask = pad_batch([ids[r] for r in rows], tokenizer.pad_token_id, device)
            cache.set_mask(mask)
            model.base_model(input_ids=input_ids, attention_mask=mask, use_cache=False)
            for target_sites, target, has in active:
                pooled = pooled_values(cache, target_sites, mask)
                check_finite(pooled, dtype)
                new = ~has[rows]
                target.write(rows[new], {name: values[new] for name, values in pooled.items()})
            tokens += int(mask.sum())
            progress_bar.advance(len(rows))
    for _, target in targets:
        target.flush()
    return {
        "batches_computed": len(batches),
        "sentences_computed": len(pending),
        "tokens_computed": tokens,
        "record_seconds": round(time.perf_counter() - start, 3),
    }
