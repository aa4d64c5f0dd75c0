"""Does the content score tell real translations from fluent text that says something else?
(docs/steering.md, "Content score").

On the built-in held-out pairs, three kinds of answer in the target language are scored against the
same English sources: the real translation, another pair's translation (shuffled), and unrelated
fluent sentences of the language (the corpus' `find` part). A usable score ranks the real ones
first, for most sources and on average.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..data import builtin_groups
from ..model import LoadedModel
from ..steer.evaluate import content_score, shuffled_partners, target_logprobs
from ..steer.task import content_template

KINDS = ("real", "shuffled", "unrelated")


def answers_of(language: str) -> tuple[list[str], dict[str, list[str]]]:
    """The English sources of the held-out pairs and, per kind, the answer each is scored with."""
    held = [g for g in builtin_groups() if g["split"] == "heldout"]
    others = [g[language] for g in builtin_groups() if g["split"] == "find"]
    sources, real = [g["en"] for g in held], [g[language] for g in held]
    partners = shuffled_partners(sources)
    step = max(1, len(others) // len(held))
    return sources, {"real": real, "shuffled": [real[j] for j in partners],
                     "unrelated": [others[(i * step) % len(others)] for i in range(len(held))]}


def validate(loaded: LoadedModel, language: str, batch_size: int = 16) -> pd.DataFrame:
    """One row per kind: the mean log-probability per token of the source given the answer, the content
    score of that set of answers (as steering results are scored), the share of its answers that beat a
    shuffled partner, and the share of sources for which the real translation beats this kind."""
    sources, answers = answers_of(language)
    template = content_template("translation", language)
    model, tokenizer = loaded.model, loaded.tokenizer
    real = target_logprobs(model, tokenizer, [template.format(answer=a) for a in answers["real"]], sources, batch_size)
    rows = []
    for kind in KINDS:
        score = content_score(model, tokenizer, answers[kind], sources, template, batch_size)
        rows.append({"language": language, "kind": kind, "pairs": len(sources), "logprob": score["content_real"],
                     "content": score["content"], "recovered": score["content_recovered"],
                     "real_ranks_above": float("nan") if kind == "real" else float(np.mean(
                         real > target_logprobs(model, tokenizer, [template.format(answer=a) for a in answers[kind]],
                                                sources, batch_size)))})
    return pd.DataFrame(rows)
