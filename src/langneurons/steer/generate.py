"""Batched generation with a KV cache, reproducible per seed, under an optional steering plan.

Unconditional: prompt = BOS only, temperature 0.8, top-p 0.9, 64 new tokens (docs/method.md §6);
translation: greedy, 128 new tokens, output = the first line after the prompt; a `stop` string
ends an answer where it first appears (e.g. "\nQ:" after a Q/A prompt). Each sample draws
its randomness from its own seed (one uniform per step), so a seed gives the same text whatever
batch it runs in, as long as the model returns the same logits for it (true on CPU float32 in
our tests; GPU kernels may differ in the last bits across batch shapes).
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch
from torch import nn

from ..errors import LangneuronsError
from ..model import context_length, input_device, left_pad
from ..progress import bar
from .apply import Plan, steer
from .rules import (
    GuardOpening,
    NoLoops,
    SentenceStart,
    WholeCharacters,
    byte_values,
    eos_ids,
    next_byte,
    special_ids,
    trailing_bytes,
)


@dataclass(frozen=True)
class Sampling:
    """How to pick each next token."""

    max_new_tokens: int = 64
    temperature: float = 0.8
    top_p: float = 0.9
    greedy: bool = False
    stop_at_newline: bool = False
    stop: tuple[str, ...] = ()  # strings that end the answer (not kept in it)

    def __post_init__(self) -> None:
        object.__setattr__(self, "stop", tuple(self.stop))
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens {self.max_new_tokens}: must be 1 or more")
        if not self.greedy and not (self.temperature > 0 and 0 < self.top_p <= 1):
            raise ValueError(f"temperature {self.temperature} / top_p {self.top_p}: a temperature above 0 "
                             "and a top-p in (0, 1], or greedy")
        if any(not s for s in self.stop):
            raise ValueError("stop: an empty string would end every answer at once")

    def cut(self, text: str) -> str:
        """`text` up to its first stop string (its first line with `stop_at_newline`)."""
        for stop in self.stop:
            text = text.split(stop)[0]
        return text.split("\n")[0] if self.stop_at_newline else text


UNCONDITIONAL = Sampling()
TRANSLATION = Sampling(max_new_tokens=128, greedy=True, stop_at_newline=True)


@dataclass(frozen=True)
class SamplingChanges:
    """Sampling options a user gave, laid over each mode's own sampling (None: the mode's own), so one
    set of options can serve unforced text, translations and prompts alike."""

    max_new_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    greedy: bool | None = None
    stop: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.stop is not None:
            object.__setattr__(self, "stop", tuple(self.stop))

    @property
    def given(self) -> dict:
        """The options given, by name."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    def on(self, base: Sampling) -> Sampling:
        """`base` with these options in place of its own."""
        try:
            return replace(base, **self.given)
        except ValueError as exc:
            raise LangneuronsError(f"sampling options: {exc}") from None


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


def newline_ids(tokenizer, ids: set[int], cache: dict[int, bool]) -> set[int]:
    """Those of `ids` whose text holds a newline (`cache` remembers each token's answer)."""
    for token in ids - cache.keys():
        cache[token] = "\n" in tokenizer.decode([token])
    return {t for t in ids if cache[t]}


