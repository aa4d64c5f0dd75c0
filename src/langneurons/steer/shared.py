"""One setting shape for several languages (docs/method.md §11 and §12).

A user steering five languages wants one rule, not five. From BOS (DiffMean): the edit, the
block(s), the norm rule, the positions, the guard and the start rule are shared, only the strength α
or β differs; the search is a coordinate search over each language's frontier on the same seeds: every shape at
its edit's middle strength, the shape with which the most languages reach the goal, then the
strength per language within it, then whether a hold on the rest of the text (the same direction's
floor after the opening, `diffmean.with_hold`) should follow that opening, per language.
On a task (translation, requests): the method, units, value and positions are shared, only N and the
strength of a direction joined to the opening differ; every language's task grid is scored on its
choose part, the shape with which the most languages meet the task's goal is taken, and each
language's choice within it is held out.
"""

from __future__ import annotations

from dataclasses import replace

import pandas as pd

from ..io import write_table
from ..progress import console
from .diffmean import DEFAULT_ALPHA, diffmean_grid, with_hold
from .frontier import FrontierSettings, frontier_with, seed_range, setting_of
from .intervene import Setting, parse_strength
from .pareto import GOAL_DEGENERATE, baseline_ppl, edit_kind, meets_goal, recommend, same_setting, usable
from .steerable import Steerable
from .taskfrontier import TaskStudy, recommend_task, task_frontier

SHAPE = ("edit", "blocks", "restore_norm", "positions", "guard", "start")  # shared by every language; α or β differ
TASK_SHAPE = ("method", "selection", "value", "positions", "blocks", "restore_norm", "guard", "start", "own_starts",
              "distinct_starts", "no_loops", "also_shape")  # the first edit's N and a joined direction's α may differ


def shape_table(tables: dict[str, pd.DataFrame], seeds: str, screens: dict[str, list[Setting]]) -> pd.DataFrame:
    """For every shape and language, the frontier's choice among that language's screen points
    (`screens`; other points the RUN holds are left out) of that shape on `seeds`, and whether it
    meets the goal."""
    rows = []
    for language, table in tables.items():
        scored = table[table["seeds"] == seeds]
        base = baseline_ppl(scored)
        screened = pd.concat([same_setting(scored, point.columns()) for point in screens[language]], axis=1).any(axis=1)
        forced = scored[(scored["kind"] == "forced") & screened]
        forced = forced.assign(edit=edit_kind(forced))  # add or clamp
        for shape, group in forced.groupby(list(SHAPE), sort=True):
            best = recommend(pd.concat([scored[scored["kind"] != "forced"], group]))
            rows.append({**dict(zip(SHAPE, shape)), "language": language, "value": best["value"],
                         "target_share": best["target_share"], "degenerate_share": best["degenerate_share"],
                         "ppl_ratio": best["generated_ppl"] / base, "usable_share": float(usable(best.to_frame().T).iloc[0]),
                         "meets_goal": meets_goal(best, base), "seeds": seeds})
    return pd.DataFrame(rows)


def pick_shape(shapes: pd.DataFrame, columns: tuple[str, ...] = SHAPE, worst: str = "usable_share",
               mean: str = "usable_share", one_answer: bool = False) -> dict:
    """The shape with which the most languages meet the goal; ties: the most languages whose choice is
    fluent (at most 5% degenerate: the goal that always holds), then the higher worst `worst`, then the
    higher mean `mean`. With `one_answer`, a worst within one answer of the best (1 / the column
    `samples`) counts as a tie: one answer in 30 is within the noise, content then decides. Marks it in
    `shapes["chosen"]`."""
    fluent = shapes.assign(fluent=shapes["degenerate_share"] <= GOAL_DEGENERATE)
    score = fluent.groupby(list(columns)).agg(meets=("meets_goal", "sum"), fluent=("fluent", "sum"),
                                              worst=(worst, "min"), mean=(mean, "mean"))
    ranked = score.sort_values(["meets", "fluent", "worst", "mean"], ascending=False, kind="stable")
    if one_answer:
        lead, step = ranked.iloc[0], 1 / shapes["samples"].min()
        close = (ranked["meets"] == lead["meets"]) & (ranked["fluent"] == lead["fluent"]) \
            & (ranked["worst"] >= lead["worst"] - step - 1e-9)
        ranked = ranked[close].sort_values("mean", ascending=False, kind="stable")
    best = ranked.index[0]
    values = best if isinstance(best, tuple) else (best,)  # a one-column index holds plain values
    shape = {column: value.item() if hasattr(value, "item") else value for column, value in zip(columns, values)}
    shapes["chosen"] = (shapes[list(columns)] == pd.Series(shape)).all(axis=1)
    return shape


MIDDLES = {"add": DEFAULT_ALPHA, "clamp": 1.0}  # the strength each edit's shapes are compared at


def middle_values(values: list[str]) -> list[str]:
    """Per edit kind (add, clamp) of `values`, the value the shapes are compared at: the kind's middle
    strength (add:0.1, clamp:1) when the grid has it, else the grid's median of that kind."""
    kinds: dict[str, list[float]] = {}
    for value in values:
        kind, strength = parse_strength(value)
        kinds.setdefault(kind, []).append(strength)
    return [f"{kind}:{MIDDLES[kind] if MIDDLES[kind] in found else sorted(found)[(len(found) - 1) // 2]:g}"
            for kind, found in kinds.items()]


