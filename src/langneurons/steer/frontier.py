"""The language-share / fluency frontier: which steering setting keeps text in the target
language *and* fluent (issue: steering that keeps the text fluent).

Each setting is generated like a sweep cell (one sample per seed from BOS) and scored on target
share, perplexity of the generated text under the *unforced* model, distinct-2 and degenerate
share. Two unforced points anchor every seed set: `unforced` (the model's own text from BOS,
mostly English) and `reference` (the model's own unforced continuation of a sentence in the
target language: fluent text in that language as this model writes it). The goal's perplexity
bound is relative to the reference. A setting is chosen on one seed set and, with
`heldout_seeds`, scored again beside the paper's setting on seeds it was not chosen on.
"""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..errors import LangneuronsError
from ..io import (
    check_label,
    check_run_languages,
    read_jsonl,
    write_json,
    write_jsonl,
    write_table,
)
from ..lock import run_lock
from ..progress import console
from ..schema import SCHEMAS, migrate
from .decoding import Decoding
from .evaluate import openings, perplexity
from .intervene import Intervention, Setting, is_opening, recommended_path, save_interventions
from .pareto import (
    FLAGS,
    TEMPERATURES,
    baseline_ppl,
    fill_setting_columns,
    pareto_front,
    recommend,
    same_setting,
    within_shape,
)
from .steerable import (
    Steerable,
    current_samples,
    current_score,
    sample_records,
    score_cell,
)


def grid(language: str, values: list[str], positions: list[str], selections: list[str], ns: list[int],
         blocks: list[str], modules: tuple[str, ...] | list[str] = ("",),
         guards: tuple[bool, ...] | list[bool] = (False,),
         temperatures: tuple[float | None, ...] | list[float | None] = (None,),
         starts: tuple[bool, ...] | list[bool] = (False,),
         start_temperatures: tuple[float | None, ...] | list[float | None] = (None,),
         method: str = "ap") -> list[Setting]:
    """Every combination of the given strategy axes, as settings of AP or LAPE units (N = 0 left out: the
    unforced point is always scored; the guard, opening temperatures and the start rule only with
    openings, first:K and prefix:K; start temperatures only with the start rule)."""
    axes = itertools.product(values, positions, selections, ns, blocks, modules, guards, temperatures, starts,
                             start_temperatures)
    return [Setting((Intervention(language, n, selection, value, pos, blocks=block, modules=module, method=method),),
                    Decoding(guard, False, temperature, start, start_temperature))
            for value, pos, selection, n, block, module, guard, temperature, start, start_temperature in axes
            if n > 0 and (is_opening(pos) or not (guard or start or temperature is not None))
            and (start or start_temperature is None)]


def load_points(path: Path, language: str) -> list[Setting]:
    """Settings from a JSON file `{"points": [[intervention, ...], ...]}` (each intervention as in an
    older intervention file, decoding rules inside, `language` defaulting to `language`; or each
    point as `Setting.to_dict` writes it); every intervention must be for it."""
    try:
        items = json.loads(Path(path).read_text(encoding="utf-8"))["points"]
        chosen = [Setting.from_dict([{"language": language, **d} for d in item] if isinstance(item, list) else
                                    {**item, "interventions": [{"language": language, **d}
                                                               for d in item["interventions"]]})
                  for item in items]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise LangneuronsError(f'{path}: not a points file ({exc}); expected {{"points": [[{{"language": ..., '
                               f'"n": ..., ...}}, ...], ...]}}') from None
    for number, point in enumerate(chosen, start=1):
        if not point.interventions or any(iv.language != language for iv in point.interventions):
            raise LangneuronsError(f"{path}: point {number} is empty or forces another language than {language}")
    return chosen


def paper_setting(steerable: Steerable, language: str) -> Intervention:
    """The paper's intervention: `both` N = 2,000 replaced by on_p50 at every position (N capped
    at the model's neurons)."""
    return Intervention(language, min(2000, steerable.info.neurons), "both", "on_p50", "all")


