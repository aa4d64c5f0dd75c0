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
from ..io import check_label, check_run_languages, read_jsonl, write_json, write_jsonl, write_table
from ..lock import run_lock
from ..progress import console
from ..schema import SCHEMAS, migrate
from .decoding import Decoding
from .evaluate import openings, perplexity
from .intervene import Intervention, Setting, is_opening, save_interventions
from .sweep import Steerable, current_samples, current_score, sample_records, score_cell

AXES = {"target_share": "max", "generated_ppl": "min", "degenerate_share": "min"}
GOAL_SHARE, GOAL_DEGENERATE, GOAL_PPL_RATIO = 0.9, 0.05, 1.5  # the goal for a usable setting
SETTING = ["value", "positions", "selection", "n", "blocks", "modules", "guard", "whole_characters",
           "opening_temperature", "start", "start_temperature", "also"]  # `also`: further interventions
FLAGS = ("guard", "whole_characters", "start")  # setting columns that are False when missing
TEMPERATURES = ("opening_temperature", "start_temperature")  # setting columns that are NaN when missing


def pareto_front(table: pd.DataFrame, axes: dict[str, str] = AXES) -> pd.DataFrame:
    """Rows not dominated by any other row (at least as good on every axis, better on one)."""
    signs = {col: (-1 if how == "max" else 1) for col, how in axes.items()}
    values = table[list(axes)].to_numpy() * [signs[c] for c in axes]  # smaller is better everywhere
    keep = []
    for i, row in enumerate(values):
        dominated = ((values <= row).all(axis=1) & (values < row).any(axis=1)).any()
        keep.append(not dominated)
    return table[keep]


def kinds(table: pd.DataFrame) -> pd.Series:
    """`forced`, `unforced` or `reference` per row (tables without a kind column: by N; without
    either, all forced)."""
    if "kind" in table.columns:
        return table["kind"]
    if "n" not in table.columns:
        return pd.Series("forced", index=table.index)
    return table["n"].map(lambda n: "unforced" if n == 0 else "forced")


def baseline_ppl(table: pd.DataFrame) -> float:
    """The perplexity the goal is relative to: the `reference` row's (the model's own text in the
    language) when the table has one, else the unforced N = 0 row's; NaN when it has neither."""
    kind = kinds(table)
    for name in ("reference", "unforced"):
        if (kind == name).any():
            return float(table.loc[kind == name, "generated_ppl"].min())
    return float("nan")


def usable(table: pd.DataFrame) -> pd.Series:
    """Share of samples in the target language and not degenerate; for rows scored without it,
    its lower bound target share − degenerate share."""
    bound = (table["target_share"] - table["degenerate_share"]).clip(lower=0)
    return table["usable_share"].fillna(bound) if "usable_share" in table.columns else bound


def recommend(table: pd.DataFrame, share: float = GOAL_SHARE, degenerate: float = GOAL_DEGENERATE,
              ppl_ratio: float = GOAL_PPL_RATIO) -> pd.Series:
    """The steering setting to use among the forced points: of those meeting all three goals
    (share ≥ `share`, degenerate share ≤ `degenerate`, generated-text perplexity ≤ `ppl_ratio` ×
    `baseline_ppl` when the table has one), the one with the most usable samples (in the language
    and not degenerate); else, of those meeting the share and degenerate goals, the most fluent;
    else the one with the most usable samples. Ties: the lower perplexity."""
    forced = table[kinds(table) == "forced"].assign(usable=lambda t: usable(t))
    base = baseline_ppl(table)
    limit = ppl_ratio * base if base == base else float("inf")
    sound = (forced["target_share"] >= share) & (forced["degenerate_share"] <= degenerate)
    most_usable = (["usable", "generated_ppl"], [False, True])
    tiers = [(sound & (forced["generated_ppl"] <= limit), most_usable),
             (sound, (["generated_ppl", "usable"], [True, False])),
             (pd.Series(True, index=forced.index), most_usable)]
    rows, (columns, ascending) = next((rows, order) for rows, order in tiers if rows.any())
    return forced[rows].sort_values(columns, ascending=ascending, kind="stable").iloc[0].drop("usable")


def meets_goal(row: pd.Series, baseline: float) -> bool:
    """Whether a scored setting meets all three goals (never without a baseline perplexity)."""
    return bool(row["target_share"] >= GOAL_SHARE and row["degenerate_share"] <= GOAL_DEGENERATE
                and row["generated_ppl"] <= GOAL_PPL_RATIO * baseline)


