"""The frontier keeps exactly the non-dominated points."""


import numpy as np
import pandas as pd

from langneurons.report.frontier import choice_seeds, load_frontiers, recommendations
from langneurons.steer.pareto import baseline_ppl, kinds, meets_goal, pareto_front, recommend, usable


def brute_force(table):
    keep = []
    for i, a in table.iterrows():
        dominated = False
        for j, b in table.iterrows():
            at_least = b.target_share >= a.target_share and b.generated_ppl <= a.generated_ppl and \
                b.degenerate_share <= a.degenerate_share
            better = b.target_share > a.target_share or b.generated_ppl < a.generated_ppl or \
                b.degenerate_share < a.degenerate_share
            dominated |= i != j and at_least and better
        keep.append(not dominated)
    return table[keep]


def test_front_equals_brute_force_on_random_grids():
    rng = np.random.default_rng(0)
    for _ in range(20):
        table = pd.DataFrame({"target_share": rng.integers(0, 5, 30) / 4,
                              "generated_ppl": rng.integers(10, 15, 30).astype(float),
                              "degenerate_share": rng.integers(0, 3, 30) / 10})
        assert list(pareto_front(table).index) == list(brute_force(table).index)


def test_hand_made_front_and_recommendation():
    table = pd.DataFrame({"target_share": [0.95, 0.95, 0.80, 0.99, 0.50],
                          "generated_ppl": [20.0, 30.0, 10.0, 90.0, 10.0],
                          "degenerate_share": [0.02, 0.02, 0.0, 0.30, 0.0]})
    assert list(pareto_front(table).index) == [0, 2, 3]
    assert recommend(table).name == 0
    # nothing reaches 0.999: the highest share among the non-degenerate points
    assert recommend(table, share=0.999).name == 0


def test_recommendation_keeps_perplexity_near_the_unforced_model():
    table = pd.DataFrame({"n": [0, 200, 2000, 2000],
                          "target_share": [0.0, 0.92, 0.97, 0.60],
                          "generated_ppl": [10.0, 14.0, 16.0, 11.0],
                          "degenerate_share": [0.0, 0.0, 0.01, 0.0]})
    assert recommend(table).name == 1  # 16 > 1.5 x 10
    assert recommend(table, ppl_ratio=2.0).name == 2  # both qualify: the one with more usable samples
    assert recommend(table, share=0.95, ppl_ratio=2.0).name == 2
    assert recommend(table, share=0.99).name == 2  # none reaches the share: the most usable samples


def test_recommendation_prefers_text_that_does_not_collapse_when_perplexity_is_out_of_reach():
    # Gemma-3-270M, de, seeds 1-20: no point is within 1.5x the unforced perplexity
    table = pd.DataFrame({"n": [0, 500, 1000, 500],
                          "target_share": [0.0, 1.0, 0.95, 0.95],
                          "generated_ppl": [4.2, 13.0, 17.0, 23.6],
                          "degenerate_share": [0.0, 0.15, 0.05, 0.0]})
    assert recommend(table).name == 2  # share and degenerate goals met, the most fluent of those
    assert recommend(table, degenerate=0.0).name == 3
    # nothing meets two goals: the most usable samples (share minus degenerate at least: .85/.90/.95)
    assert recommend(table, share=1.01, degenerate=0.0).name == 3


def test_the_goal_is_relative_to_the_reference_when_there_is_one():
    # unforced generation from BOS is English (low perplexity); the reference is the model's own German
    table = pd.DataFrame({"kind": ["unforced", "reference", "forced", "forced"], "n": [0, 0, 2000, 200],
                          "target_share": [0.0, 0.97, 0.93, 0.91],
                          "generated_ppl": [4.4, 12.0, 17.0, 19.0],
                          "degenerate_share": [0.02, 0.0, 0.03, 0.01]})
    assert baseline_ppl(table) == 12.0
    assert recommend(table).name == 2  # 17 <= 1.5 x 12: the most fluent that meets all three goals
    assert meets_goal(table.loc[2], baseline_ppl(table)) and not meets_goal(table.loc[2], 4.4)
    assert baseline_ppl(table[table["kind"] != "reference"]) == 4.4  # else unforced generation
    assert baseline_ppl(table[table["kind"] == "forced"]) != baseline_ppl(table[table["kind"] == "forced"])  # NaN
    assert list(kinds(table.drop(columns="kind"))) == ["unforced", "unforced", "forced", "forced"]  # by N


