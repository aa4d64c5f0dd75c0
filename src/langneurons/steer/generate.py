"""Batched generation with a KV cache, reproducible per seed, under an optional steering plan.

Unconditional: prompt = BOS only, temperature 0.8, top-p 0.9, 64 new tokens (DESIGN §6);
translation: greedy, 128 new tokens, output = the first line after the prompt. Each sample draws
its randomness from its own seed (one uniform per step), so a seed gives the same text whatever
batch it runs in, as long as the model returns the same logits for it (true on CPU float32 in
our tests; GPU kernels may differ in the last bits across batch shapes).
"""

from __future__ import annotations

import inspect
import itertools
import re
import unicodedata
import warnings
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Iterator

import numpy as np
import torch
from torch import nn

from ..model import context_length, input_device
from ..progress import bar
from .intervene import Plan, steer

TRANSLATE_PROMPT = "Translate an English sentence into a target language.\nEnglish: {source}\nTarget Language:"


@dataclass(frozen=True)
class Sampling:
    """How to pick each next token."""

    max_new_tokens: int = 64
    temperature: float = 0.8
    top_p: float = 0.9
    greedy: bool = False
    stop_at_newline: bool = False


UNCONDITIONAL = Sampling()
TRANSLATION = Sampling(max_new_tokens=128, greedy=True, stop_at_newline=True)


def start_token(tokenizer) -> int:
    """The token an unconditional sample starts from: BOS, else EOS (GPT-2 style)."""
    for token in (tokenizer.bos_token_id, tokenizer.eos_token_id):
        if token is not None:
            return int(token)
    raise ValueError("the tokenizer has neither a BOS nor an EOS token to start from")


def next_tokens(logits: torch.Tensor, sampling: Sampling, draws: np.ndarray) -> torch.Tensor:
    """Pick one token per row of `logits` `[batch, vocab]` using one uniform draw per row."""
    if sampling.greedy:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits.float() / sampling.temperature, dim=-1)
    k = min(256, probs.shape[-1])  # grow k until every row's nucleus lies within the top k
    while True:
        top_probs, top_ids = probs.topk(k, dim=-1)
        if k == probs.shape[-1] or bool((top_probs.sum(-1) >= sampling.top_p).all()):
            break
        k = min(probs.shape[-1], k * 8)
    before = top_probs.cumsum(-1) - top_probs  # mass of strictly more likely tokens
    kept = torch.where(before < sampling.top_p, top_probs, torch.zeros_like(top_probs))
    cdf = kept.cumsum(-1)
    target = torch.from_numpy(draws).to(cdf) * cdf[:, -1]  # inverse-CDF sampling in the nucleus
    choice = torch.searchsorted(cdf, target[:, None]).clamp(max=cdf.shape[-1] - 1)
    return top_ids.gather(-1, choice).squeeze(-1)


@contextmanager
def tall_logits(model: nn.Module) -> Iterator[None]:
    """On CPU, compute a linear LM head as `W @ hᵀ` while generating: for the few rows of a decoding
    step MKL runs that shape about 1.8x faster than `linear(h, W)` (Gemma-3's 262k-token head took
    two thirds of each step). Same values up to float rounding; the head is restored on exit."""
    head = model.get_output_embeddings()
    if not isinstance(head, nn.Linear) or head.weight.device.type != "cpu":
        yield
        return

    def forward(hidden: torch.Tensor) -> torch.Tensor:
        flat = hidden.reshape(-1, hidden.shape[-1])
        logits = (head.weight @ flat.T).T.reshape(*hidden.shape[:-1], head.out_features)
        return logits if head.bias is None else logits + head.bias

    head.forward = forward
    try:
        yield
    finally:
        del head.forward