def reference_prompts(steerable: Steerable, language: str, seeds: list[int]) -> list[str]:
    """For seed s, sentence s (counting from 1, cycling) of the run's sentences in `language`."""
    texts = [s["text"] for s in read_jsonl(steerable.run / "sentences.jsonl") if s["lang"] == language]
    return [texts[(seed - 1) % len(texts)] for seed in seeds]


def seed_range(seeds: list[int]) -> str:
    """A seed set as its tables name it: 'a-b'."""
    return f"{seeds[0]}-{seeds[-1]}"


def seed_span(seeds: list[int]) -> str:
    """A seed set in a file name: 'seedsa-b'."""
    return f"seeds{seed_range(seeds)}"


def point_key(kind: str, language: str, point: Setting) -> str:
    """File stem of a point: the labels of its interventions (`+` between several)."""
    if kind != "forced":
        return f"{language}-{kind}"
    return point.label.replace(":", "_")


def samples_for(steerable: Steerable, language: str, kind: str, point: Setting, seeds: list[int],
                batch_size: int, progress: bool) -> list[dict]:
    """The samples of one point on `seeds`, stored in `<stem>-seeds<a>-<b>.jsonl`. Seeds already
    generated for the same point in another seed set are read from there, not generated again: a
    seed gives the same sample whatever batch it runs in, so a screen on seeds 1-20 is the start of
    the choice on 1-100. Unforced samples are the same for every language: one file per seed set.
    Samples an older version stored are migrated, or generated again (`schema.migrate`)."""
    folder = steerable.run / "frontier" / language
    stem = "unforced" if kind == "unforced" else point_key(kind, language, point)
    home = folder.parent if kind == "unforced" else folder
    path = home / f"{stem}-{seed_span(seeds)}.jsonl"
    stored = current_samples(read_jsonl(path) if path.exists() else [])
    if stored:
        return stored
    known = {r["seed"]: r for other in sorted(home.glob(f"{stem}-seeds*.jsonl")) for stored in read_jsonl(other)
             for r in [migrate("samples", stored)] if r is not None}
    missing = [seed for seed in seeds if seed not in known]
    if missing:
        prompts = reference_prompts(steerable, language, missing) if kind == "reference" else None
        setting = point if kind == "forced" else Setting()
        new = sample_records(steerable, list(setting.interventions), "unconditional", missing, prompt=prompts,
                             batch_size=batch_size, progress=progress, decoding=setting.decoding)
        known.update({r["seed"]: r for r in new})
    records = [known[seed] for seed in seeds]
    write_jsonl(path, records)
    return records


def score_point(steerable: Steerable, language: str, kind: str, point: Setting, seeds: list[int],
                batch_size: int, progress: bool) -> dict:
    """Score one point (`forced` by the interventions of `point`, `unforced` or `reference`) on
    `seeds`; written once (again where an older version's cannot be migrated). The row holds the
    first intervention's fields, the decoding's, the labels of the others in `also`, and all the
    interventions in `interventions` (JSON)."""
    folder = steerable.run / "frontier" / language
    key = f"{point_key(kind, language, point)}-{seed_span(seeds)}"
    row = current_score(folder / f"{key}.json")
    if row is not None and "opening_top_share" not in row:  # scored before openings were counted: no model
        records = samples_for(steerable, language, kind, point, seeds, batch_size, progress)
        row.update(openings([r["text"] for r in records], language))
        write_json(folder / f"{key}.json", row)
    if row is not None:
        return row
    console.print(f"{kind} {key}")
    started = time.perf_counter()
    records = samples_for(steerable, language, kind, point, seeds, batch_size, progress)
    texts = [r["text"] for r in records if r["text"].strip()]
    lm = steerable.loaded
    none = {**Setting((Intervention(language, 0),)).columns(), "value": "none", "positions": "none",
            "selection": "none"}
    setting = {**point.columns(), "interventions": json.dumps([iv.to_dict() for iv in point.interventions])
               } if kind == "forced" else none
    row = {"schema": SCHEMAS["score"], **setting, "kind": kind, **score_cell(records, language, None),
           "generated_ppl": perplexity(lm.model, lm.tokenizer, texts) if texts else float("inf"),
           "seeds": seed_range(seeds), "seconds": round(time.perf_counter() - started, 1)}
    write_json(folder / f"{key}.json", row)
    return row


