"""The resumable sweep (docs/method.md §5–7).

A sweep cell is one (mode, language, selection, N, value, positions) setting: its samples go to
`RUN/sweep/<cell>.jsonl` and its metrics to `RUN/sweep/<cell>.json`; `RUN/sweep.parquet` and
`.csv` gather all finished cells. Finished cells are skipped on rerun. N = 0 is generated once per
mode and scored for every language.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..errors import LangneuronsError
from ..io import check_run_languages, write_json, write_table
from ..lock import run_lock
from ..progress import console
from ..schema import SCHEMAS
from .evaluate import (
    perplexity,
)
from .generate import TRANSLATION, UNCONDITIONAL, Sampling, SamplingChanges
from .intervene import Intervention, Setting
from .prompts import Prompt, framed, load_prompts, translation_prompts
from .steerable import (
    Steerable,
    current_score,
    heldout_sentences,
    sample_records,
    score_cell,
    stored_samples,
)
from .task import PROMPTED, prompt_records, task_scores

MODES = ("unconditional", "translation", "prompts")


@dataclass(frozen=True)
class SweepSettings:
    """The cells of a sweep: modes × languages × selections × Ns (N = 0 once), each with the same
    value, positions and method, on `seeds` (unconditional), the translation pairs of `translate` (one
    sample each, seed 0), or `prompts` × `seeds` (prompts: a `--prompts` spec; `requests`: the built-in
    requests for each cell's language). `sampling` changes each mode's own sampling; `chat_template`
    puts translation prompts and prompts in the tokenizer's chat template."""

    languages: tuple[str, ...]
    ns: tuple[int, ...]
    selections: tuple[str, ...]
    modes: tuple[str, ...]
    seeds: tuple[int, ...]
    value: str = "on_p50"
    positions: str = "all"
    translate: str = "heldout"
    translate_limit: int | None = None
    ppl_sentences: int = 50
    batch_size: int = 50
    method: str = "ap"
    prompts: str = "requests"
    sampling: SamplingChanges = SamplingChanges()
    chat_template: bool = False

    def __post_init__(self) -> None:
        for name in ("languages", "ns", "selections", "modes", "seeds"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        bad = [m for m in self.modes if m not in MODES]
        if bad:
            raise LangneuronsError(f"--modes: {bad} not in {', '.join(MODES)}")
        if self.batch_size < 1:
            raise LangneuronsError(f"--batch-size {self.batch_size}: must be 1 or more")
        if self.chat_template and set(self.modes) == {"unconditional"}:
            raise LangneuronsError("--chat-template: text from BOS has no prompt to template; use it with "
                                   "--modes translation or prompts")
        for mode in self.modes:
            self.sampling.on(self.default_sampling(mode))  # a bad option is named before any work

    def own_requests(self, mode: str) -> bool:
        """Whether a prompts cell answers the built-in requests of its own language."""
        return mode == "prompts" and self.prompts == "requests"

    def default_sampling(self, mode: str) -> Sampling:
        """A mode's own sampling: the paper's; translations greedy, their first line; the built-in
        requests ended where the transcript's next turn starts."""
        if mode == "translation":
            return TRANSLATION
        return PROMPTED if self.own_requests(mode) else UNCONDITIONAL

    def sampling_of(self, mode: str) -> Sampling:
        """How a mode's cells are sampled: its own sampling with the options given."""
        return self.sampling.on(self.default_sampling(mode))

    @property
    def cells(self) -> list[tuple[str, str, str, int]]:
        """(mode, language, selection, N) of every cell; N = 0 once per mode and language."""
        return [(m, l, s, n) for m in self.modes for l in self.languages for s in self.selections for n in self.ns
                if n > 0 or s == self.selections[0]]

    def prompts_of(self, mode: str, language: str, tokenizer) -> list[Prompt]:
        """The prompts of a translation or prompts cell, in the chat template when asked."""
        if mode == "translation":
            chosen = translation_prompts(language, self.translate, limit=self.translate_limit)
        else:
            chosen = load_prompts(f"requests:{language}" if self.own_requests(mode) else self.prompts)
        return framed(chosen, (), tokenizer if self.chat_template else None)

    def samples_from(self, mode: str) -> str:
        """Where a cell's samples come from: its seeds (unconditional), or its translation pairs (the
        source, its content when a file, and the limit), or its prompts and seeds; then the sampling
        options and the chat template, when given."""
        given = self.sampling.given
        return self.source_of(mode) + (f" sampling {json.dumps(given, sort_keys=True)}" if given else "") + (
            " chat-template" if self.chat_template and mode != "unconditional" else "")

    def source_of(self, mode: str) -> str:
        """The seeds, pairs or prompts a mode's cells are drawn from."""
        if mode == "prompts":
            spec = self.prompts
            if Path(spec).is_file():
                spec += f" sha256:{hashlib.sha256(Path(spec).read_bytes()).hexdigest()[:12]}"
            return f"prompts {spec} seeds " + ",".join(map(str, self.seeds))
        if mode == "translation":
            source = self.translate
            if source != "heldout" and Path(source).is_file():
                source += f" sha256:{hashlib.sha256(Path(source).read_bytes()).hexdigest()[:12]}"
            return source + ("" if self.translate_limit is None else f" limit {self.translate_limit}")
        seeds = self.seeds
        if seeds and seeds == tuple(range(seeds[0], seeds[-1] + 1)):
            return f"seeds {seeds[0]}-{seeds[-1]}"
        return "seeds " + ",".join(map(str, seeds))

    def suffix(self, mode: str) -> str:
        """The part of a cell's key that names its samples' source (`-from` and 8 hex digits): a rerun on
        other seeds, pairs or limit makes new cells. Keys of versions before it have no such part; their
        cells are not reused."""
        return "-from" + hashlib.sha256(self.samples_from(mode).encode()).hexdigest()[:8]

    def key(self, mode: str, language: str, selection: str, n: int) -> str:
        """A cell's file stem in RUN/sweep."""
        return f"{mode}-{language}-{selection}-{n}-{self.value}-{self.positions}".replace(":", "_") + (
            "-lape" if self.method == "lape" else "") + self.suffix(mode)


def sweep(steerable: Steerable, languages: list[str], ns: list[int], selections: list[str],
          modes: list[str], seeds: list[int], value: str = "on_p50", positions: str = "all",
          translate: str = "heldout", translate_limit: int | None = None, ppl_sentences: int = 50,
          batch_size: int = 50, progress: bool = True, method: str = "ap", prompts: str = "requests",
          sampling: SamplingChanges = SamplingChanges(), chat_template: bool = False) -> pd.DataFrame:
    """Run every cell not yet finished; return (and write) the table of all finished cells.

    `method="lape"` forces LAPE neurons; those cells get a `-lape` key (every cell names its `method`).
    The keywords are those of `SweepSettings` (see `sweep_with`).
    """
    settings = SweepSettings(languages, ns, selections, modes, seeds, value, positions, translate,
                             translate_limit, ppl_sentences, batch_size, method, prompts, sampling, chat_template)
    return sweep_with(steerable, settings, progress)


def sweep_with(steerable: Steerable, settings: SweepSettings, progress: bool = True) -> pd.DataFrame:
    """`sweep_locked` after checking the languages (as file-name labels and against the run's), with
    the RUN's lock held for the whole sweep (a second writer is refused at once)."""
    check_run_languages(list(settings.languages), list(steerable.info.languages), "--languages")
    with run_lock(steerable.run, "sweep"):
        return sweep_locked(steerable, settings, progress)


def sweep_locked(steerable: Steerable, settings: SweepSettings, progress: bool = True) -> pd.DataFrame:
    """`sweep` with its settings as one object."""
    folder, lm, cells = steerable.run / "sweep", steerable.loaded, settings.cells
    for index, (mode, lang, selection, n) in enumerate(cells, start=1):
        iv = Intervention(lang, n, selection, settings.value, settings.positions, method=settings.method)
        key = settings.key(mode, lang, selection, n)
        if current_score(folder / f"{key}.json") is not None:
            continue
        started = time.perf_counter()
        console.print(f"[{index}/{len(cells)}] {key}")
        own = settings.own_requests(mode)  # the prompts name the cell's language
        none = f"{mode}-none{'-' + lang if own else ''}{settings.suffix(mode)}.jsonl"
        samples_file = folder / (none if n == 0 else f"{key}.jsonl")
        if mode == "unconditional":
            records = stored_samples(samples_file, lambda: sample_records(
                steerable, [iv], mode, list(settings.seeds), None, settings.batch_size, progress,
                sampling=settings.sampling_of(mode)))
            scores = score_cell(records, lang, None)
        else:
            records = stored_samples(samples_file, lambda: prompt_records(
                steerable, Setting((iv,)), settings.prompts_of(mode, lang, lm.tokenizer),
                [0] if mode == "translation" else list(settings.seeds), settings.sampling_of(mode), mode,
                settings.batch_size, progress))
            if mode == "translation":
                scores = score_cell(records, lang, [r["reference"] for r in records])
            else:
                scores = task_scores(records, lang, steerable)
        row = {"schema": SCHEMAS["score"], "mode": mode, "language": lang, "selection": selection, "n": n,
               "value": settings.value, "positions": settings.positions, "method": settings.method,
               "samples_from": settings.samples_from(mode), **scores}
        if settings.ppl_sentences:
            held = heldout_sentences(lang, settings.ppl_sentences)
            row["perplexity"] = perplexity(lm.model, lm.tokenizer, held, steerable.plan([iv]))
        row["seconds"] = round(time.perf_counter() - started, 2)
        write_json(folder / f"{key}.json", row)
    return collect(steerable.run)


def collect(run: Path) -> pd.DataFrame:
    """Gather all finished cells of a run's sweep into sweep.parquet and sweep.csv."""
    rows = [current_score(p) for p in sorted((Path(run) / "sweep").glob("*.json"))]
    table = pd.DataFrame([row for row in rows if row is not None])
    if not table.empty:
        table = table.sort_values([c for c in ("mode", "language", "method", "selection", "n") if c in table],
                                  kind="stable")
        write_table(table, Path(run) / "sweep.parquet")
        write_table(table, Path(run) / "sweep.csv")
    return table