@lru_cache(maxsize=4)
def opening_vocabulary(tokenizer, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """For token ids 0..size-1: whether a guarded opening may use it (its text has a letter or a
    mark, and it is no special token; ids the tokenizer lacks are none) and a number per text
    stripped of spaces, so that "im" and " im" count as the same word."""
    special = special_ids(tokenizer)
    texts = tokenizer.batch_decode([[i] for i in range(min(size, len(tokenizer)))])
    texts = ["" if i in special else t for i, t in enumerate(texts)] + [""] * (size - len(texts))
    words = torch.tensor([any(unicodedata.category(c)[0] in "LM" for c in t) for t in texts])
    numbers: dict[str, int] = {}
    forms = torch.tensor([numbers.setdefault(t.strip(), len(numbers)) if w else -1 - i
                          for i, (t, w) in enumerate(zip(texts, words.tolist()))])
    return words, forms


def guard_opening(logits: torch.Tensor, written: list[list[int]], tokenizer) -> torch.Tensor:
    """`logits` [batch, vocab] with every token banned that is not a word or repeats a word
    already written in its row (the opening so far)."""
    words, forms = (t.to(logits.device) for t in opening_vocabulary(tokenizer, logits.shape[-1]))
    logits = logits.masked_fill(~words, float("-inf"))
    for row, tokens in enumerate(written):
        if tokens:
            logits[row, torch.isin(forms, forms[tokens])] = float("-inf")
    return logits


def sentence_starts(tokenizer, texts: list[str]) -> torch.Tensor:
    """For each token id of `tokenizer`: whether a text may open with it under the start rule. Kept
    are the tokens that begin `texts` more often than their share of all the texts' tokens (the first
    token of a sentence, after BOS, over-represented there: "The", "Die", "その", not "か", a particle
    that begins one of 500 Japanese sentences and sits inside a hundred), with every token of the
    same word ("Die" and " Die" alike, as the guard counts them)."""
    bos = tokenizer.bos_token_id
    starts, counts, total = Counter(), Counter(), 0
    for lo in range(0, len(texts), 1024):
        for ids in tokenizer(texts[lo : lo + 1024], add_special_tokens=True)["input_ids"]:
            ids = ids[1:] if ids and ids[0] == bos else ids
            if ids:
                starts[ids[0]] += 1
                counts.update(ids)
                total += len(ids)
    sentences = sum(starts.values())
    kept = [token for token, c in starts.items() if c * total > counts[token] * sentences]
    _, forms = opening_vocabulary(tokenizer, len(tokenizer))
    return torch.isin(forms, forms[kept]) if kept else torch.zeros(len(tokenizer), dtype=torch.bool)


def sentence_start(logits: torch.Tensor, starts: torch.Tensor) -> torch.Tensor:
    """`logits` [batch, vocab] with every token banned that may not open a text (`sentence_starts`;
    ids of the model's head past the tokenizer's are none)."""
    allowed = torch.nn.functional.pad(starts.to(logits.device), (0, logits.shape[-1] - len(starts)), value=False)
    return logits.masked_fill(~allowed, float("-inf"))


@lru_cache(maxsize=4)
def byte_values(tokenizer) -> torch.Tensor:
    """For each token id of `tokenizer`: the byte a byte-fallback token (`<0xE3>` in Gemma's and
    Llama's vocabularies) stands for, -2 for a token whose text holds "�" (Gemma-3 has six, such as
    "▁�" and "��"), else -1. Byte-level BPE (GPT-2, BLOOM) has neither."""
    values = []
    for token in tokenizer.convert_ids_to_tokens(list(range(len(tokenizer)))):
        found = re.fullmatch(r"<0x([0-9A-Fa-f]{2})>", token) if isinstance(token, str) else None
        values.append(int(found.group(1), 16) if found else -2 if "\ufffd" in (token or "") else -1)
    return torch.tensor(values)


SECOND_BYTE = {0xE0: (0xA0, 0xBF), 0xED: (0x80, 0x9F), 0xF0: (0x90, 0xBF), 0xF4: (0x80, 0x8F)}  # RFC 3629


def next_byte(tail: list[int]) -> tuple[int, int] | None:
    """The range the next byte must lie in for `tail` (the last bytes written, well-formed so far)
    to stay well-formed UTF-8, or None when `tail` ends on a whole character."""
    for back, byte in enumerate(reversed(tail[-4:]), start=1):
        if 0x80 <= byte < 0xC0:  # a continuation byte: its lead lies further back
            continue
        need = 0 if byte < 0x80 else 1 if byte < 0xE0 else 2 if byte < 0xF0 else 3
        if back > need:
            return None
        return SECOND_BYTE.get(byte, (0x80, 0xBF)) if back == 1 else (0x80, 0xBF)
    return None


def trailing_bytes(values: torch.Tensor, tokens: list[int]) -> list[int]:
    """The bytes of the byte tokens that end `tokens` (the last four at most: one character)."""
    recent = [int(values[t]) if t < len(values) else -1 for t in tokens[-4:]]
    return list(itertools.takewhile(lambda v: v >= 0, reversed(recent)))[::-1]


def whole_characters(logits: torch.Tensor, written: list[list[int]], tokenizer) -> torch.Tensor:
    """`logits` [batch, vocab] with the tokens banned that would put "�" in a row's text: tokens
    that hold it, and byte tokens that would make its bytes ill-formed UTF-8 (where a character
    starts, continuation bytes and bytes no character starts with; inside one, everything but the
    bytes that can continue it)."""
    values = byte_values(tokenizer).to(logits.device)
    values = torch.nn.functional.pad(values, (0, logits.shape[-1] - len(values)), value=-1)  # head ids past the tokenizer
    if not bool((values != -1).any()):
        return logits
    cannot_start = ((values >= 0x80) & (values < 0xC2)) | (values >= 0xF5) | (values == -2)
    ranges = [next_byte(trailing_bytes(values, tokens)) for tokens in written]
    inside = torch.tensor([r is not None for r in ranges], device=logits.device)[:, None]
    low, high = (torch.tensor([r[i] if r else 0 for r in ranges], device=logits.device)[:, None] for i in (0, 1))
    banned = torch.where(inside, (values < low) | (values > high), cannot_start)
    return logits.masked_fill(banned, float("-inf"))


def newline_ids(tokenizer, ids: set[int], cache: dict[int, bool]) -> set[int]:
    for token in ids - cache.keys():
        cache[token] = "\n" in tokenizer.decode([token])
    return {t for t in ids if cache[t]}


@torch.inference_mode()
def generate_batch(model: nn.Module, tokenizer, prompts: list[list[int]], seeds: list[int],
                   sampling: Sampling, plan: Plan | None = None) -> list[list[int]]:
    """New token ids for each prompt (left-padded into one batch), stopping at EOS/newline."""
    device = input_device(model)
    width = max(len(p) for p in prompts)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    input_ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts], device=device)
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    rngs = [np.random.default_rng(seed) for seed in seeds]
    eos = {int(t) for t in np.atleast_1d(tokenizer.eos_token_id or [])}
    newline_cache: dict[int, bool] = {}
    out: list[list[int]] = [[] for _ in prompts]
    done = np.zeros(len(prompts), bool)
    params = inspect.signature(model.forward).parameters
    last_only = {"logits_to_keep": 1} if "logits_to_keep" in params else {}
    cache_arg = "cache" if "cache" in params else "past_key_values"  # renamed in transformers 5
    rereads = plan.rereads if plan is not None else set()
    with steer(model, plan) as steering, tall_logits(model):
        result = model(input_ids=input_ids, attention_mask=mask, position_ids=positions,
                       use_cache=True, **last_only)
        for step in range(sampling.max_new_tokens):
            draws = np.array([rng.random() for rng in rngs])
            logits = result.logits[:, -1, :]
            if steering.fed == 0 and plan is not None and plan.starts is not None:
                logits = sentence_start(logits, plan.starts)
            if steering.guarded:
                logits = guard_opening(logits, out, tokenizer)
            if plan is not None and plan.whole_characters:
                logits = whole_characters(logits, out, tokenizer)
            cooler = steering.temperature
            chosen = next_tokens(logits, sampling if cooler is None else replace(sampling, temperature=cooler), draws)
            tokens = chosen.tolist()
            stops = eos | (newline_ids(tokenizer, set(tokens), newline_cache) if sampling.stop_at_newline else set())
            for row, token in enumerate(tokens):
                if not done[row]:
                    out[row].append(token)
                    done[row] = token in stops
            if done.all() or step + 1 == sampling.max_new_tokens:
                break
            mask = torch.cat([mask, mask.new_ones((len(prompts), 1))], dim=1)
            input_ids = torch.cat([input_ids, chosen[:, None].to(device)], dim=1)
            steering.fed = step + 1
            if steering.fed in rereads:  # a prefix:K opening is written: read it all again, unedited
                positions = (mask.cumsum(-1) - 1).clamp(min=0)
                result = model(input_ids=input_ids, attention_mask=mask, position_ids=positions,
                               use_cache=True, **last_only)
                positions = positions[:, -1:]
                continue
            positions = positions[:, -1:] + 1
            cache = result.get("cache") or result.get("past_key_values")
            result = model(input_ids=chosen[:, None].to(device), attention_mask=mask, position_ids=positions,
                           use_cache=True, **{cache_arg: cache})
    return out


