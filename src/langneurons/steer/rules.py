"""Decoding rules: which tokens the next sample may not be, as transformers `LogitsProcessor`s.

Each rule bans tokens by setting their scores to -inf: `GuardOpening` (an opening of words, none
repeated), `WholeCharacters` (no token that puts "�" in the text), `NoLoops` (no unit of tokens
repeated on and on) and `SentenceStart` (the first new token is one that opens sentences). They
plug into `model.generate(logits_processor=...)` as well as into `generate.generate_batch`. The trap: guard and whole characters look at the tokens
*written so far* in each row, the new tokens only: a processor is told the (left-padded) prompt
width, and a row's tokens after its first EOS are no longer written (`generate` appends pads or
samples there, which must not change the rule).
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections import Counter
from functools import lru_cache

import numpy as np
import torch
from transformers import LogitsProcessor


def special_ids(tokenizer) -> set[int]:
    """Ids of special tokens, including added ones marked special."""
    return set(tokenizer.all_special_ids) | {
        i for i, t in getattr(tokenizer, "added_tokens_decoder", {}).items() if t.special}


def eos_ids(tokenizer) -> set[int]:
    """The tokenizer's end-of-sequence ids (none, one or several)."""
    return {int(t) for t in np.atleast_1d(tokenizer.eos_token_id or [])}


def written(input_ids: torch.Tensor, prompt_width: int, eos: set[int]) -> list[list[int]]:
    """Each row's new tokens (after `prompt_width`), up to and including its first EOS."""
    rows = input_ids[:, prompt_width:].tolist()
    return [row[: next((i + 1 for i, t in enumerate(row) if t in eos), len(row))] for row in rows]


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


LOOP_PERIOD = 8  # the longest unit of tokens `no_loops` looks for
LOOP_REPEATS = {1: 4}  # a unit of this many tokens may be written only this many times - 1 in a row; else 3


def no_loops(logits: torch.Tensor, written: list[list[int]]) -> torch.Tensor:
    """`logits` [batch, vocab] with, in each row, every token banned that would begin one more copy of
    a unit its last tokens already repeat: a unit of 2-8 tokens a third time in a row, one token a
    fourth time ("准准准准…", "der der der …"). Only the written tokens count, not the prompt."""
    logits = logits.clone()
    for row, tokens in enumerate(written):
        banned = set()
        for period in range(1, LOOP_PERIOD + 1):
            length = period * (LOOP_REPEATS.get(period, 3) - 1)  # the copies already allowed
            tail = tokens[-length:]
            if len(tail) == length and tail[period:] == tail[:-period]:
                banned.add(tail[0])  # the unit's next copy would begin where the tail begins
        if banned:
            logits[row, sorted(banned)] = float("-inf")
    return logits


class GuardOpening(LogitsProcessor):
    """`guard_opening` as a logits processor: the first `length` new tokens (None: all of them) are
    words, none repeating another."""

    def __init__(self, tokenizer, prompt_width: int, length: int | None = None) -> None:
        self.tokenizer, self.prompt_width, self.length = tokenizer, prompt_width, length
        self.eos = eos_ids(tokenizer)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.length is not None and input_ids.shape[-1] - self.prompt_width >= self.length:
            return scores
        return guard_opening(scores, written(input_ids, self.prompt_width, self.eos), self.tokenizer)


class WholeCharacters(LogitsProcessor):
    """`whole_characters` as a logits processor: no new token puts "�" in the text."""

    def __init__(self, tokenizer, prompt_width: int) -> None:
        self.tokenizer, self.prompt_width = tokenizer, prompt_width
        self.eos = eos_ids(tokenizer)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        return whole_characters(scores, written(input_ids, self.prompt_width, self.eos), self.tokenizer)


class NoLoops(LogitsProcessor):
    """`no_loops` as a logits processor: no new token starts another copy of a repeated unit."""

    def __init__(self, tokenizer, prompt_width: int) -> None:
        self.prompt_width, self.eos = prompt_width, eos_ids(tokenizer)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        return no_loops(scores, written(input_ids, self.prompt_width, self.eos))


class SentenceStart(LogitsProcessor):
    """`sentence_start` as a logits processor: the first new token is one of `starts`."""

    def __init__(self, starts: torch.Tensor, prompt_width: int) -> None:
        self.starts, self.prompt_width = starts, prompt_width

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        return sentence_start(scores, self.starts) if input_ids.shape[-1] == self.prompt_width else scores
