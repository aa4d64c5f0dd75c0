"""AP neurons, LAPE neurons and DiffMean directions on one footing (docs/method.md §11).

Each method's chosen setting (its frontier's recommendation) is scored on the same held-out seeds
against the same reference, so a user can see which unit family steers their model best. Two
further questions: where in depth each method edits, and whether the DiffMean direction is what the
AP neurons write into the residual stream (`direction_alignment`).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..errors import LangneuronsError
from ..hooks import hooks
from ..io import write_table
from ..model import find_blocks
from ..progress import console
from ..steer.apply import chosen_neurons, steer
from ..steer.frontier import score_point, seed_range
from ..steer.intervene import METHODS, Intervention, Setting, load_interventions, parse_blocks, recommended_path
from ..steer.pareto import meets_goal
from ..steer.steerable import Steerable, heldout_sentences

COLUMNS = ["language", "method", "setting", "depth", "target_share", "generated_ppl", "ppl_ratio", "distinct_2",
           "degenerate_share", "usable_share", "meets_goal", "samples", "seeds"]


def method_settings(steerable: Steerable, language: str, published: Path | None = None) -> dict[str, Setting]:
    """Each method's setting for `language`: the frontier's recommendation in the RUN
    (`frontier --method M`), else `<published>/<L>-<method>.json` (as docs/recommended/ holds them)."""
    found = {}
    for method in METHODS:
        for path in (recommended_path(steerable.run, language, method),
                     Path(published) / f"{language}-{method}.json" if published else None):
            if path is not None and path.exists():
                setting = load_interventions(path, steerable.info.fingerprint)
                if setting.interventions and setting.interventions[0].method == method:
                    found[method] = setting
                    break
    return found


def depth(steerable: Steerable, iv: Intervention) -> float:
    """Where in depth `iv` edits, as a share of the depth (0 = the first block, 1 = the last): the
    mean block of the units it forces, or of the blocks a direction is added at."""
    last = max(steerable.info.blocks - 1, 1)
    if iv.method == "diffmean":
        return float(np.mean(sorted(parse_blocks(iv.blocks)))) / last
    block_of = {s["name"]: s["block"] for s in steerable.site_records}
    rows = chosen_neurons(steerable.expertise, iv, block_of, steerable.activation)
    return float(rows["layer"].map(block_of).mean()) / last


def compare_steering(steerable: Steerable, settings: dict[str, dict[str, Setting]], seeds: list[int],
                     batch_size: int = 100, progress: bool = True) -> pd.DataFrame:
    """Score every method's setting for each language (`settings`: language → method → setting, as
    `method_settings` finds them) on `seeds` (with the unforced and reference points,
    stored like the frontier's, so held-out rows the frontier scored are reused) and write
    RUN/analysis/steering_methods.csv: share, perplexity (× the reference's), distinct-2, degenerate and
    usable share, whether the goal is met, and the depth each method edits at."""
    rows = []
    for language, chosen in settings.items():
        if not chosen:
            raise LangneuronsError(f"{language}: no steering setting to compare; run `langneurons frontier "
                                   f"{steerable.run} -l {language} --method M` for M in ap, lape, diffmean, or "
                                   "give --settings DIR holding <L>-<method>.json files")
        base = score_point(steerable, language, "reference", Setting(), seeds, batch_size, progress)["generated_ppl"]
        score_point(steerable, language, "unforced", Setting(), seeds, batch_size, progress)
        for method, setting in chosen.items():
            row = score_point(steerable, language, "forced", setting, seeds, batch_size, progress)
            rows.append({**{k: row.get(k) for k in COLUMNS}, "language": language, "method": method,
                         "setting": setting.label, "depth": round(depth(steerable, setting.interventions[0]), 3),
                         "ppl_ratio": row["generated_ppl"] / base, "meets_goal": meets_goal(pd.Series(row), base),
                         "seeds": seed_range(seeds)})
    table = pd.DataFrame(rows, columns=COLUMNS)
    write_table(table, steerable.run / "analysis" / "steering_methods.csv")
    return table


def residual_shift(steerable: Steerable, setting: Setting | None, texts: list[str], block: int) -> np.ndarray:
    """Mean over the tokens of `texts` of block `block`'s output under `setting` (None: unedited)."""
    lm = steerable.loaded
    path, _ = find_blocks(lm.model)
    plan = steerable.plan(list(setting.interventions)) if setting is not None else None
    total, count = None, 0
    for text in texts:
        ids = lm.tokenizer(text, return_tensors="pt")["input_ids"].to(lm.model.device)
        seen = {}
        grab = {f"{path}.{block}": lambda out: seen.__setitem__("h", out[0] if isinstance(out, tuple) else out)}
        with torch.no_grad(), steer(lm.model, plan), hooks(lm.model, grab):
            lm.model(input_ids=ids)
        states = seen["h"][0, 1:].double().cpu().numpy()  # the first position (BOS) carries no language
        total = states.sum(0) if total is None else total + states.sum(0)
        count += len(states)
    return total / count


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def direction_alignment(steerable: Steerable, settings: dict[str, dict[str, Setting]], sentences: int = 30,
                        draws: int = 3) -> pd.DataFrame:
    """For each language of `settings` (language → method → setting), the cosine between its DiffMean
    direction v at the block its chosen DiffMean setting edits and what its chosen AP units add to that
    block's output (edited − unedited, mean over the tokens of held-out English sentences, the units
    forced at every position). Controls: the same count of random units (`draws` draws), and the AP
    shift's best cosine with another language's v.
    Writes RUN/analysis/diffmean_alignment.csv."""
    if steerable.directions is None:
        raise LangneuronsError(f"{steerable.run}: no DiffMean directions; run `langneurons find --method all`")
    english = "en" if "en" in steerable.info.languages else steerable.info.languages[0]
    texts = heldout_sentences(english, sentences)
    rows, unedited = [], {}  # block → the unedited mean, shared by the languages steered at that block
    for language, chosen in settings.items():
        if "ap" not in chosen or "diffmean" not in chosen:
            continue
        block = min(parse_blocks(chosen["diffmean"].interventions[0].blocks))
        ap = replace(chosen["ap"].interventions[0], positions="all", blocks="")
        if block not in unedited:
            unedited[block] = residual_shift(steerable, None, texts, block)
        plain = unedited[block]
        shift = residual_shift(steerable, Setting((ap,)), texts, block) - plain
        v = steerable.directions.vector(language, block).astype(np.float64)
        random = [cosine(residual_shift(steerable, Setting((replace(ap, selection="random", seed=d),)), texts, block)
                         - plain, v) for d in range(1, draws + 1)]
        others = {o: cosine(shift, steerable.directions.vector(o, block)) for o in steerable.directions.languages
                  if o != language}
        best_other = max(others, key=others.get) if others else ""
        aligned = cosine(shift, v)
        console.print(f"{language}: block {block}, cos(AP shift, v) {aligned:.3f}")
        rows.append({"language": language, "block": block, "n": ap.n, "cos_ap": aligned,
                     "cos_random_mean": float(np.mean(random)), "cos_random_max": float(np.max(random)),
                     "best_other_language": best_other, "cos_other": others.get(best_other, float("nan")),
                     "ap_shift_norm": float(np.linalg.norm(shift)),
                     "v_norm": float(np.linalg.norm(v)), "sentences": len(texts)})
    table = pd.DataFrame(rows)
    write_table(table, steerable.run / "analysis" / "diffmean_alignment.csv")
    return table