def special_ids(tokenizer) -> set[int]:
    """Ids of special tokens, including added ones marked special."""
    return set(tokenizer.all_special_ids) | {
        i for i, t in getattr(tokenizer, "added_tokens_decoder", {}).items() if t.special}


def without_cut_character(tokenizer, ids: list[int]) -> list[int]:
    """`ids` less the byte tokens of a last character left unfinished (cut by the token limit):
    a byte-fallback decoder turns the whole run of byte tokens it ends into "�", e.g. 20 ideographic
    spaces (`<0xE3><0x80><0x80>` each) and a cut one become 62 "�"."""
    values = byte_values(tokenizer)
    while (tail := trailing_bytes(values, ids)) and next_byte(tail) is not None:
        ids = ids[:-1]
    return ids


def decode(tokenizer, ids: list[int], first_line: bool, special: set[int]) -> str:
    """Text of generated ids without special/added control tokens (Gemma keeps `<start_of_image>`)
    and without a last character cut short; whitespace kept (a trailing run of blanks is a sign
    of degenerate output, `evaluate.padding`)."""
    text = tokenizer.decode(without_cut_character(tokenizer, [i for i in ids if i not in special]),
                            skip_special_tokens=True)
    text = text.replace("<start_of_image>", "").replace("<end_of_image>", "")
    return text.split("\n")[0] if first_line else text


