"""A finished run with its model loaded (`Steerable`), and generating and scoring samples under
interventions: what `generate`, the sweep and the frontiers share (docs/method.md §5–7).

Samples and scores carry a schema version; those an older version wrote are migrated or made again
(`schema.migrate`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch

from ..data import load_corpus
from ..errors import LangneuronsError
from ..find.diffmean import FILE as DIRECTIONS
from ..find.diffmean import Directions
from ..find.info import RunInfo, load_run
from ..find.tables import lape_sizes, load_activation
from ..io import read_jsonl, write_jsonl
from ..model import LoadedModel, find_blocks, load_model
from ..schema import SCHEMAS, migrate
from ..sites import block_name
from .apply import Plan, resolve
from .decoding import Decoding
from .evaluate import (
    bootstrap_ci,
    detect_language,
    fluency,
    is_degenerate,
    language_share,
    padding,
    translation_scores,
)
from .generate import (
    UNCONDITIONAL,
    Sampling,
    generate,
)
from .intervene import Intervention
from .lines import english_leakage, line_pass_rate
from .named import KINDS, NamedDirections, compute, directable
from .prompts import example_turns
from .rules import sentence_starts


@dataclass
class Steerable:
    """A finished run with its model loaded: what generation and evaluation need."""

    run: Path
    info: RunInfo
    expertise: pd.DataFrame | None  # None for a `find --method lape` run
    loaded: LoadedModel
    activation: pd.DataFrame | None = None  # the activation sites' table of a run with LAPE
    directions: Directions | None = None  # the language directions of a run with DiffMean
    named: dict[str, NamedDirections] = field(default_factory=dict)  # by kind, made on first use (`named_directions`)

    @property
    def site_records(self) -> list[dict]:
        """Every module an intervention may edit: the linears, and the activations with LAPE."""
        return self.info.site_records

    @property
    def widths(self) -> dict[str, int]:
        return {s["name"]: s["width"] for s in self.site_records}

    @cached_property
    def start_sets(self) -> dict[str | None, torch.Tensor]:
        return {}  # language (None: all) → its sentence starts, made once

    def example_turns(self, language: str) -> tuple[tuple[str, str], ...]:
        """Two example turns answered in `language` with the run's own sentences of it (prompts.example_turns)."""
        return example_turns(language, [s["text"] for s in read_jsonl(self.run / "sentences.jsonl")
                                        if s["lang"] == language])

    def sentence_starts(self, language: str | None = None) -> torch.Tensor:
        """Which tokens may open a text under the start rule, from the run's sentences: all languages',
        or `language`'s alone."""
        if language not in self.start_sets:
            texts = [s["text"] for s in read_jsonl(self.run / "sentences.jsonl")
                     if language is None or s["lang"] == language]
            if not texts:
                raise LangneuronsError(f"own_starts: the run has no sentences of {language!r} to take starts from")
            self.start_sets[language] = sentence_starts(self.loaded.tokenizer, texts)
        return self.start_sets[language]

    def plan(self, interventions: list[Intervention], decoding: Decoding | None = None) -> Plan | None:
        """The edits of `interventions` and the rules of `decoding`; None when they change nothing
        (N = 0 edits nothing, but the decoding rules hold)."""
        decoding = decoding or Decoding()
        if not (any(iv.n > 0 for iv in interventions) or decoding.active):
            return None
        block_of = {s["name"]: s["block"] for s in self.site_records}
        starts = None
        if decoding.start:
            languages = {iv.language for iv in interventions}
            if decoding.own_starts and len(languages) != 1:
                raise LangneuronsError(f"own_starts: the interventions steer {sorted(languages)}; the target "
                                       "language's sentence starts need one language")
            target = languages.pop() if decoding.own_starts else None
            starts = self.sentence_starts(target)
            if decoding.distinct_starts:
                if target == "en" or "en" not in self.info.languages:
                    raise LangneuronsError(f"distinct_starts: leaves out the starts of the run's English sentences; "
                                           f"{'the target is English' if target == 'en' else 'the run has none'}")
                starts = starts & ~self.sentence_starts("en")
        named = {kind: self.named_directions(kind, sorted({iv.language for iv in interventions if iv.method == kind}))
                 for kind in KINDS if any(iv.method == kind for iv in interventions)}
        return resolve(interventions, self.expertise, self.widths, block_of, self.activation, starts, decoding,
                       self.directions, named)

    def named_directions(self, kind: str = "named", languages: list[str] | None = None) -> NamedDirections:
        """The run's prompt-state directions of `kind` (steer/named.py) for `languages` (default: all that
        have one), each language's computed on first use and added to the stored file."""
        known = self.named.get(kind) or NamedDirections.read(self.run, kind, self.info.fingerprint)
        wanted = directable(kind, list(self.info.languages) if languages is None else languages)
        missing = [language for language in wanted if known is None or language not in known.languages]
        self.named[kind] = known
        if missing:
            path, blocks = find_blocks(self.loaded.model)
            names = tuple(block_name(path, i) for i in range(len(blocks)))
            for made in compute(self.loaded, self.run, names, missing, kind, self.info.fingerprint).values():
                self.keep_directions(made)  # shots and answer come together: both are kept
        return self.named[kind]

    def keep_directions(self, made: NamedDirections) -> None:
        """Add `made`'s languages that the run's stored directions of its kind lack, and store them."""
        known = self.named.get(made.kind) or NamedDirections.read(self.run, made.kind, self.info.fingerprint)
        new = [language for language in made.languages if known is None or language not in known.languages]
        if new:
            known = made.of(new) if known is None else known.joined(made.of(new))
            known.write(self.run)
        self.named[made.kind] = known