def grid(language: str, values: list[str], positions: list[str], selections: list[str], ns: list[int],
         blocks: list[str], modules: tuple[str, ...] | list[str] = ("",),
         guards: tuple[bool, ...] | list[bool] = (False,),
         temperatures: tuple[float | None, ...] | list[float | None] = (None,),
         starts: tuple[bool, ...] | list[bool] = (False,),
         start_temperatures: tuple[float | None, ...] | list[float | None] = (None,)) -> list[Setting]:
    """Every combination of the given strategy axes, as settings (N = 0 left out: the
    unforced point is always scored; the guard, opening temperatures and the start rule only with
    openings, first:K and prefix:K; start temperatures only with the start rule)."""
    axes = itertools.product(values, positions, selections, ns, blocks, modules, guards, temperatures, starts,
                             start_temperatures)
    return [Setting((Intervention(language, n, selection, value, pos, blocks=block, modules=module),),
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


def fill_setting_columns(table: pd.DataFrame) -> None:
    """Give `blocks`, `modules` and `also` "" (all blocks / all modules / no further
    interventions) and `guard`, `whole_characters` and `start` False where empty or missing, and the
    temperatures NaN (the sampling's) where missing: points and tables of older versions lack some."""
    for column in ("blocks", "modules", "also"):
        table[column] = table.get(column, pd.Series("", index=table.index)).fillna("")
    for column in FLAGS:
        table[column] = table.get(column, pd.Series(False, index=table.index)).fillna(False).astype(bool)
    for column in TEMPERATURES:
        table[column] = table.get(column, pd.Series(float("nan"), index=table.index)).astype(float)


def same_setting(table: pd.DataFrame, setting: pd.Series | dict) -> pd.Series:
    """Which rows of `table` hold `setting` (its SETTING fields), on whatever seeds; a missing value
    (no opening temperature) matches a missing one."""
    wanted = pd.Series({k: setting[k] for k in SETTING}, dtype=object)
    both_missing = table[SETTING].isna() & wanted.isna()
    return ((table[SETTING] == wanted) | both_missing).all(axis=1)


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

    def __post_init__(self) -> None:
        object.__setattr__(self, "points", tuple(as_setting(p) for p in self.points))
        object.__setattr__(self, "seeds", tuple(self.seeds))
        object.__setattr__(self, "heldout_seeds", tuple(self.heldout_seeds or ()))
        if not self.seeds:
            raise LangneuronsError("frontier: no seeds to score the points on")
        stray = [p.label for p in self.points if any(iv.language != self.language for iv in p.interventions)]
        if stray:
            raise LangneuronsError(f"frontier for {self.language}: point(s) {stray} force another language")


def frontier(steerable: Steerable, language: str, settings: list, *args, **kwargs) -> tuple[pd.DataFrame, pd.Series]:
    """`frontier_locked` after checking `language` and every `modules` value (they become file names)
    against the run, with the RUN's lock held for the whole run (a second writer is refused at once)."""
    check_run_languages([language], list(steerable.info.languages), "-l")
    for setting in settings:
        ivs = getattr(setting, "interventions", setting)
        for iv in ivs if isinstance(ivs, tuple) else (ivs,):
            if getattr(iv, "modules", None):  # "" (every module) names no file
                check_label(iv.modules, "modules")
    with run_lock(steerable.run, f"frontier -l {language}"):
        return frontier_locked(steerable, language, settings, *args, **kwargs)


def frontier_locked(steerable: Steerable, language: str,
             settings: list[Intervention | tuple[Intervention, ...] | Setting], seeds: list[int],
             heldout_seeds: list[int] | None = None, batch_size: int = 100,
             progress: bool = True) -> tuple[pd.DataFrame, pd.Series]:
    """Score the unforced and reference points, the paper's setting and every setting (an
    intervention, or several applied together) on `seeds`, and recommend one among all points
    scored on those seeds; with `heldout_seeds`, score the recommendation, the paper's setting and
    both baselines again on those. Writes RUN/frontier/<lang>.csv and the recommendation as an
    intervention file (RUN/frontier/<lang>-recommended.json); the table's `recommended` column marks
    the choice. Returns the table and the recommended row. The keywords are those of
    `FrontierSettings` (see `frontier_with`)."""
    return frontier_with(steerable, FrontierSettings(language, tuple(settings), tuple(seeds),
                                                     tuple(heldout_seeds or ()), batch_size), progress)


def frontier_with(steerable: Steerable, study: FrontierSettings,
                  progress: bool = True) -> tuple[pd.DataFrame, pd.Series]:
    """`frontier` with its settings as one object."""
    language, batch_size = study.language, study.batch_size
    seeds, heldout_seeds = list(study.seeds), list(study.heldout_seeds)

    def points(chosen: list[Setting], on: list[int]) -> None:
        for kind in ("unforced", "reference"):
            score_point(steerable, language, kind, Setting(), on, batch_size, progress)
        unique = list(dict.fromkeys(chosen))  # the paper's setting may also be in the grid
        for index, point in enumerate(unique, start=1):
            console.print(f"[{index}/{len(unique)}]", end=" ")
            score_point(steerable, language, "forced", point, on, batch_size, progress)

    paper = Setting((paper_setting(steerable, language),))
    points([paper, *study.points], seeds)
    table = load_table(steerable, language)
    best = recommend(table[table["seeds"] == seed_range(seeds)])
    if heldout_seeds:
        points([paper, setting_of(best)], heldout_seeds)
        table = load_table(steerable, language)
    save_interventions(steerable.run / "frontier" / f"{language}-recommended.json", setting_of(best),
                       steerable.info.fingerprint)
    table["recommended"] = (table["seeds"] == best["seeds"]) & (table["kind"] == "forced") & same_setting(
        table, best)  # what the report shows
    write_table(table, steerable.run / "frontier" / f"{language}.csv")
    return table, best