@torch.inference_mode()
def generate_batch(model: nn.Module, tokenizer, prompts: list[list[int]], seeds: list[int],
                   sampling: Sampling, plan: Plan | None = None) -> list[list[int]]:
    """New token ids for each prompt (left-padded into one batch), stopping at EOS/newline/a stop string."""
    device = input_device(model)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    input_ids, mask, positions = left_pad(prompts, pad, device)
    width = input_ids.shape[1]
    rngs = [np.random.default_rng(seed) for seed in seeds]
    eos = eos_ids(tokenizer)
    newline_cache: dict[int, bool] = {}
    out: list[list[int]] = [[] for _ in prompts]
    done = np.zeros(len(prompts), bool)
    rows = list(range(len(prompts)))  # the prompts still being answered, in batch order
    params = inspect.signature(model.forward).parameters
    last_only = {"logits_to_keep": 1} if "logits_to_keep" in params else {}
    cache_arg = "cache" if "cache" in params else "past_key_values"  # renamed in transformers 5
    rereads = plan.rereads if plan is not None else set()
    start = SentenceStart(plan.starts, width) if plan is not None and plan.starts is not None else None
    guard = GuardOpening(tokenizer, width)  # applied while the steering says the opening is guarded
    whole = WholeCharacters(tokenizer, width) if plan is not None and plan.whole_characters else None
    unloop = NoLoops(tokenizer, width) if plan is not None and plan.no_loops else None
    with steer(model, plan) as steering, tall_logits(model):
        result = model(input_ids=input_ids, attention_mask=mask, position_ids=positions,
                       use_cache=True, **last_only)
        for step in range(sampling.max_new_tokens):
            draws = np.array([rng.random() for rng in rngs])
            logits = result.logits[:, -1, :]
            if start is not None:
                logits = start(input_ids, logits)
            if steering.guarded:
                logits = guard(input_ids, logits)
            if whole is not None:
                logits = whole(input_ids, logits)
            if unloop is not None:
                logits = unloop(input_ids, logits)
            cooler = steering.temperature
            chosen = next_tokens(logits, sampling if cooler is None else replace(sampling, temperature=cooler), draws)
            tokens = chosen.tolist()
            stops = eos | (newline_ids(tokenizer, set(tokens), newline_cache) if sampling.stop_at_newline else set())
            for row, token in zip(rows, tokens):
                out[row].append(token)
                done[row] = token in stops or stopped(tokenizer, out[row], sampling.stop)
            if done.all() or step + 1 == sampling.max_new_tokens:
                break
            cache = result.get("cache") or result.get("past_key_values")
            going = [i for i, row in enumerate(rows) if not done[row]]
            if len(going) < len(rows) and hasattr(cache, "batch_select_indices"):
                # finished answers leave the batch: their rows cost a full step each (the 262k-token
                # head of Gemma-3 above all); a row's samples depend only on its own draws
                keep = torch.tensor(going, device=device)
                cache.batch_select_indices(keep)
                rows, rngs = [rows[i] for i in going], [rngs[i] for i in going]
                input_ids, mask, positions, chosen = input_ids[keep], mask[keep], positions[keep], chosen[keep]
            mask = torch.cat([mask, mask.new_ones((len(rows), 1))], dim=1)
            input_ids = torch.cat([input_ids, chosen[:, None].to(device)], dim=1)
            steering.fed = step + 1
            if steering.fed in rereads:  # a prefix:K opening is written: read it all again, unedited
                positions = (mask.cumsum(-1) - 1).clamp(min=0)
                steering.rereading = True
                result = model(input_ids=input_ids, attention_mask=mask, position_ids=positions,
                               use_cache=True, **last_only)
                steering.rereading = False
                positions = positions[:, -1:]
                continue
            positions = positions[:, -1:] + 1
            result = model(input_ids=chosen[:, None].to(device), attention_mask=mask, position_ids=positions,
                           use_cache=True, **{cache_arg: cache})
    return out


def stopped(tokenizer, ids: list[int], stops: tuple[str, ...]) -> bool:
    """Whether the text of `ids` holds a stop string (decoding the last 64 tokens is enough for any
    stop string of up to 64 characters)."""
    return bool(stops) and any(stop in tokenizer.decode(ids[-64:]) for stop in stops)


def without_cut_character(tokenizer, ids: list[int]) -> list[int]:
    """`ids` less the byte tokens of a last character left unfinished (cut by the token limit):
    a byte-fallback decoder turns the whole run of byte tokens it ends into "�", e.g. 20 ideographic
    spaces (`<0xE3><0x80><0x80>` each) and a cut one become 62 "�"."""
    values = byte_values(tokenizer)
    while (tail := trailing_bytes(values, ids)) and next_byte(tail) is not None:
        ids = ids[:-1]
    return ids


def decode(tokenizer, ids: list[int], sampling: Sampling, special: set[int]) -> str:
    """Text of generated ids without special/added control tokens (Gemma keeps `<start_of_image>`)
    and without a last character cut short; whitespace kept (a trailing run of blanks is a sign
    of degenerate output, `evaluate.padding`)."""
    text = tokenizer.decode(without_cut_character(tokenizer, [i for i in ids if i not in special]),
                            skip_special_tokens=True)
    text = text.replace("<start_of_image>", "").replace("<end_of_image>", "")
    return sampling.cut(text)


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
             progress: bool = True, special_tokens: bool = True) -> list[str]:
    """Texts for each (prompt, seed) pair, as generated (strip them to show them); `prompts=None`
    means BOS only (unconditional); `special_tokens=False` for prompts that hold their own BOS (a
    chat template's)."""
    if prompts is None:
        encoded = [[start_token(tokenizer)] for _ in seeds]
    else:
        encoded = [tokenizer(p, add_special_tokens=special_tokens)["input_ids"] for p in prompts]
    encoded, sampling = fit_context(encoded, sampling, context_length(model, tokenizer))
    special = special_ids(tokenizer)
    texts: list[str] = []
    with bar("generating", len(seeds), progress) as progress_bar:
        for lo in range(0, len(seeds), batch_size):
            ids = generate_batch(model, tokenizer, encoded[lo : lo + batch_size],
                                 seeds[lo : lo + batch_size], sampling, plan)
            texts += [decode(tokenizer, seq, sampling, special) for seq in ids]
            progress_bar.advance(len(ids))
    return texts