def test_when_no_setting_meets_the_goals_the_most_usable_one_is_recommended():
    # Gemma-3-270M, de, seeds 1-100: the paper's setting, two steered openings, the reference
    table = pd.DataFrame({"kind": ["reference", "forced", "forced", "forced"], "n": [0, 2000, 4000, 16000],
                          "target_share": [1.0, 0.83, 0.61, 0.91], "generated_ppl": [12.0, 10.0, 8.4, 10.1],
                          "degenerate_share": [0.0, 0.37, 0.05, 0.06], "usable_share": [1.0, 0.50, 0.58, 0.86]})
    assert recommend(table).name == 3  # not the most fluent point that misses the share by 0.29
    assert usable(table.drop(columns="usable_share")).round(2).tolist() == [1.0, 0.46, 0.56, 0.85]
    assert "usable" not in recommend(table).index


def test_the_report_reads_frontier_tables_written_before_composite_points(tmp_path):
    # a de.csv from before `modules`/`also` existed: the report still recommends from it
    (tmp_path / "frontier").mkdir()
    pd.DataFrame({"language": "de", "n": [0, 2000, 16000], "selection": "both", "value": "on_p50",
                  "positions": ["all", "all", "prefix:2"], "blocks": None, "kind": ["reference", "forced", "forced"],
                  "target_share": [1.0, 0.83, 0.91], "generated_ppl": [12.0, 10.0, 10.1],
                  "degenerate_share": [0.0, 0.37, 0.06], "distinct_2": [0.83, 0.42, 0.76], "seeds": "1-100",
                  "ppl_ratio": [1.0, 0.83, 0.84], "paper": [False, True, False]}).to_csv(
        tmp_path / "frontier" / "de.csv", index=False)
    tables = load_frontiers(tmp_path, ["de", "fr"])
    assert list(tables) == ["de"] and (tables["de"][["blocks", "modules", "also"]] == "").all(axis=None)
    assert not tables["de"]["guard"].any()  # nor the guard
    row = recommendations(tables).iloc[0]
    assert (row["n"], row["positions"], row["also"]) == (16000, "prefix:2", "")


def test_the_report_shows_the_choice_made_on_the_seeds_of_the_last_frontier_run():
    # many screens on seeds 1-20, the last choice on 1-100: the report follows the `recommended` mark
    table = pd.DataFrame({"seeds": ["1-20"] * 3 + ["1-100"] * 2, "recommended": [False] * 4 + [True]})
    assert choice_seeds(table) == "1-100"
    assert choice_seeds(table.drop(columns="recommended")) == "1-20"  # older tables: the most rows


def test_the_task_recommendation_never_trades_fluency_for_language_while_a_fluent_point_exists():
    from langneurons.steer.taskfrontier import TaskStudy, recommend_task

    study = TaskStudy("fr", task="prompts")
    table = pd.DataFrame({"key": ["loud", "fluent", "mild", "plain"],
                          "kind": ["forced", "forced", "forced", "unforced"],
                          "language_score": [0.95, 0.85, 0.60, 0.0],
                          "content_value": [0.30, 0.32, 0.40, 0.60],
                          "degenerate_share": [0.15, 0.05, 0.0, 0.0]})
    assert recommend_task(table, study)["key"] == "fluent"  # no point meets the goal: the best fluent one
    met = table.assign(language_score=[0.95, 0.92, 0.91, 0.0])
    assert recommend_task(met, study)["key"] == "mild"  # points meeting it: the most content
    noisy = table.assign(degenerate_share=[0.15, 0.10, 0.20, 0.0])
    assert recommend_task(noisy, study)["key"] == "loud"  # none fluent: the best language score


def test_a_shared_shape_tie_goes_to_the_shape_fluent_in_more_languages():
    from langneurons.steer.shared import pick_shape

    rows = [("loud", "de", 1.00, 0.00, True), ("loud", "fr", 0.80, 0.10, False), ("loud", "es", 0.85, 0.10, False),
            ("calm", "de", 0.60, 0.00, False), ("calm", "fr", 0.90, 0.05, True), ("calm", "es", 0.50, 0.00, False)]
    shapes = pd.DataFrame(rows, columns=["positions", "language", "language_score", "degenerate_share", "meets_goal"])
    shapes["content_value"] = 0.5
    shape = pick_shape(shapes, ("positions",), worst="language_score", mean="content_value")
    assert shape == {"positions": "calm"}  # one language meets the goal in each; calm is fluent in all three
    assert shapes["chosen"].tolist() == [False] * 3 + [True] * 3
    shapes.loc[shapes["positions"] == "loud", "degenerate_share"] = 0.0
    assert pick_shape(shapes, ("positions",), worst="language_score", mean="content_value") == {"positions": "loud"}


