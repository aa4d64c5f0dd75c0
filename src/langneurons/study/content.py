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
from ..progress import bar
from ..steer.evaluate import recovery, shuffled_partners, source_logprobs
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


def validate(loaded: LoadedModel, language: str, batch_size: int = 16, progress: bool = True) -> pd.DataFrame:
    """One row per kind: the mean log-probability per token of the source given the answer, the content
    score of that set of answers (as steering results are scored), the share of its answers that beat a
    shuffled partner, and the share of sources for which the real translation beats this kind.
    Five passes: each kind's own pairing, and the shuffled pairing of the shuffled and the unrelated
    answers (that of the real answers is the shuffled kind itself)."""
    sources, answers = answers_of(language)
    template = content_template("translation", language)
    partners = shuffled_partners(sources)

    def logprobs(texts: list[str]) -> np.ndarray:
        return source_logprobs(loaded.model, loaded.tokenizer, texts, sources, template, batch_size)

    with bar(f"content check {language}", 5, progress) as done:
        own = {}
        for kind in KINDS:
            own[kind] = logprobs(answers[kind])
            done.advance()
        other = {"real": own["shuffled"]}
        for kind in KINDS[1:]:
            other[kind] = logprobs([answers[kind][j] for j in partners])
            done.advance()
    rows = []
    for kind in KINDS:
        score = recovery(own[kind], other[kind])
        rows.append({"language": language, "kind": kind, "pairs": len(sources), "logprob": score["content_real"],
                     "content": score["content"], "recovered": score["content_recovered"],
                     "real_ranks_above": float("nan") if kind == "real" else float(np.mean(own["real"] > own[kind]))})
    return pd.DataFrame(rows)