def held_frontier(steerable: Steerable, study: FrontierSettings, holds: list[str],
                  progress: bool = True) -> tuple[pd.DataFrame, pd.Series]:
    """`frontier_with`, then the choice's opening alone and followed by each of `holds` (a DiffMean floor
    or addition on the rest of the text; "off": none) on the same seeds, and the recommendation among
    all of them, scored on the held-out seeds. A coordinate step: the opening's strength is chosen
    first, the hold given it (2 more points, not a grid of both)."""
    holds = [hold for hold in holds if hold != "off"]
    if not holds:
        return frontier_with(steerable, study, progress)
    best = setting_of(frontier_with(steerable, replace(study, heldout_seeds=()), progress)[1])
    opening = Setting(best.interventions[:1], best.decoding)  # a DiffMean study recommends DiffMean points only
    console.print(f"[bold]{study.language}[/bold]: {opening.label} with a hold of {', '.join(holds)} on the rest")
    points = (opening, *(with_hold(opening, hold) for hold in holds))
    return frontier_with(steerable, replace(study, points=points), progress)


def shared_diffmean(steerable: Steerable, languages: list[str], values: list[str], blocks: list[str],
                    restores: list[bool], positions: list[str], guards: list[bool], starts: list[bool],
                    seeds: list[int], heldout_seeds: list[int] | None, batch_size: int = 100, progress: bool = True,
                    holds: list[str] | tuple[str, ...] = ("off",)) -> tuple[pd.DataFrame, dict[str, pd.Series]]:
    """Score every shape (edit kind × block(s) × norm rule × positions × guard × start rule) at its kind's
    middle strength for every language on `seeds`, pick the shape (`pick_shape`), then search the strength within it per
    language, then the hold after it (`held_frontier`), and score each choice on `heldout_seeds`. Writes RUN/frontier/diffmean-shape.csv (the
    shapes, `chosen` marking the pick) and each language's <L>-diffmean-recommended.json. Returns the
    shape table and the choices."""
    middles = middle_values(values)
    tables, screens = {}, {}
    for language in languages:
        console.print(f"[bold]{language}[/bold]: every shape at {', '.join(middles)}")
        screens[language] = diffmean_grid(language, middles, blocks, restores, positions, guards, starts)
        tables[language] = frontier_with(steerable, FrontierSettings(language, tuple(screens[language]), tuple(seeds),
                                                                     batch_size=batch_size), progress)[0]
    shapes = shape_table(tables, seed_range(seeds), screens)
    shape = pick_shape(shapes)
    write_table(shapes, steerable.run / "frontier" / "diffmean-shape.csv")
    console.print(f"shared shape: {shape['edit']} at blocks {shape['blocks']}, norm restored "
                  f"{shape['restore_norm']}, positions {shape['positions']}, guard {shape['guard']}, "
                  f"start {shape['start']}")
    strengths = [value for value in values if parse_strength(value)[0] == shape["edit"]]
    chosen = {}
    for language in languages:
        console.print(f"[bold]{language}[/bold]: the strength within the shared shape")
        points = diffmean_grid(language, strengths, [shape["blocks"]], [shape["restore_norm"]], [shape["positions"]],
                               [shape["guard"]], [shape["start"]])
        study = FrontierSettings(language, tuple(points), tuple(seeds), tuple(heldout_seeds or ()), batch_size,
                                 shape=tuple(shape.items()))
        chosen[language] = held_frontier(steerable, study, list(holds), progress)[1]
    return shapes, chosen


def task_shape_table(tables: dict[str, pd.DataFrame], studies: dict[str, TaskStudy]) -> pd.DataFrame:
    """For every task shape and language, the task rule's choice among that language's searched points
    of that shape on its choose part (N free), and whether it meets the language and degenerate goals."""
    rows = []
    for language, table in tables.items():
        study = studies[language]
        part = table[(table["split"] == study.choose) & (table["prompt_style"] == study.style)]
        forced = part[part["searched"]]  # this search's own points, not others the RUN holds
        for shape, group in forced.groupby(list(TASK_SHAPE), sort=True):
            best = recommend_task(group, study)
            rows.append({**dict(zip(TASK_SHAPE, shape)), "language": language, "n": best["n"],
                         "language_score": best["language_score"], "content_value": best["content_value"],
                         "degenerate_share": best["degenerate_share"], "samples": int(best["samples"]),
                         "meets_goal": bool(best["language_score"] >= study.share_goal
                                            and best["degenerate_share"] <= GOAL_DEGENERATE)})
    return pd.DataFrame(rows)


def shared_task(steerable: Steerable, languages: list[str], template: TaskStudy,
                progress: bool = True) -> tuple[pd.DataFrame, dict[str, pd.Series]]:
    """Each language's task study (`template` with its language) on the choose part, one shape for all
    (`pick_shape` on the language goal, ties: fluent languages, the worst language score up to one answer,
    the mean content), then each language's choice within the shape scored on the held-out part.
    Writes RUN/frontier/<task>[-named]-shape.csv and each language's recommendation. Returns both."""
    studies = {language: replace(template, language=language) for language in languages}
    tables = {language: task_frontier(steerable, replace(study, heldout=""), progress)[0]
              for language, study in studies.items()}
    shapes = task_shape_table(tables, studies)
    shape = pick_shape(shapes, TASK_SHAPE, worst="language_score", mean="content_value", one_answer=True)
    name = template.name.split("-", 1)[1]
    write_table(shapes, steerable.run / "frontier" / f"{name}-shape.csv")
    console.print("shared shape: " + ", ".join(f"{k} {v}" for k, v in shape.items()))
    chosen = {language: task_frontier(steerable, replace(study, shape=tuple(shape.items())), progress)[1]
              for language, study in studies.items()}
    return shapes, chosen