def test_a_task_shape_whose_worst_language_is_one_answer_short_ties_and_content_decides():
    from langneurons.steer.shared import pick_shape

    rows = [("sure", "de", 1.00, 30.0), ("sure", "fr", 1.00, 40.0), ("rich", "de", 29 / 30, 33.0),
            ("rich", "fr", 1.00, 43.0), ("thin", "de", 28 / 30, 36.0), ("thin", "fr", 1.00, 45.0)]
    shapes = pd.DataFrame(rows, columns=["positions", "language", "language_score", "content_value"])
    shapes = shapes.assign(degenerate_share=0.0, meets_goal=True, samples=30)
    pick = {"columns": ("positions",), "worst": "language_score", "mean": "content_value"}
    assert pick_shape(shapes, **pick) == {"positions": "sure"}  # without the tie: the higher worst score
    assert pick_shape(shapes, **pick, one_answer=True) == {"positions": "rich"}  # one answer short: content
    assert pick_shape(shapes.assign(samples=60), **pick, one_answer=True) == {"positions": "sure"}  # 2 of 60: not


def test_diffmean_shapes_are_compared_at_each_edits_middle_strength():
    from langneurons.steer.shared import middle_values

    assert middle_values(["add:0.05", "add:0.1", "add:0.2", "clamp:0.5", "clamp:1", "clamp:2"]) == ["add:0.1", "clamp:1"]
    assert middle_values(["add:0.05", "add:0.2", "add:0.3", "clamp:0.5", "clamp:2"]) == ["add:0.2", "clamp:0.5"]
    assert middle_values(["clamp:1.5"]) == ["clamp:1.5"]  # one edit only: its shapes alone


def test_the_diffmean_grid_guards_openings_and_ranges_the_later_blocks():
    from langneurons.steer.diffmean import default_blocks, diffmean_grid

    assert default_blocks(18) == ["9", "12", "14", "12-16"]  # 1/2, 2/3, 4/5 of the depth, and 2/3 to 9/10 together
    assert default_blocks(2) == ["1"]  # no range of one block
    points = diffmean_grid("de", ["clamp:1"], ["12"], [False], ["prefix:3", "all"], [True, False])
    assert [(p.interventions[0].positions, p.decoding.guard) for p in points] == [
        ("prefix:3", True), ("prefix:3", False), ("all", False)]  # the guard only where there is an opening
    started = diffmean_grid("de", ["clamp:1"], ["12"], [False], ["prefix:3", "all"], [True], [False, True])
    assert [(p.interventions[0].positions, p.decoding.start, p.decoding.own_starts) for p in started] == [
        ("prefix:3", False, False), ("prefix:3", True, True), ("all", False, False)]  # the language's own starts


def test_a_hold_follows_the_opening_with_its_direction_blocks_and_norm_rule_on_the_rest():
    import pytest

    from langneurons.errors import LangneuronsError
    from langneurons.steer.diffmean import diffmean_grid, with_flags, with_hold

    opening = diffmean_grid("de", ["clamp:1.5"], ["12-16"], [True], ["prefix:3"], [True], [True])[0]
    assert with_hold(opening, "off") == opening
    held = with_hold(opening, "clamp:0.5")
    first, hold = held.interventions
    assert first == opening.interventions[0] and held.decoding == opening.decoding
    assert (hold.value, hold.positions, hold.blocks, hold.restore_norm, hold.method) == (
        "clamp:0.5", "generated", "12-16", True, "diffmean")
    with pytest.raises(LangneuronsError, match="clamp:β"):
        with_hold(opening, "floor:1")
    # flags that shape the direction move the hold with the opening; its strength and positions stay
    moved = with_flags(held, blocks="14", restore_norm=False, value="clamp:2")
    assert [(iv.value, iv.positions, iv.blocks, iv.restore_norm) for iv in moved.interventions] == [
        ("clamp:2", "prefix:3", "14", False), ("clamp:0.5", "generated", "14", False)]
    everywhere = with_flags(held, positions="all")  # no opening: nothing to hold, no opening rules
    assert len(everywhere.interventions) == 1 and not everywhere.decoding.active
    from langneurons.steer.intervene import Intervention, Setting

    neurons = Intervention("de", 100)  # an edit beside the direction is no hold: it stays
    combined = Setting((*held.interventions, neurons), held.decoding)
    assert with_flags(combined, positions="all").interventions[1:] == (neurons,)
    assert with_flags(held, hold="off") == opening and with_flags(opening, hold="clamp:0.5") == held
    assert with_flags(held, hold="clamp:1").interventions[1].value == "clamp:1"  # replaced, not added
    with pytest.raises(LangneuronsError, match="follows an opening"):
        with_flags(opening, positions="all", hold="clamp:0.5")
