"""Steering on prompts: one sample per prompt and seed under a setting, and the task's scores:
language (share, line-level pass rate, English leakage), content (chrF/BLEU against references,
the reference-free content score) and fluency (degenerate share, perplexity) (docs/steering.md,
"Steering on prompts").

The trap: content is judged by the *unedited* model (no plan), or a setting could grade its own
answers.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..errors import LangneuronsError
from .evaluate import BACK_TRANSLATION, REQUEST_RECOVERY, content_score, perplexity
from .generate import TRANSLATION, Sampling, generate
from .intervene import Setting
from .prompts import TURNS, Prompt, language_name
from .steerable import Steerable, sample_record, score_cell

PROMPTED = Sampling(stop=TURNS)  # the paper's sampling, ended where a Q/A transcript's next turn starts
# the paper's translation decoding, the first line within 64 tokens: the longest built-in reference is 52
TRANSLATING = replace(TRANSLATION, max_new_tokens=64)


def prompt_records(steerable: Steerable, setting: Setting, prompts: list[Prompt], seeds: list[int],
                   sampling: Sampling, mode: str = "prompts", batch_size: int = 50,
                   progress: bool = True) -> list[dict]:
    """One sample per prompt and seed (prompt-major), under `setting`; each record carries the prompt's
    id, text, reference and source."""
    if not prompts:
        raise LangneuronsError("no prompts to generate from")
    if len({p.special_tokens for p in prompts}) > 1:
        raise LangneuronsError("prompts mix chat-templated and plain texts; template all or none")
    lm, ivs = steerable.loaded, list(setting.interventions)
    plan = steerable.plan(ivs, setting.decoding)
    pairs = [(p, seed) for p in prompts for seed in seeds]
    texts = generate(lm.model, lm.tokenizer, [p.text for p, _ in pairs], [s for _, s in pairs], sampling, plan,
                     batch_size, progress, special_tokens=prompts[0].special_tokens)
    return [sample_record(ivs, setting.decoding, mode, seed, p.record(), raw)
            for (p, seed), raw in zip(pairs, texts)]


def content_template(mode: str, language: str) -> str:
    """How the unedited model is asked to recover the source: back-translation for translations, the
    request behind the answer for prompts."""
    return BACK_TRANSLATION.replace("{name}", language_name(language)) if mode == "translation" else REQUEST_RECOVERY


def task_scores(records: list[dict], language: str, steerable: Steerable | None = None,
                batch_size: int = 16, content: bool = True, ppl: bool = True) -> dict:
    """Every score of a set of prompted samples: those of `score_cell` (share, line-level pass rate,
    leakage, fluency, chrF/BLEU when every record has a reference) and, with the run's model, the
    answers' perplexity (`ppl`) and the content score (`content`; of the source, else the prompt)."""
    references = [r["reference"] for r in records] if records and all("reference" in r for r in records) else None
    texts = [r["text"] for r in records]
    row = score_cell(records, language, references)
    if steerable is None:
        return row
    lm = steerable.loaded
    if ppl:
        written = [t for t in texts if t.strip()]
        row["generated_ppl"] = perplexity(lm.model, lm.tokenizer, written, batch_size=batch_size) if written else np.inf
    sources = [r.get("source") or r.get("prompt") for r in records]  # a user's prompt is its own source
    if content and records and all(sources):
        template = content_template(records[0].get("mode", "prompts"), language)
        on_target = [r.get("lang") == language for r in records]
        row.update(content_score(lm.model, lm.tokenizer, texts, sources, template, batch_size, on_target))
    return row