def open_run(run: Path, device: str = "auto", dtype: str | None = None,
             loaded: LoadedModel | None = None, trust_remote_code: bool = False,
             device_map: str | None = None) -> Steerable:
    """Load a RUN folder (AP and/or LAPE results) and the model it was made with (sharded by
    `device_map` if given)."""
    activation = load_activation(run)
    no_ap = not (Path(run) / "expertise.parquet").exists()
    if no_ap and (activation is not None or (Path(run) / DIRECTIONS).exists()):  # --method lape or diffmean
        info, expertise = RunInfo.read(run), None
    else:
        info, expertise = load_run(run)
    directions = Directions.read(run) if info.diffmean is not None else None
    loaded = loaded or load_model(info.model, device, dtype or info.dtype, trust_remote_code, device_map)
    return Steerable(Path(run), info, expertise, loaded, activation, directions)


def method_defaults(steerable: Steerable, method: str, language: str, n: int | None,
                    selection: str | None) -> tuple[int, str]:
    """N and selection when not given: 2000 and `both` for AP; for LAPE all of the language's
    LAPE neurons and `top` (lowest entropy first)."""
    if method != "lape":
        return (2000 if n is None else n), selection or "both"
    if steerable.activation is None:
        raise LangneuronsError(f"{steerable.run}: no LAPE results; run "
                               f"`langneurons find --method both --out {steerable.run}`")
    return (lape_sizes(steerable.activation).get(language, 0) if n is None else n), selection or "top"


MAX_SEEDS = 100_000  # a bound: `1-100000000` would fill the memory before any work


def parse_seeds(spec: str) -> list[int]:
    """`1-100` or `1,5,9` → list of seeds."""
    try:
        seeds: list[int] = []
        for part in spec.split(","):
            lo, _, hi = part.partition("-")
            if len(seeds) + (int(hi) - int(lo) + 1 if hi else 1) > MAX_SEEDS:
                raise LangneuronsError(f"--seeds {spec!r}: more than {MAX_SEEDS:,} seeds; use fewer")
            seeds += list(range(int(lo), int(hi) + 1)) if hi else [int(lo)]
    except ValueError:
        raise LangneuronsError(f"--seeds {spec!r}: use a range like 1-100 or a list like 1,2,3") from None
    if not seeds:
        raise LangneuronsError(f"--seeds {spec!r}: no seeds")
    return seeds


