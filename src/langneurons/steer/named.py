"""Prompt-state directions (docs/method.md §12): what a better prompt adds to the state at a
translation prompt's last token.

For language L and block ℓ, the mean output of block ℓ at the prompt's last token
- `named`: over the run's English sentences, with the prompt that names L ("Translate an English
  sentence into German. … German:") minus with the paper's prompt ("… Target Language:"). Added
  there (value `add:α`, α 1: the whole mean difference), it tells the model which language "Target
  Language" is.
- `shots`: with the named prompt after three worked examples (the built-in corpus' own translations,
  from the part `find` reads) minus without them, over English sentences of that part. Added there,
  it gives the named prompt some of what the examples give: translations closer to the source.
- `answer`: the same difference, but over the tokens of the answer (the sentence's reference
  translation, teacher-forced after the prompt) instead of the prompt's last token. Added on the
  generated answer, it carries the examples' effect on to every token the model writes. Both come
  from the same passes.
Computed once per run on first use and kept in RUN/named_directions.npz, RUN/shot_directions.npz and
RUN/answer_directions.npz.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data import BUILTIN_LANGUAGES, builtin_groups
from ..errors import LangneuronsError
from ..hooks import hooks
from ..io import NPZ_DAMAGE, read_jsonl, write_npz
from ..model import LoadedModel, input_device, left_pad
from ..progress import bar, console
from ..schema import SCHEMAS
from .prompts import LANGUAGE_NAMES, NAMED_PROMPT, PAPER_PROMPT, language_name

KINDS = ("named", "shots", "answer")
FILES = {"named": "named_directions.npz", "shots": "shot_directions.npz", "answer": "answer_directions.npz"}
FILE = FILES["named"]
SOURCES = 200  # English sentences (kind named) or built-in pairs (shots, answer) the means are taken over
SHOTS = 3  # worked examples before each prompt (kind shots)
DEPTH = 0.4  # the default block, as a share of the depth (7 of Gemma-3-270M's 18)


def nameable(languages: list[str]) -> list[str]:
    """The languages a prompt can name as a target (not English, and with a known English name)."""
    return [language for language in languages if language != "en" and language in LANGUAGE_NAMES]


def directable(kind: str, languages: list[str]) -> list[str]:
    """The languages that have a direction of `kind`: those a prompt can name; for `shots` and `answer`
    also in the built-in corpus, whose translations are the worked examples (and the answers)."""
    named = nameable(languages)
    return named if kind == "named" else [language for language in named if language in BUILTIN_LANGUAGES]


@dataclass(frozen=True)
class NamedDirections:
    """`vectors[i, ℓ]`: the mean state difference of `kind` (named minus paper's prompt, or with minus
    without the worked examples, at the prompt's last token or over the answer) of `languages[i]` at
    block ℓ (module `blocks[ℓ]`), made on the run whose fingerprint is `fingerprint`."""

    languages: tuple[str, ...]
    blocks: tuple[str, ...]
    vectors: np.ndarray  # [languages, blocks, hidden] float32
    kind: str
    fingerprint: str

    @property
    def hidden(self) -> int:
        return int(self.vectors.shape[-1])

    def vector(self, language: str, block: int) -> np.ndarray:
        if language not in self.languages:
            raise LangneuronsError(f"method {self.kind}: no direction for {language!r} (the run has "
                                   f"{', '.join(self.languages)})")
        if not 0 <= block < len(self.blocks):
            raise LangneuronsError(f"block {block}: this model has blocks 0-{len(self.blocks) - 1}")
        return self.vectors[self.languages.index(language), block]

    def of(self, languages: list[str]) -> "NamedDirections":
        """These directions for `languages` only (each one of these)."""
        vectors = np.stack([self.vectors[self.languages.index(language)] for language in languages])
        return NamedDirections(tuple(languages), self.blocks, vectors, self.kind, self.fingerprint)

    def joined(self, other: "NamedDirections") -> "NamedDirections":
        """These directions and `other`'s (the same kind, blocks and run), `other`'s languages after these."""
        if (other.kind, other.blocks, other.fingerprint) != (self.kind, self.blocks, self.fingerprint):
            raise LangneuronsError(f"method {self.kind}: directions of other blocks or of another run cannot be "
                                   "joined; delete the run's stored file and they are made again")
        return NamedDirections(self.languages + other.languages, self.blocks,
                               np.concatenate([self.vectors, other.vectors]), self.kind, self.fingerprint)

    def write(self, run: Path) -> None:
        write_npz(Path(run) / FILES[self.kind], schema=np.int64(SCHEMAS["named"]), languages=np.array(self.languages),
                  blocks=np.array(self.blocks), vectors=self.vectors, fingerprint=np.array(self.fingerprint))

    @classmethod
    def read(cls, run: Path, kind: str, fingerprint: str) -> "NamedDirections | None":
        """The stored directions of `kind`, or None when there are none of this version, the file is
        damaged, or it was made on another run than the one of `fingerprint` (a RUN folder that `find`
        wrote again, with another model or corpus): they are a cache, computed again on first use."""
        path = Path(run) / FILES[kind]
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                made_on = str(data["fingerprint"]) if "fingerprint" in data else None
                if int(data["schema"]) != SCHEMAS["named"] or made_on != fingerprint:
                    return None
                return cls(tuple(str(x) for x in data["languages"]), tuple(str(x) for x in data["blocks"]),
                           data["vectors"], kind, made_on)
        except NPZ_DAMAGE:
            return None


def mean_states(loaded: LoadedModel, blocks: tuple[str, ...], texts: list[str], answers: list[str] | None = None,
                batch_size: int = 16, progress: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """Mean output of each block, unedited, at each text's last token, and (`answers`) over the tokens
    of each text's answer, teacher-forced after it, from the same passes (the answer cannot change a
    state before it): two `[blocks, hidden]` arrays, the second None without answers."""
    model, tokenizer = loaded.model, loaded.tokenizer
    device = input_device(model)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    ends: dict[str, torch.Tensor] = {}
    spans: dict[str, torch.Tensor] = {}
    rows = tokenizer(texts, add_special_tokens=True)["input_ids"]
    tails = [0] * len(rows)  # how many answer tokens end each row
    if answers is not None:
        answered = tokenizer(answers, add_special_tokens=False)["input_ids"]
        rows, tails = [row + answer for row, answer in zip(rows, answered)], [len(answer) for answer in answered]
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))  # rows of like length together: less padding
    rows, tails = [rows[i] for i in order], [tails[i] for i in order]
    batch_tails: list[int] = []

    def add(total: dict[str, torch.Tensor], name: str, summed: torch.Tensor) -> None:
        total[name] = total[name] + summed.cpu() if name in total else summed.cpu()

    def keep(name: str):
        def fn(output) -> None:
            states = output[0] if isinstance(output, tuple) else output  # rows are left-padded: they end together
            add(ends, name, torch.stack([states[j, -tail - 1].float() for j, tail in enumerate(batch_tails)]).sum(0))
            if answers is not None:
                add(spans, name, torch.stack([states[j, -tail:].float().sum(0) for j, tail in enumerate(batch_tails)
                                              if tail]).sum(0))
        return fn

    watched = {name: keep(name) for name in blocks}
    last_only = {"logits_to_keep": 1} if "logits_to_keep" in inspect.signature(model.forward).parameters else {}
    with bar("states", len(rows), progress) as shown, hooks(model, watched), torch.inference_mode():
        for lo in range(0, len(rows), batch_size):
            batch_tails[:] = tails[lo : lo + batch_size]
            ids, mask, positions = left_pad(rows[lo : lo + batch_size], pad, device)
            model(input_ids=ids, attention_mask=mask, position_ids=positions, **last_only)  # no logits we do not read
            shown.advance(len(batch_tails))
    at_end = torch.stack([ends[name] for name in blocks]).numpy() / len(rows)
    return at_end, None if answers is None else torch.stack([spans[name] for name in blocks]).numpy() / sum(tails)


def compute(loaded: LoadedModel, run: Path, blocks: tuple[str, ...], languages: list[str], kind: str,
            fingerprint: str, progress: bool = True) -> dict[str, NamedDirections]:
    """The directions of `kind` for `languages` (those `directable`), carrying the run's fingerprint: the
    `named` ones from the first `SOURCES` English sentences of the run; the `shots` and `answer` ones
    together, from the same passes over the first `SOURCES` pairs of the built-in corpus' part `find`
    reads (the state at the prompt's last token, and over the answer teacher-forced after it)."""
    chosen = directable(kind, languages)
    sources = [s["text"] for s in read_jsonl(Path(run) / "sentences.jsonl") if s["lang"] == "en"][:SOURCES] \
        if kind == "named" else []
    if kind == "named" and not sources:
        raise LangneuronsError(f"method {kind}: {run} has no English sentences to build prompts from; "
                               "find with English among --languages")
    if progress:
        made = f"{kind} directions" if kind == "named" else "worked examples' directions (shots, answer)"
        over = f"{len(sources)} English sentences" if kind == "named" else f"{SOURCES} built-in pairs"
        console.print(f"{made} of {', '.join(chosen)} over {over}")

    def named(language: str, texts: list[str]) -> list[str]:
        return [NAMED_PROMPT.format(name=language_name(language), source=s) for s in texts]

    def made(kind: str, vectors: list[np.ndarray]) -> NamedDirections:
        return NamedDirections(tuple(chosen), blocks, np.stack(vectors).astype(np.float32), kind, fingerprint)

    if kind == "named":  # the paper's prompt names no language: its states are the same for all
        paper, _ = mean_states(loaded, blocks, [PAPER_PROMPT.format(source=s) for s in sources], progress=progress)
        return {"named": made("named", [mean_states(loaded, blocks, named(language, sources), progress=progress)[0]
                                        - paper for language in chosen])}
    shots, answer = [], []
    for language in chosen:  # the answers are the pairs' own translations, each after its prompt
        pool = example_pool(language)
        english, answers = [g["en"] for g in pool[:SOURCES]], [f" {g[language]}" for g in pool[:SOURCES]]
        shown = [worked_examples(language, source, i, pool) + prompt
                 for i, (source, prompt) in enumerate(zip(english, named(language, english)))]
        with_end, with_answer = mean_states(loaded, blocks, shown, answers, progress=progress)
        bare_end, bare_answer = mean_states(loaded, blocks, named(language, english), answers, progress=progress)
        shots.append(with_end - bare_end)
        answer.append(with_answer - bare_answer)
    return {"shots": made("shots", shots), "answer": made("answer", answer)}


def example_pool(language: str) -> list[dict]:
    """The built-in corpus' groups that worked examples in `language` are drawn from: those of the part
    `find` reads."""
    return [g for g in builtin_groups() if g["split"] == "find" and language in g]


def worked_examples(language: str, source: str, index: int, pool: list[dict]) -> str:
    """`SHOTS` named prompts answered with translations of `pool` (`example_pool`; a different run of
    them for each `index`, never `source` itself), each followed by a blank line."""
    groups = [g for g in pool if g["en"] != source]
    chosen = [groups[(index * SHOTS + j) % len(groups)] for j in range(SHOTS)]
    return "".join(NAMED_PROMPT.format(name=language_name(language), source=g["en"]) + f" {g[language]}\n\n"
                   for g in chosen)