def setting_of(row: pd.Series) -> Setting:
    """The setting a scored row describes: its interventions and its decoding columns."""
    rules = {k: not pd.isna(row.get(k, False)) and bool(row.get(k, False)) for k in FLAGS}
    for column in TEMPERATURES:
        temperature = row.get(column)
        rules[column] = None if temperature is None or pd.isna(temperature) else float(temperature)
    decoding = Decoding(**rules)
    if isinstance(row.get("interventions"), str) and row["interventions"]:
        return Setting(tuple(Intervention.from_dict(d) for d in json.loads(row["interventions"])), decoding)
    fields = {k: row[k] for k in Intervention.__dataclass_fields__ if k in row}
    for column in ("blocks", "modules"):
        fields[column] = "" if pd.isna(fields.get(column, "")) else str(fields.get(column, ""))
    return Setting((Intervention.from_dict({**fields, "n": int(fields["n"]), "seed": int(fields.get("seed", 0))}),),
                   decoding)


def load_table(steerable: Steerable, language: str) -> pd.DataFrame:
    """Every point scored so far for `language`, with its kind, its perplexity over the seed set's
    baseline (`ppl_ratio`), whether it is the paper's setting and whether it is on that seed set's
    Pareto front (forced points)."""
    folder = steerable.run / "frontier" / language
    table = pd.DataFrame([row for p in sorted(folder.glob("*.json")) for row in [current_score(p)] if row])
    fill_setting_columns(table)
    table["ppl_ratio"] = table["generated_ppl"] / table["seeds"].map(
        {s: baseline_ppl(group) for s, group in table.groupby("seeds")})
    paper = Setting((paper_setting(steerable, language),)).columns()
    table["paper"] = (table["kind"] == "forced") & same_setting(table, paper)
    forced = table[table["kind"] == "forced"]
    table["on_front"] = table.index.isin([i for _, group in forced.groupby("seeds") for i in pareto_front(group).index])
    return table


def as_setting(point: Intervention | tuple[Intervention, ...] | Setting) -> Setting:
    """A point of the frontier as a setting: an intervention, or several applied together, decode plainly."""
    if isinstance(point, Setting):
        return point
    return Setting(point if isinstance(point, tuple) else (point,))


@dataclass(frozen=True)
class FrontierSettings:
    """A frontier study of one language: the points to score (the paper's setting and both baselines
    are always scored) on `seeds`, and the seeds the recommendation is scored again on."""

    language: str
    points: tuple[Setting, ...]
    seeds: tuple[int, ...]
    heldout_seeds: tuple[int, ...] = ()
    batch_size: int = 100
    shape: tuple[tuple[str, object], ...] = ()  # (column, value) pairs the recommendation must have

    def __post_init__(self) -> None:
        object.__setattr__(self, "points", tuple(as_setting(p) for p in self.points))
        object.__setattr__(self, "seeds", tuple(self.seeds))
        object.__setattr__(self, "heldout_seeds", tuple(self.heldout_seeds or ()))
        if not self.seeds:
            raise LangneuronsError("frontier: no seeds to score the points on")
        for point in self.points:  # a `modules` value becomes part of file names
            for iv in point.interventions:
                if iv.modules:
                    check_label(iv.modules, "modules")
        stray = [p.label for p in self.points if any(iv.language != self.language for iv in p.interventions)]
        if stray:
            raise LangneuronsError(f"frontier for {self.language}: point(s) {stray} force another language")