def sample_records(steerable: Steerable, ivs: list[Intervention], mode: str, seeds: list[int],
                   prompt: str | list[str] | None = None, batch_size: int = 50, progress: bool = True,
                   decoding: Decoding | None = None, sampling: Sampling = UNCONDITIONAL) -> list[dict]:
    """Generate one sample per seed (from BOS, or continuing `prompt`: one text for every seed or
    one per seed; drawn by `sampling`) under the edits of `ivs` and the rules of `decoding`. Prompts
    with ids, references or a chat template: `task.prompt_records`."""
    decoding = decoding or Decoding()
    lm, plan = steerable.loaded, steerable.plan(ivs, decoding)
    prompts = [prompt] * len(seeds) if isinstance(prompt, str) else prompt
    texts = generate(lm.model, lm.tokenizer, prompts, seeds, sampling, plan, batch_size, progress)
    return [sample_record(ivs, decoding, mode, seed, {"prompt": "<bos>" if prompts is None else prompts[i]}, raw)
            for i, (seed, raw) in enumerate(zip(seeds, texts))]


def sample_record(ivs: list[Intervention], decoding: Decoding, mode: str, seed: int, prompt: dict,
                  raw: str) -> dict:
    """One sample as stored: its setting, its prompt's fields, its text (stripped), the length of the
    blank run it ended in and its detected languages."""
    text = raw.strip()
    top = detect_language(text, k=3)
    return {"schema": SCHEMAS["samples"], "setting": [iv.to_dict() for iv in ivs], "decoding": decoding.to_dict(),
            "mode": mode, "seed": seed, **prompt, "text": text, "padding": padding(raw),
            "lang": top[0][0], "lang_prob": round(top[0][1], 6), "lang_top3": [[l, round(p, 6)] for l, p in top]}


def stored_samples(path: Path, make: Callable[[], list[dict]]) -> list[dict]:
    """The samples at `path`, else `make()`'s, written there first: a finished cell is not generated
    again, and unforced (N = 0) samples, the same for every language, are generated once. Samples
    an older version stored are migrated, or made again where they cannot be (`schema.migrate`)."""
    stored = current_samples(read_jsonl(path) if path.exists() else [])
    if stored:
        return stored
    records = make()
    write_jsonl(path, records)
    return records


def score_cell(records: list[dict], language: str, references: list[str] | None) -> dict:
    """Target share, languages, the line-level pass rate, English leakage (zh/ja) and fluency of a cell's
    samples, and chrF/BLEU against `references`; `usable_share`: the share that is in the target
    language and not degenerate (both at once, per sample)."""
    texts, paddings = [r["text"] for r in records], [r.get("padding", 0) for r in records]  # unknown: 0
    share = language_share(texts, language)
    usable = np.array([top == language and not is_degenerate(t, p)
                       for top, t, p in zip(share["tops"], texts, paddings)], float)
    low, high = bootstrap_ci(usable)
    row = {"target_share": share["target_share"], "target_low": share["target_low"],
           "target_high": share["target_high"], "languages": json.dumps(share["languages"]),
           "samples": len(texts), **fluency(texts, language, paddings),
           "usable_share": float(usable.mean()) if len(texts) else 0.0, "usable_low": low, "usable_high": high,
           "lpr": line_pass_rate(texts, language), "english_leakage": english_leakage(texts, language)}
    if references is not None:
        row.update(translation_scores(texts, references, language))
    return row


def current_samples(records: list[dict]) -> list[dict]:
    """Stored samples at this version's schema; [] when there are none or some must be made again."""
    migrated = [migrate("samples", r) for r in records]
    return migrated if migrated and all(r is not None for r in migrated) else []


def current_score(path: Path) -> dict | None:
    """The metrics stored at `path` at this version's schema, else None: missing, or to be scored
    again (`schema.migrate`)."""
    return migrate("score", json.loads(path.read_text())) if path.exists() else None


def heldout_sentences(language: str, limit: int) -> list[str]:
    corpus = load_corpus("builtin:heldout")
    if language not in corpus.positives:
        raise LangneuronsError(f"no held-out sentences for {language} in the built-in corpus")
    return corpus.positives[language][:limit]