def fit_context(prompts: list[list[int]], sampling: Sampling, limit: int) -> tuple[list[list[int]], Sampling]:
    """Keep prompt + new tokens within the model's context: shorten the new tokens, and cut
    over-long prompts from the left (keeping their end, where the instruction is), with a warning."""
    room = limit - max(len(p) for p in prompts)
    if room >= sampling.max_new_tokens:
        return prompts, sampling
    new_tokens = max(1, min(sampling.max_new_tokens, room, limit // 2))
    keep = limit - new_tokens
    cut = sum(len(p) > keep for p in prompts)
    warnings.warn(
        f"prompt + {sampling.max_new_tokens} new tokens exceed the model's context of {limit}: "
        f"generating {new_tokens} new tokens" + (f", {cut} prompt(s) cut to their last {keep} tokens" if cut else ""),
        stacklevel=3,
    )
    return [p[-keep:] for p in prompts], replace(sampling, max_new_tokens=new_tokens)


def generate(model: nn.Module, tokenizer, prompts: list[str] | None, seeds: list[int],
             sampling: Sampling, plan: Plan | None = None, batch_size: int = 50,
             progress: bool = True) -> list[str]:
    """Texts for each (prompt, seed) pair, as generated (strip them to show them); `prompts=None`
    means BOS only (unconditional)."""
    if prompts is None:
        encoded = [[start_token(tokenizer)] for _ in seeds]
    else:
        encoded = [tokenizer(p, add_special_tokens=True)["input_ids"] for p in prompts]
    encoded, sampling = fit_context(encoded, sampling, context_length(model, tokenizer))
    special = special_ids(tokenizer)
    texts: list[str] = []
    with bar("generating", len(seeds), progress) as progress_bar:
        for lo in range(0, len(seeds), batch_size):
            ids = generate_batch(model, tokenizer, encoded[lo : lo + batch_size],
                                 seeds[lo : lo + batch_size], sampling, plan)
            texts += [decode(tokenizer, seq, sampling.stop_at_newline, special) for seq in ids]
            progress_bar.advance(len(ids))
    return texts
