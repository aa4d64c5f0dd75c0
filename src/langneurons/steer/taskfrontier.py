"""The task frontier: which setting answers prompts in the target language *and* keeps their content
(docs/steering.md, "The task frontier").

Each setting answers one part of the prompts (`choose`) and is scored on language (share, or the
line-level pass rate for requests), content (chrF against references, else the content score) and
fluency (degenerate share, the answers' perplexity). Baselines are scored beside it: the unforced
model on each prompt style (for translation: the paper's prompt and one that names the target; for
prompts: the prompts as given, and after two example turns answered in the language) and the
paper's setting with the paper's prompt. The recommendation is made on `choose` and scored
again, with the baselines, on the held-out part. The trap: the part a setting is chosen on must
never be the part it is reported on.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path

import pandas as pd

from ..errors import LangneuronsError
from ..io import check_run_languages, read_jsonl, write_json, write_jsonl, write_table
from ..lock import run_lock
from ..progress import console
from ..schema import SCHEMAS
from .decoding import Decoding
from .diffmean import block_at, default_block, default_span
from .frontier import paper_setting, setting_of
from .generate import Sampling
from .intervene import DIRECTIONS, Intervention, Setting, load_interventions, save_interventions
from .named import DEPTH as NAMED_DEPTH
from .named import directable, nameable
from .pareto import UNEDITED, fill_setting_columns, pareto_front, same_setting, within_shape
from .prompts import (
    NAMED_PROMPT,
    Prompt,
    framed,
    in_split,
    language_name,
    load_prompts,
    translation_prompts,
)
from .steerable import Steerable, current_samples, current_score, sample_record
from .task import PROMPTED, TRANSLATING, prompt_records, task_scores

TASKS = ("translation", "prompts")
GOAL_DEGENERATE = 0.05
AXES = {"language_score": "max", "content_value": "max", "degenerate_share": "min"}  # the Pareto front's
STRENGTH = re.compile(rf"^((?:{'|'.join(DIRECTIONS)})-(?:add|clamp)):[0-9.]+")  # a direction's α or β in an edit's label


@dataclass(frozen=True)
class TaskStudy:
    """A task frontier of one language: `task` translation (pairs from `prompts`, default the built-in
    held-out ones; `named`: the prompt names the target) or prompts (a `--prompts` spec, default the
    built-in requests for the language; `examples`: chosen on the prompts after two example turns
    answered in the language); points chosen on the `choose` part and the choice scored
    again on `heldout` ("" for no second part); `limit`: only the first N prompts of each part (a
    faster, noisier study)."""

    language: str
    task: str = "translation"
    prompts: str = ""
    named: bool = False
    points: tuple[Setting, ...] = ()
    seeds: tuple[int, ...] = (1,)
    sampling: Sampling | None = None
    chat_template: bool = False
    choose: str = "choose"
    heldout: str = "heldout"
    batch_size: int = 50
    limit: int | None = None
    shape: tuple[tuple[str, object], ...] = ()  # (column, value) pairs the recommendation must have
    examples: bool = False

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise LangneuronsError(f"--task {self.task!r}: one of {', '.join(TASKS)}")
        if self.named and self.task != "translation":
            raise LangneuronsError("--named: only with --task translation (requests already name the language)")
        if self.examples and self.task != "prompts":
            raise LangneuronsError("--examples: only with --task prompts (a translation prompt has its own frame)")
        if self.choose == self.heldout:
            raise LangneuronsError("the part settings are chosen on must differ from the part they are reported on")
        object.__setattr__(self, "points", tuple(self.points))
        object.__setattr__(self, "seeds", tuple(self.seeds))

    @property
    def name(self) -> str:
        """The study's name in file names: `<L>-translation`, `<L>-translation-named`, `<L>-prompts` or
        `<L>-prompts-examples`."""
        return f"{self.language}-{self.task}" + ("-named" if self.named else "") + ("-examples" if self.examples else "")

    @property
    def folder(self) -> str:
        """Where its rows are kept: the name, but a search on prompts with example turns shares the
        folder of the search without (row keys carry the prompt style)."""
        return self.name.removesuffix("-examples")

    @property
    def style(self) -> str:
        """The prompt style the points are scored on: paper, named (translation), given or examples (prompts)."""
        if self.task == "prompts":
            return "examples" if self.examples else "given"
        return "named" if self.named else "paper"

    @property
    def styles(self) -> tuple[str, ...]:
        """Every prompt style the unforced model and the choice are scored on: for prompts also `examples`,
        each prompt after two turns answered in the language (prompts.example_turns)."""
        return ("given", "examples") if self.task == "prompts" else ("paper", "named")

    @property
    def share_goal(self) -> float:
        """The language goal: .95 when the prompt names the target, else .90."""
        return 0.95 if self.named else 0.90

    def sampling_or_default(self) -> Sampling:
        return self.sampling or self.default_sampling

    @property
    def default_sampling(self) -> Sampling:
        return TRANSLATING if self.task == "translation" else PROMPTED

    @property
    def sampling_tag(self) -> str:
        """What row keys carry when the sampling is not the task's default: rows sampled otherwise are
        neither reused nor chosen from."""
        if self.sampling is None or self.sampling == self.default_sampling:
            return ""
        spelled = json.dumps(asdict(self.sampling), sort_keys=True)
        return "-sampling" + hashlib.sha256(spelled.encode()).hexdigest()[:8]

    def prompts_of(self, style: str, split: str, tokenizer=None, turns: tuple[tuple[str, str], ...] = ()
                   ) -> list[Prompt]:
        """The prompts of one style and part, after `turns` (those of the `examples` style)."""
        if self.task == "translation":
            chosen = in_split(translation_prompts(self.language, self.prompts or "heldout", style == "named"), split)
        else:
            spec = self.prompts or f"requests:{self.language}"
            chosen = in_split(load_prompts(spec), split)
        chosen = chosen[: self.limit]
        if not chosen:
            raise LangneuronsError(f"{self.name}: no prompts in part {split!r}")
        return framed(chosen, turns, tokenizer if self.chat_template else None)


def task_grid(steerable: Steerable, language: str, names_target: bool = True, tail: int = 8,
              task: str = "translation") -> list[Setting]:
    """The default search: what keeps content. AP neurons: the top 200 everywhere, or on the answer and the
    prompt's last `tail` tokens; 2,000 (`both`) blended (mix:0.3) everywhere; steered openings of 2,000
    or 4,000 units, guarded, with a free first token or one that begins the target language's sentences
    (the start rule, own starts: another language's "The" or "What" cannot open), after which the model
    goes on unedited; LAPE neurons on the answer; a DiffMean direction added on the answer. A
    translation is one line, so its openings are the answer's first 2 tokens and its direction α 0.1 at
    the default block, norm restored; a prompt that does not name the target (`names_target` False: the
    paper's translation prompt) gets the openings with and without the start rule, and each started
    opening joined by 4,000 units on its last 4 tokens ("Target Language:"), which carry the task
    there, with and without the direction added (α 0.02, blocks 2/3 to 9/10) on the rest of the answer,
    and at α 0.03 with the no-loops rule (at α 0.04 it loops answers in Spanish, Chinese and Japanese).
    Every translation (named or not) also gets the pair with the named-target direction (the state that
    naming the language adds at the prompt's last token, α 1 or 2, at 2/5 of the depth) with the rule.
    An answer to a request (`task` "prompts") runs on for lines and drifts back to the prompt's language
    after a 2-token opening, so its opening is 4 tokens, its direction α 0.04 over the blocks from 2/3
    to 9/10 of the depth, and the opening is also followed by that direction at α 0.01 or 0.02 on the
    rest of the answer, with the no-loops rule (`directed_openings`); the named-target direction (α 1 or
    1.5) at the prompt's last token is joined to the best of these afterwards (`told_points`). A named
    translation's openings are started, with the no-loops
    rule (greedy answers and answers the unedited model writes after an opening can fall into a loop),
    from the starts that English, the prompt's language, does not share ("In" opens German and English
    sentences alike, and the answer goes on in English); it also gets the worked examples' direction
    (what three worked examples add at the prompt's last token, α 1 from 1/3 to 2/5 of the depth) alone
    and after a 1-token started opening (1,000, 2,000 or 4,000 units), with and without what the
    examples add to the answer's states (method answer, α 1 on the same blocks) on the rest of the
    answer. Why each, and what left the grid: docs/steering.md. Units the run lacks are left out."""
    answer = "generated"
    requests = task == "prompts"
    on_answer = partial(answer_direction, steerable, language)
    opening = partial(opening_edit, steerable, language)
    named = names_target and not requests  # a named translation: its openings' first word is not English's too
    distinct = named and "en" in steerable.info.languages and language != "en"
    started = Decoding(guard=True, start=True, own_starts=True, distinct_starts=distinct)  # a first word of L's
    points: list[Setting] = []
    if steerable.expertise is not None:
        ap = [(200, "top", "on_p50", "all"), (200, "top", "on_p50", f"prompt-tail:{tail}+{answer}"),
              (2000, "both", "mix:0.3", "all")]
        points += [Setting((Intervention(language, min(n, steerable.info.neurons), selection, value, pos),))
                   for n, selection, value, pos in ap]
        told = has_named_target(steerable, language)
        if requests:  # the opening alone, then with the direction on the rest (the named target: `told_points`)
            points += [Setting((opening(n, 4),), Decoding(guard=True)) for n in (2000, 4000)]
            points += directed_openings(steerable, language)
        elif not names_target:
            points += [Setting((opening(n, 2),), started if start else Decoding(guard=True))
                       for start in (False, True) for n in (2000, 4000)]
        tail_edit = Intervention(language, min(4000, steerable.info.neurons), "both", "on_p50", "prompt-tail:4")
        if not names_target:
            pairs = [(opening(n, 2), tail_edit) for n in (2000, 4000)]
            if steerable.directions is not None:  # the pair, and the direction on the rest of the answer
                pairs += [(opening(n, 2), tail_edit, on_answer("add:0.02")) for n in (2000, 4000)]
            points += [Setting(edits, replace(started, no_loops=no_loops)) for no_loops in (False, True)
                       for edits in pairs]
            if steerable.directions is not None:  # a stronger direction, which needs the rule
                points += [Setting((opening(n, 2), tail_edit, on_answer("add:0.03")), replace(started, no_loops=True))
                           for n in (2000, 4000)]
        elif named:  # the started openings, with no loops
            points += [Setting((opening(n, 2),), replace(started, no_loops=True)) for n in (2000, 4000)]
        if not requests and told:  # the pair, told at the prompt's end which language is meant
            points += [Setting((opening(n, 2), tail_edit, named_target(language, steerable.info.blocks, alpha)),
                               replace(started, no_loops=True)) for alpha in (1, 2) for n in (2000, 4000)]
        if named and told and directable("shots", [language]):
            shots = worked_target(language, steerable.info.blocks, 1, SHOTS_FROM)
            points += [Setting((shots,))]  # what worked examples add, alone
            # after the start rule's first token alone: a second forced token costs content (docs/steering.md)
            points += [Setting((opening(n, 1), shots), replace(started, no_loops=True)) for n in (1000, 2000, 4000)]
            # and with what they add to the answer's states on the answer written after it
            on_reply = worked_target(language, steerable.info.blocks, 1, SHOTS_FROM, "answer")
            points += [Setting((opening(n, 1), shots, on_reply), replace(started, no_loops=True))
                       for n in (1000, 2000, 4000)]
    if steerable.activation is not None:
        from .steerable import method_defaults

        n, selection = method_defaults(steerable, "lape", language, None, None)
        points += [Setting((Intervention(language, n, selection, "on_p50", answer, method="lape"),))] if n else []
    if steerable.directions is not None:
        direction = on_answer("add:0.04") if requests else \
            on_answer("add:0.1", str(default_block(steerable.info.blocks)), restore=True)
        points += [Setting((direction,))]
    return points


def opening_edit(steerable: Steerable, language: str, n: int, k: int) -> Intervention:
    """An opening: the language's N AP units (`both`, at most the model's) forced on the answer's first k tokens."""
    return Intervention(language, min(n, steerable.info.neurons), "both", "on_p50", f"prefix:{k}")


def answer_direction(steerable: Steerable, language: str, value: str, blocks: str | None = None,
                     restore: bool = False) -> Intervention:
    """The language's DiffMean direction at `value` on the generated answer, over `blocks` (default: the
    blocks from 2/3 to 9/10 of the depth)."""
    return Intervention(language, value=value, positions="generated", method="diffmean", restore_norm=restore,
                        blocks=default_span(steerable.info.blocks) if blocks is None else blocks)


def has_named_target(steerable: Steerable, language: str) -> bool:
    """Whether the run can make `language`'s named-target direction (English prompts naming it)."""
    return "en" in steerable.info.languages and bool(nameable([language]))


def directed_openings(steerable: Steerable, language: str) -> list[Setting]:
    """The request grid's 4-token openings (2,000 or 4,000 units, guarded) followed on the rest of the
    answer by the DiffMean direction (α 0.01 or 0.02 over the blocks from 2/3 to 9/10 of the depth),
    with the no-loops rule; [] for a run without AP units or directions."""
    if steerable.expertise is None or steerable.directions is None:
        return []
    return [Setting((opening_edit(steerable, language, n, 4), answer_direction(steerable, language, value)),
                    Decoding(guard=True, no_loops=True))
            for value in ("add:0.01", "add:0.02") for n in (2000, 4000)]


TOLD_ALPHAS = (1, 1.5)  # the named target's strengths joined to a request's directed opening


def told_points(steerable: Steerable, study: TaskStudy, table: pd.DataFrame) -> list[Setting]:
    """A coordinate step of the request search: the named-target direction (α 1 or 1.5, at the prompt's
    last token) joined to this language's best directed opening (`directed_openings`, chosen on the
    choose rows by the task rule): 2 points instead of every α with every N and direction strength
    (8), which would take 6 more rows a language. [] for translations, a run without a named target,
    or before the directed openings are scored."""
    pairs = directed_openings(steerable, study.language)
    if study.task != "prompts" or not pairs or not has_named_target(steerable, study.language):
        return []
    rows = table[(table["split"] == study.choose) & (table["prompt_style"] == study.style)
                 & (table["kind"] == "forced")]
    family = rows[pd.concat([same_setting(rows, pair.columns()) for pair in pairs], axis=1).any(axis=1)]
    if family.empty:
        return []
    best = setting_of(recommend_task(family, study))
    opening, direction = best.interventions
    return [Setting((opening, named_target(study.language, steerable.info.blocks, alpha), direction), best.decoding)
            for alpha in TOLD_ALPHAS]


def named_target(language: str, n_blocks: int, alpha: float) -> Intervention:
    """The named-target direction (steer/named.py) at α on the prompt's last token, at 2/5 of the depth."""
    return Intervention(language, value=f"add:{alpha:g}", positions="prompt-tail:1",
                        blocks=str(block_at(NAMED_DEPTH, n_blocks)), method="named")


SHOTS_FROM = 1 / 3  # the worked examples' direction also over the blocks from here to 2/5 of the depth


def worked_target(language: str, n_blocks: int, alpha: float, low: float, kind: str = "shots") -> Intervention:
    """The worked examples' direction (steer/named.py) at α, at each block from `low` to 2/5 of the depth:
    kind `shots` on the prompt's last token, kind `answer` on the generated answer."""
    first, last = block_at(low, n_blocks), block_at(NAMED_DEPTH, n_blocks)
    return Intervention(language, value=f"add:{alpha:g}", positions="prompt-tail:1" if kind == "shots" else "generated",
                        blocks=f"{first}-{last}" if last > first else str(last), method=kind)


def row_key(style: str, kind: str, point: Setting, split: str, limit: int | None, sampling_tag: str = "") -> str:
    """File stem of a scored row (the sampling and the limit are part of it: rows sampled otherwise or
    of another limit are not reused)."""
    label = "unforced" if kind == "unforced" else point.label.replace(":", "_")
    label = f"carried-by-{label or 'unforced'}" if kind == "carried" else label  # `point`: how it was carried
    return f"{style}-{label}-{split}{sampling_tag}" + ("" if limit is None else f"-first{limit}")


def samples_path(steerable: Steerable, study: TaskStudy, style: str, kind: str, point: Setting, split: str) -> Path:
    """Where a row's samples are kept, beside its scores (RUN/frontier/<study>/<key>.jsonl)."""
    key = row_key(style, kind, point, split, study.limit, study.sampling_tag)
    return steerable.run / "frontier" / study.folder / f"{key}.jsonl"


def score(steerable: Steerable, study: TaskStudy, style: str, kind: str, point: Setting, split: str,
          progress: bool, make: Callable[[], list[dict]] | None = None) -> dict:
    """One point (or the unforced model) on one prompt style and part: samples (`make`'s, else answers
    to the prompts under `point`) and scores, each written once and read back on a rerun."""
    path = samples_path(steerable, study, style, kind, point, split)
    folder, key = path.parent, path.name.removesuffix(".jsonl")  # the scores sit beside, as <key>.json
    row = current_score(folder / f"{key}.json")
    if row is not None:
        return row
    console.print(f"{study.name} {key}")
    started = time.perf_counter()
    records = current_samples(read_jsonl(path) if path.exists() else [])
    if not records:
        turns = steerable.example_turns(study.language) if style == "examples" else ()
        records = make() if make else prompt_records(
            steerable, point, study.prompts_of(style, split, steerable.loaded.tokenizer, turns), list(study.seeds),
            study.sampling_or_default(), study.task, study.batch_size, progress)
        write_jsonl(path, records)
    # what the choice does not rank on is scored on the reported (held-out) part only: the answers'
    # perplexity, and for translations (ranked on chrF) the content score, which costs two passes
    reported = split != study.choose
    scores = task_scores(records, study.language, steerable, content=study.task == "prompts" or reported,
                         ppl=reported)
    forced = kind not in UNEDITED
    columns = {**point.columns(), "interventions": json.dumps([iv.to_dict() for iv in point.interventions])} \
        if forced else {**Setting((Intervention(study.language, 0),)).columns(), "value": "none",
                        "positions": "none", "selection": "none", "interventions": "[]"}
    carried_by = {"carried_by": records[0]["carried_by"]} if kind == "carried" and records else {}
    row = {"schema": SCHEMAS["score"], **columns, "key": key, "kind": kind, "prompt_style": style, "split": split,
           "task": study.task, **carried_by, **scores, "seconds": round(time.perf_counter() - started, 1)}
    write_json(folder / f"{key}.json", row)
    return row


def carrier(steerable: Steerable, language: str) -> Setting:
    """How answers are carried into the target language: the RUN's named-translation recommendation
    (`frontier -l L --task translation --named`), else the unforced model (the named prompt)."""
    path = steerable.run / "frontier" / f"{language}-translation-named-recommended.json"
    return load_interventions(path, steerable.info.fingerprint) if path.exists() else Setting()


def carry(steerable: Steerable, study: TaskStudy, split: str, progress: bool) -> dict:
    """The unforced answers to the requests of `split`, carried into the target language line by line by
    the named translation (`carrier`) and scored: the unforced answers' content in the target language.
    The content score asks the unedited model for an English request, so an English answer keeps a
    head start that no answer in the target language has; steered answers are read against this bar."""
    score(steerable, study, "given", "unforced", Setting(), split, progress)  # its answers, written once
    answers = read_jsonl(samples_path(steerable, study, "given", "unforced", Setting(), split))
    setting = carrier(steerable, study.language)

    def make() -> list[dict]:
        lines = [(i, line.strip()) for i, r in enumerate(answers) for line in r["text"].split("\n") if line.strip()]
        name = language_name(study.language)
        prompts = [Prompt(f"{i}-{k}", NAMED_PROMPT.format(name=name, source=line))
                   for k, (i, line) in enumerate(lines)]
        out = prompt_records(steerable, setting, prompts, [1], TRANSLATING, "translation", study.batch_size,
                             progress) if prompts else []
        carried: list[list[str]] = [[] for _ in answers]
        for (i, _), record in zip(lines, out):
            carried[i].append(record["text"])
        fields = ("prompt_id", "prompt", "reference", "source")
        return [sample_record([], Decoding(), "prompts", r["seed"],
                              {**{k: r[k] for k in fields if k in r}, "carried_by": setting.label or "unforced"},
                              "\n".join(lines_of))
                for r, lines_of in zip(answers, carried)]

    return score(steerable, study, "given", "carried", setting, split, progress, make)


def language_score(table: pd.DataFrame, task: str) -> pd.Series:
    """What the language goal is judged on: the line-level pass rate for requests, the target share
    for translations (one line each)."""
    return table["lpr"] if task == "prompts" else table["target_share"]


def content_value(table: pd.DataFrame) -> pd.Series:
    """What content is judged on: chrF where the prompts have references, else the content score."""
    return table["chrf"] if "chrf" in table and table["chrf"].notna().all() else table["content"]


def recommend_task(table: pd.DataFrame, study: TaskStudy) -> pd.Series:
    """Among the forced points: of those meeting the language goal with at most 5% degenerate answers,
    the one that keeps the most content; else, of those with at most 5% degenerate answers (else of
    all), the one with the best language score (ties: content)."""
    forced = table[~table["kind"].isin(UNEDITED)]
    if forced.empty:
        raise LangneuronsError(f"{study.name}: no setting was scored")
    fluent = forced["degenerate_share"] <= GOAL_DEGENERATE
    sound = fluent & (forced["language_score"] >= study.share_goal)
    if sound.any():
        return forced[sound].sort_values(["content_value", "language_score"], ascending=False, kind="stable").iloc[0]
    rows = forced[fluent] if fluent.any() else forced
    return rows.sort_values(["language_score", "content_value"], ascending=False, kind="stable").iloc[0]


def also_shape(also: str, language: str) -> str:
    """The edits beside the first (`also`, labels joined by " + ") without their language and without a
    direction's strength, so that languages share them in one shape, each with a strength of its own."""
    return " + ".join(STRENGTH.sub(r"\1", label.removeprefix(f"{language}-")) for label in also.split(" + "))


def load_task_table(steerable: Steerable, study: TaskStudy, points: list[Setting]) -> pd.DataFrame:
    """Every row scored so far for the study, with its language and content values, whether it is
    the paper's setting and whether it is one of this search's `points` (`searched`: only those are
    chosen from; rows of other points, e.g. of an earlier wider search, stay in the table)."""
    folder = steerable.run / "frontier" / study.folder
    table = pd.DataFrame([row for p in sorted(folder.glob("*.json")) for row in [current_score(p)] if row])
    fill_setting_columns(table)
    table["language_score"] = language_score(table, study.task)
    table["content_value"] = content_value(table)
    limit = table["key"].str.extract(r"-first(\d+)$")[0].astype(float)  # rows of this study's limit only
    tag = table["key"].str.extract(r"(-sampling[0-9a-f]{8})(?:-first\d+)?$")[0].fillna("")  # and its sampling
    table = table[(limit.isna() if study.limit is None else limit == study.limit)
                  & (tag == study.sampling_tag)].reset_index(drop=True)
    table["paper"] = table["kind"] == "paper"
    table["also_shape"] = [also_shape(also, language) for also, language in zip(table["also"], table["language"])]
    ours = [same_setting(table, point.columns()) for point in points]
    table["searched"] = (table["kind"] == "forced") & (pd.concat(ours, axis=1).any(axis=1) if ours else False)
    forced = table[~table["kind"].isin(UNEDITED)]
    table["on_front"] = table.index.isin([i for _, group in forced.groupby(["split", "prompt_style"])
                                          for i in pareto_front(group, AXES).index])
    return table


def task_frontier(steerable: Steerable, study: TaskStudy, progress: bool = True) -> tuple[pd.DataFrame, pd.Series]:
    """Score the baselines, the paper's setting and every point (`study.points`, else `task_grid`) on the
    choose part, recommend, then score the baselines, the paper's setting and the recommendation (on
    every prompt style) on the held-out part. Writes RUN/frontier/<name>.csv and the recommendation as
    RUN/frontier/<name>-recommended.json (an intervention file `generate --interventions` takes)."""
    check_run_languages([study.language], list(steerable.info.languages), "-l")
    with run_lock(steerable.run, f"frontier -l {study.language} --task {study.task}"):
        return score_task(steerable, study, progress)


def score_task(steerable: Steerable, study: TaskStudy, progress: bool) -> tuple[pd.DataFrame, pd.Series]:
    """The body of `task_frontier`, under the lock."""
    points = list(dict.fromkeys(study.points or task_grid(steerable, study.language, study.style != "paper",
                                                          task=study.task)))
    paper = Setting((paper_setting(steerable, study.language),)) if steerable.expertise is not None else None

    def baselines(split: str) -> None:  # the choice ranks the points only: other styles on the held-out part
        for style in study.styles if split != study.choose else (study.style,):
            score(steerable, study, style, "unforced", Setting(), split, progress)
        if paper is not None:  # with the paper's prompt (the style of the study for requests)
            score(steerable, study, study.styles[0], "paper", paper, split, progress)

    baselines(study.choose)
    for index, point in enumerate(points, start=1):
        console.print(f"[{index}/{len(points)}]", end=" ")
        score(steerable, study, study.style, "forced", point, study.choose, progress)
    table = load_task_table(steerable, study, points)
    if not study.points:  # the default search's coordinate step, given the rows so far
        joined = [point for point in told_points(steerable, study, table) if point not in points]
        for index, point in enumerate(joined, start=len(points) + 1):
            console.print(f"[{index}/{len(points) + len(joined)}]", end=" ")
            score(steerable, study, study.style, "forced", point, study.choose, progress)
        points += joined
        table = load_task_table(steerable, study, points) if joined else table
    chosen = table[(table["split"] == study.choose) & (table["prompt_style"] == study.style)
                   & (table["searched"] | (table["kind"] != "forced"))]
    if study.shape:  # a shared shape: its own points only, not the paper's
        chosen = chosen[within_shape(chosen, study.shape) & (chosen["kind"] != "paper")]
    best = recommend_task(chosen, study)
    setting = setting_of(best)
    if study.heldout:
        baselines(study.heldout)
        if study.task == "prompts":
            carry(steerable, study, study.heldout, progress)
        for style in study.styles:
            score(steerable, study, style, "forced", setting, study.heldout, progress)
        table = load_task_table(steerable, study, points)
    save_interventions(steerable.run / "frontier" / f"{study.name}-recommended.json", setting,
                       steerable.info.fingerprint)
    table["recommended"] = (table["kind"] == "forced") & same_setting(table, best)
    if "carried_by" in table:  # the bar carried by the RUN's current named-translation choice
        table["current_carrier"] = (table["kind"] == "carried") & \
            (table["carried_by"] == (carrier(steerable, study.language).label or "unforced"))
    write_table(table, steerable.run / "frontier" / f"{study.name}.csv")
    return table, best