def study_method(points: tuple[Setting, ...] | list[Setting]) -> str:
    """`lape` or `diffmean` when every point of a study edits with that method alone, else `ap`."""
    methods = {iv.method for p in points for iv in p.interventions}
    return methods.pop() if len(methods) == 1 and methods & {"lape", "diffmean"} else "ap"


def frontier(steerable: Steerable, language: str,
             settings: list[Intervention | tuple[Intervention, ...] | Setting], seeds: list[int],
             heldout_seeds: list[int] | None = None, batch_size: int = 100,
             progress: bool = True) -> tuple[pd.DataFrame, pd.Series]:
    """Score the unforced and reference points, the paper's setting and every setting (an
    intervention, or several applied together) on `seeds`, and recommend one among all points
    scored on those seeds; with `heldout_seeds`, score the recommendation, the paper's setting and
    both baselines again on those. Writes RUN/frontier/<lang>.csv and the recommendation as an
    intervention file (`recommended_path`; when every point is a LAPE or a DiffMean one, the choice
    is among them, and held out it is scored without the paper's setting); the paper's setting is
    scored when the run has AP results; the table's `recommended` column marks the choice. Returns
    the table and the recommended row."""
    return frontier_with(steerable, FrontierSettings(language, tuple(settings), tuple(seeds),
                                                     tuple(heldout_seeds or ()), batch_size), progress)


def frontier_with(steerable: Steerable, study: FrontierSettings,
                  progress: bool = True) -> tuple[pd.DataFrame, pd.Series]:
    """`frontier` with its settings as one object, holding the RUN's lock for the whole run (a second
    writer is refused at once); the language is checked against the run before anything is written."""
    check_run_languages([study.language], list(steerable.info.languages), "-l")
    with run_lock(steerable.run, f"frontier -l {study.language}"):
        return score_frontier(steerable, study, progress)


def score_frontier(steerable: Steerable, study: FrontierSettings, progress: bool) -> tuple[pd.DataFrame, pd.Series]:
    """The body of `frontier_with`, under the lock."""
    language, batch_size = study.language, study.batch_size
    seeds, heldout_seeds = list(study.seeds), list(study.heldout_seeds)

    def points(chosen: list[Setting], on: list[int]) -> None:
        for kind in ("unforced", "reference"):
            score_point(steerable, language, kind, Setting(), on, batch_size, progress)
        unique = list(dict.fromkeys(chosen))  # the paper's setting may also be in the grid
        for index, point in enumerate(unique, start=1):
            console.print(f"[{index}/{len(unique)}]", end=" ")
            score_point(steerable, language, "forced", point, on, batch_size, progress)

    # the paper's setting needs AP results; a LAPE or DiffMean study recommends among its own points only
    paper = [Setting((paper_setting(steerable, language),))] if steerable.expertise is not None else []
    method = study_method(study.points)
    points([*paper, *study.points], seeds)
    table = load_table(steerable, language)
    chosen = table[table["seeds"] == seed_range(seeds)]
    allowed = (chosen["kind"] != "forced") | (chosen["method"] == method if method != "ap" else True)
    allowed &= within_shape(chosen, study.shape)
    best = recommend(chosen[allowed])
    if heldout_seeds:  # LAPE and DiffMean are compared with AP's recommendation (`methods`), not the paper's
        points([*(paper if method == "ap" else []), setting_of(best)], heldout_seeds)
        table = load_table(steerable, language)
    save_interventions(recommended_path(steerable.run, language, method), setting_of(best), steerable.info.fingerprint)
    table["recommended"] = (table["seeds"] == best["seeds"]) & (table["kind"] == "forced") & same_setting(
        table, best)  # what the report shows
    write_table(table, steerable.run / "frontier" / f"{language}.csv")
    return table, best
