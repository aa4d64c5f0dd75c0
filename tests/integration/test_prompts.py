"""Steering on prompts with a tiny model: prompt files, chat templates, stop strings, prompt-tail
positions, prompted records and their scores, and the CLI."""

import csv
from dataclasses import replace
import json

import pytest
import torch
from conftest import make_model
from typer.testing import CliRunner

from langneurons.cli import app
from langneurons.errors import LangneuronsError
from langneurons.find.run import find
from langneurons.steer.apply import Edit, Plan
from langneurons.steer.evaluate import content_score, shuffled_partners
from langneurons.steer.generate import Sampling, generate, generate_batch
from langneurons.steer.intervene import Intervention, Setting, position_parts
from langneurons.steer.prompts import (
    Prompt,
    load_prompts,
    request_prompts,
    split_of,
    templated,
    translation_prompts,
)
from langneurons.steer.steerable import open_run
from langneurons.steer.task import prompt_records, task_scores

TEMPLATE = ("{% for m in messages %}<bos>[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}"
            "{% if add_generation_prompt %}[assistant] {% endif %}")


@pytest.fixture
def steerable(corpus_dir, tmp_path):
    loaded = make_model("llama")
    find(tmp_path / "run", corpus=str(corpus_dir), loaded=loaded, progress=False)
    return open_run(tmp_path / "run", loaded=loaded)


def forced_values(steerable, values: dict[str, float], prompt: list[int]) -> list[list[float | None]]:
    """Per forward and sequence position, which of `values` (positions → the value forced there)
    reaches the activation (None: the model's own)."""
    model, tok = steerable.loaded.model, steerable.loaded.tokenizer
    act = dict(model.named_modules())["model.layers.1.mlp.act_fn"]  # sees gate_proj's edited output
    plan = Plan({"model.layers.1.mlp.gate_proj": {
        positions: Edit(torch.tensor([0]), torch.zeros(1), torch.tensor([value])) for positions, value in values.items()
    }}, steerable.widths)
    forced, calls = set(values.values()), []
    handle = act.register_forward_pre_hook(
        lambda _m, args: calls.append([v if v in forced else None for v in args[0][0, :, 0].tolist()]))
    try:
        generate_batch(model, tok, [prompt], [1], Sampling(max_new_tokens=3, temperature=1.0), plan)
    finally:
        handle.remove()
    return calls


def edited_positions(steerable, positions: str, prompt: list[int]) -> list[list[bool]]:
    """Per forward, which sequence positions reach the activation with the forced value 9."""
    return [[v == 9.0 for v in call] for call in forced_values(steerable, {positions: 9.0}, prompt)]


def test_prompt_tail_edits_only_the_last_prompt_tokens_and_joins_with_generated(steerable):
    prompt = [2, 5, 6, 7, 8]
    assert edited_positions(steerable, "prompt-tail:2", prompt) == [[False] * 3 + [True] * 2, [False], [False]]
    assert edited_positions(steerable, "prompt-tail:2+generated", prompt) == [[False] * 3 + [True] * 2, [True], [True]]
    assert edited_positions(steerable, "prompt-tail:9", prompt)[0] == [True] * 5  # longer than the prompt: all of it
    assert position_parts("prompt-tail:8+generated") == [("prompt-tail", 8), ("generated", 0)]
    for bad in ("prompt-tail:0", "generated+generated", "all+generated", "prompt-tail"):
        with pytest.raises(LangneuronsError, match="positions"):
            Intervention("de", 4, positions=bad)


def test_the_reread_after_an_opening_keeps_every_other_edit_where_it_was(steerable):
    """After a prefix:K opening the text is read again without the opening's edit, but with the
    prompt-tail and answer edits at the positions they had while it was written."""
    prompt, tail, answer, opening = [2, 5, 6, 7, 8], 9.0, 5.0, 7.0
    calls = forced_values(steerable, {"prompt-tail:2": tail, "generated": answer, "prefix:1": opening}, prompt)
    assert calls[0] == [opening] * 5  # the prompt pass: the opening's edit is written last, over the tail's
    assert calls[1] == [None, None, None, tail, tail, answer]  # the reread: prompt + 1 new token
    assert calls[2] == [answer]
    joined = forced_values(steerable, {"prompt-tail:2+generated": tail, "prefix:1": opening}, prompt)[1]
    assert joined == [None, None, None, tail, tail, tail]
    first = forced_values(steerable, {"first:2": tail, "prefix:2": opening}, prompt)
    assert first[2] == [tail] * 6 + [None]  # first:2 edited the prompt and new token 1, not token 2


def test_prompt_files_of_every_kind(tmp_path):
    (tmp_path / "p.txt").write_text("Say hello.\\nThen stop.\n\nName a colour.\n", encoding="utf-8")
    txt = load_prompts(str(tmp_path / "p.txt"))
    assert [p.text for p in txt] == ["Say hello.\nThen stop.", "Name a colour."]
    assert [p.id for p in txt] == ["line-1", "line-3"]
    (tmp_path / "p.jsonl").write_text('{"id": "a", "prompt": "Hi", "reference": "Hallo"}\n{"prompt": "Yes"}\n')
    jsonl = load_prompts(str(tmp_path / "p.jsonl"))
    assert jsonl[0] == Prompt("a", "Hi", "Hallo") and jsonl[1].id == "line-2" and jsonl[1].reference is None
    with open(tmp_path / "p.csv", "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([["id", "prompt"], ["x", "One, two"], ["y", "Three"]])
    assert [(p.id, p.text) for p in load_prompts(str(tmp_path / "p.csv"))] == [("x", "One, two"), ("y", "Three")]
    datasets = pytest.importorskip("datasets")
    datasets.Dataset.from_dict({"prompt": ["Alpha", "Beta"], "id": ["1", "2"]}).save_to_disk(str(tmp_path / "ds"))
    assert [(p.id, p.text) for p in load_prompts(f"hf:{tmp_path / 'ds'}")] == [("1", "Alpha"), ("2", "Beta")]


@pytest.mark.parametrize("content, message", [
    ('{"id": "a", "prompt": "x"}\n{"id": "a", "prompt": "y"}\n', "ids must be unique"),
    ('{"prompt": "x"}\n{"text": "y"}\n', ':2: needs a non-empty "prompt"'),
    ('{"prompt": "x"}\n{"prompt": \n', ":2: malformed JSON"),
    ('{"prompt": "x", "reference": 3}\n', '"reference" must be text'),
])
def test_bad_prompt_files_name_the_line(tmp_path, content, message):
    (tmp_path / "p.jsonl").write_text(content)
    with pytest.raises(LangneuronsError, match=message):
        load_prompts(str(tmp_path / "p.jsonl"))


def test_bad_prompt_sources_are_refused(tmp_path):
    (tmp_path / "p.csv").write_text("text\nhello\n")
    with pytest.raises(LangneuronsError, match="needs a `prompt` column"):
        load_prompts(str(tmp_path / "p.csv"))
    (tmp_path / "p.md").write_text("hello\n")
    with pytest.raises(LangneuronsError, match="a .txt"):
        load_prompts(str(tmp_path / "p.md"))
    with pytest.raises(LangneuronsError, match="no such file"):
        load_prompts(str(tmp_path / "none.txt"))
    with pytest.raises(LangneuronsError, match="no English name"):
        request_prompts("xx")


def test_builtin_prompts_split_in_two_and_name_the_language():
    choose, held = request_prompts("de", "choose"), request_prompts("de", "heldout")
    assert len(choose) + len(held) == 180 and min(len(choose), len(held)) > 60
    assert not {p.id for p in choose} & {p.id for p in held}
    assert all("German" in p.text and p.text.startswith("Q: ") and p.source for p in choose)
    paper, named = translation_prompts("fr", "heldout:choose"), translation_prompts("fr", "heldout:choose", named=True)
    assert [p.id for p in paper] == [p.id for p in named] and all(split_of(p.id) == "choose" for p in paper)
    assert "Target Language:" in paper[0].text and named[0].text.endswith("French:")
    assert paper[0].reference and paper[0].source in paper[0].text


def test_chat_template_wraps_prompts_once_and_a_tokenizer_without_one_is_refused(steerable):
    tok = steerable.loaded.tokenizer
    with pytest.raises(LangneuronsError, match="no chat template"):
        templated([Prompt("a", "Hi")], tok)
    tok.chat_template = TEMPLATE
    try:
        [wrapped] = templated([Prompt("a", "Hi")], tok)
        assert wrapped.text == "<bos>[user] Hi\n[assistant] " and not wrapped.special_tokens
        ids = tok(wrapped.text, add_special_tokens=wrapped.special_tokens)["input_ids"]
        assert ids.count(tok.bos_token_id) == 1  # the template's BOS, not a second one
        [record] = prompt_records(steerable, Setting(), [wrapped], [1], Sampling(max_new_tokens=4), progress=False)
        assert record["prompt"] == wrapped.text and record["prompt_id"] == "a" and record["source"] == "Hi"
        [shown] = templated([Prompt("a", "Hi")], tok, (("Say it. Reply in German.", "Hallo."),))  # an earlier turn
        assert shown.text == "<bos>[user] Say it. Reply in German.\n<bos>[assistant] Hallo.\n<bos>[user] Hi\n[assistant] "
        assert shown.source == "Hi"
    finally:
        tok.chat_template = None


def test_example_turns_answer_generic_requests_with_the_runs_sentences_of_the_language(steerable):
    from langneurons.io import read_jsonl
    from langneurons.steer.prompts import example_turns, with_examples

    german = [s["text"] for s in read_jsonl(steerable.run / "sentences.jsonl") if s["lang"] == "de"]
    turns = steerable.example_turns("de")
    assert turns == (("Tell me one piece of news. Reply in German.", german[0]),
                     ("Describe something you saw today. Reply in German.", german[len(german) // 2]))
    [shown] = with_examples([Prompt("q", "Q: Why?\nA:", source="Why?")], turns)
    assert shown.text == (f"Q: Tell me one piece of news. Reply in German.\nA: {german[0]}\n\n"
                          f"Q: Describe something you saw today. Reply in German.\nA: {german[len(german) // 2]}"
                          "\n\nQ: Why?\nA:")
    assert shown.source == "Why?" and with_examples([Prompt("p", "Hi")], turns)[0].source == "Hi"
    with pytest.raises(LangneuronsError, match="the run has 1 sentence"):
        example_turns("de", ["Ein Satz."])


def test_a_stop_string_ends_the_answer_and_is_not_kept(steerable):
    model, tok = steerable.loaded.model, steerable.loaded.tokenizer
    free = generate(model, tok, ["The cat"], [3], Sampling(max_new_tokens=30), progress=False)[0]
    stop = free.strip()[3:6]
    cut = generate(model, tok, ["The cat"], [3], Sampling(max_new_tokens=30, stop=(stop,)), progress=False)[0]
    assert stop not in cut and free.startswith(cut) and len(cut) < len(free)
    with pytest.raises(ValueError, match="empty string"):
        Sampling(stop=("",))


def test_prompted_records_one_per_prompt_and_seed_with_id_reference_and_scores(steerable):
    prompts = [Prompt("p1", "The cat", "Die Katze", "The cat"), Prompt("p2", "Rain", "Regen", "Rain")]
    records = prompt_records(steerable, Setting((Intervention("de", 8, positions="prompt-tail:2+generated"),)),
                             prompts, [1, 2], Sampling(max_new_tokens=6), progress=False)
    assert [(r["prompt_id"], r["seed"]) for r in records] == [("p1", 1), ("p1", 2), ("p2", 1), ("p2", 2)]
    assert all(r["reference"] and r["source"] and r["mode"] == "prompts" for r in records)
    row = task_scores(records, "de", steerable)
    for key in ("target_share", "chrf", "bleu", "lpr", "degenerate_share", "generated_ppl", "content",
                "content_recovered"):
        assert key in row, key
    assert row["english_leakage"] != row["english_leakage"]  # NaN: defined for zh/ja only


def test_content_score_is_zero_when_answers_carry_nothing_of_their_prompt(steerable):
    model, tok = steerable.loaded.model, steerable.loaded.tokenizer
    assert shuffled_partners(["a", "a", "b", "c"]) == [2, 2, 3, 0]
    same = content_score(model, tok, ["Hallo."] * 3, ["The cat", "Rain", "Trains"], "{answer}\nEnglish:")
    assert same["content"] == pytest.approx(0.0, abs=1e-6)
    own = content_score(model, tok, ["The cat", "Rain", "Trains"], ["The cat", "Rain", "Trains"],
                        "{answer}\nEnglish:")
    assert set(own) == {"content", "content_real", "content_shuffled", "content_recovered", "content_target"}
    some = content_score(model, tok, ["The cat", "Rain", "Trains"], ["The cat", "Rain", "Trains"],
                         "{answer}\nEnglish:", on_target=[True, False, False])
    assert some["content"] == pytest.approx(own["content"]) and some["content_target"] != own["content_target"]


@pytest.fixture
def saved_run(saved_tiny, corpus_dir, tmp_path):
    """A run of the tiny Llama saved to disk, as the CLI needs it."""
    find(tmp_path / "saved-run", model=str(saved_tiny), corpus=str(corpus_dir), device="cpu", progress=False)
    return open_run(tmp_path / "saved-run", device="cpu")


def test_generate_cli_answers_prompts_with_a_stop_and_sampling_options(saved_run, tmp_path):
    steerable = saved_run
    (tmp_path / "p.jsonl").write_text('{"id": "q1", "prompt": "Q: Why?\\nA:"}\n{"id": "q2", "prompt": "Q: How?\\nA:"}\n')
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(app, ["generate", str(steerable.run), "-l", "de", "--prompts", str(tmp_path / "p.jsonl"),
                                      "--stop", "\\nQ:", "--max-new-tokens", "5", "--seeds", "1-2",
                                      "--positions", "generated", "--n", "20", "--out", str(out)])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["prompt_id"] for r in records] == ["q1", "q1", "q2", "q2"] and all("\nQ:" not in r["text"] for r in records)
    plain = CliRunner().invoke(app, ["evaluate", str(out), "-l", "de"])
    scored = CliRunner().invoke(app, ["evaluate", str(out), "-l", "de", "--run", str(steerable.run), "--device", "cpu"])
    assert plain.exit_code == 0 and "lpr" in plain.output and "content" not in plain.output, plain.output
    assert scored.exit_code == 0 and "content:" in scored.output and "generated_ppl" in scored.output, scored.output
    shown = CliRunner().invoke(app, ["generate", str(steerable.run), "-l", "de", "--prompts", str(tmp_path / "p.jsonl"),
                                     "--examples", "--n", "20", "--max-new-tokens", "3", "--out", str(out)])
    assert shown.exit_code == 0, shown.output
    turns = "".join(f"Q: {q}\nA: {a}\n\n" for q, a in steerable.example_turns("de"))
    assert [(r["prompt"], r["source"]) for r in map(json.loads, out.read_text().splitlines())] == \
        [(turns + "Q: Why?\nA:", "Q: Why?\nA:"), (turns + "Q: How?\nA:", "Q: How?\nA:")]
    bad = CliRunner().invoke(app, ["generate", str(steerable.run), "-l", "de", "--translate", "heldout",
                                   "--examples", "--n", "20", "--out", str(out)])
    assert bad.exit_code == 2 and "--examples: only with --prompts" in bad.output
    bad = CliRunner().invoke(app, ["generate", str(steerable.run), "-l", "de", "--prompts", str(tmp_path / "p.jsonl"),
                                   "--chat-template", "--out", str(out)])
    assert bad.exit_code == 2 and "no chat template" in bad.output
    bad = CliRunner().invoke(app, ["generate", str(steerable.run), "-l", "de", "--prompts", str(tmp_path / "p.jsonl"),
                                   "--temperature", "0", "--out", str(out)])
    assert bad.exit_code == 2 and "temperature" in bad.output


def test_sweep_cli_takes_the_sampling_options_and_names_a_bad_one(saved_run):
    run = saved_run.run
    result = CliRunner().invoke(app, ["sweep", str(run), "--languages", "de", "--ns", "0", "--modes", "translation",
                                      "--limit", "1", "--max-new-tokens", "3", "--stop", "\\n", "--ppl-sentences", "0",
                                      "--device", "cpu"])
    assert result.exit_code == 0, result.output
    [cell] = [json.loads(p.read_text()) for p in (run / "sweep").glob("*.json")]
    assert cell["samples_from"] == 'heldout limit 1 sampling {"max_new_tokens": 3, "stop": ["\\n"]}'
    bad = CliRunner().invoke(app, ["sweep", str(run), "--ns", "0", "--chat-template", "--device", "cpu"])
    assert bad.exit_code == 2 and "--chat-template: text from BOS has no prompt" in bad.output, bad.output


def test_a_task_frontier_given_a_points_file_scores_those_points_only(saved_run, tmp_path):
    import pandas as pd

    run = saved_run.run
    (tmp_path / "points.json").write_text(json.dumps({"points": [[{"n": 20, "positions": "generated"}]]}))
    result = CliRunner().invoke(app, ["frontier", str(run), "-l", "de", "--task", "translation", "--points",
                                      str(tmp_path / "points.json"), "--limit", "1", "--heldout-split", "",
                                      "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "recommended for de-translation (chosen on part choose): de-both-20-on_p50-generated →" in result.output
    table = pd.read_csv(run / "frontier" / "de-translation.csv")
    searched = table[table["searched"]]
    assert list(zip(searched["n"], searched["positions"])) == [(20, "generated")]  # not the AP grid's openings
    result = CliRunner().invoke(app, ["frontier", str(run), "-l", "de", "--task", "prompts", "--examples", "--points",
                                      str(tmp_path / "points.json"), "--limit", "1", "--heldout-split", "",
                                      "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "recommended for de-prompts-examples (chosen on part choose): de-both-20-on_p50-generated →" in result.output
    assert set(pd.read_csv(run / "frontier" / "de-prompts-examples.csv")["prompt_style"]) == {"given", "examples"}
    # sampled otherwise, rows are made again and chosen from apart: their keys carry the sampling
    result = CliRunner().invoke(app, ["frontier", str(run), "-l", "de", "--task", "translation", "--points",
                                      str(tmp_path / "points.json"), "--limit", "1", "--heldout-split", "",
                                      "--max-new-tokens", "3", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(run / "frontier" / "de-translation.csv")
    assert len(table) and table["key"].str.contains("-choose-sampling[0-9a-f]{8}-first1$").all()
    records = [json.loads(line) for line in next((run / "frontier" / "de-translation").glob(
        "paper-de-both-20-on_p50-generated-choose-sampling*-first1.jsonl")).read_text().splitlines()]
    tokenizer = saved_run.loaded.tokenizer
    assert all(len(tokenizer(r["text"], add_special_tokens=False)["input_ids"]) <= 3 for r in records)
    bad = CliRunner().invoke(app, ["frontier", str(run), "-l", "de", "--examples", "--device", "cpu"])
    assert bad.exit_code == 2 and "--examples: only with --task prompts" in bad.output, bad.output


def test_content_check_writes_each_language_as_it_is_done_and_keeps_the_others(saved_run):
    import pandas as pd

    run = saved_run.run
    for language in ("de", "fr"):
        result = CliRunner().invoke(app, ["content-check", str(run), "--languages", language, "--device", "cpu"])
        assert result.exit_code == 0, result.output
    table = pd.read_csv(run / "analysis" / "content_check.csv")
    assert sorted(table["language"].unique()) == ["de", "fr"]  # the second check kept the first's rows
    assert list(table[table["language"] == "de"]["kind"]) == ["real", "shuffled", "unrelated"]
    assert table["pairs"].min() > 0 and table["content"].notna().all()
    assert table[table["kind"] != "real"]["real_ranks_above"].between(0, 1).all()


def test_the_content_check_shares_its_passes_and_gives_each_kinds_plain_score(steerable):
    from langneurons.steer.task import content_template
    from langneurons.study.content import KINDS, answers_of, validate

    loaded = steerable.loaded
    table = validate(loaded, "de", progress=False).set_index("kind")
    sources, answers = answers_of("de")
    template = content_template("translation", "de")
    for kind in KINDS:  # five passes give what a content score of each kind on its own gives
        alone = content_score(loaded.model, loaded.tokenizer, answers[kind], sources, template)
        assert table.loc[kind, "content"] == pytest.approx(alone["content"], abs=1e-5), kind
        assert table.loc[kind, "recovered"] == pytest.approx(alone["content_recovered"]), kind


def test_task_frontier_scores_baselines_chooses_on_one_part_and_reports_on_the_other(steerable):
    from langneurons.steer.intervene import load_interventions
    from langneurons.steer.taskfrontier import TaskStudy, task_frontier

    points = (Setting((Intervention("de", 20, positions="generated"),)),
              Setting((Intervention("de", 20, value="mix:0.3", positions="prompt-tail:4+generated"),)))
    pairs = steerable.run.parent / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"id": f"s{i}", "en": f"The cat {i}", "de": f"Die Katze {i}"}) + "\n"
                             for i in range(10)))
    study = TaskStudy("de", "translation", str(pairs), points=points, limit=3,
                      sampling=Sampling(max_new_tokens=6, greedy=True, stop_at_newline=True))
    table, best = task_frontier(steerable, study, progress=False)
    choose, held = table[table["split"] == "choose"], table[table["split"] == "heldout"]
    assert set(choose["kind"]) == {"unforced", "paper", "forced"} and len(choose[choose["kind"] == "forced"]) == 2
    assert set(choose.loc[choose["kind"] == "unforced", "prompt_style"]) == {"paper"}  # its own style only
    assert set(held.loc[held["kind"] == "forced", "prompt_style"]) == {"paper", "named"}  # named + steered
    assert held["recommended"].sum() == 2 and choose["recommended"].sum() == 1
    assert (table["samples"] == 3).all()
    for column in ("chrf", "lpr", "degenerate_share", "on_front"):
        assert table[column].notna().all(), column
    searched = table["split"] == "choose"  # ranked on chrF: no content score, and no perplexity
    for column in ("content", "generated_ppl"):
        assert table.loc[~searched, column].notna().all() and table.loc[searched, column].isna().all(), column
    saved = load_interventions(steerable.run / "frontier" / "de-translation-recommended.json")
    assert saved.interventions[0].positions == best["positions"]
    again, _ = task_frontier(steerable, study, progress=False)  # read back, nothing generated again
    assert again["chrf"].tolist() == table["chrf"].tolist()
    from langneurons.report.task import summary, task_section

    rows = summary(table)["row"].tolist()
    assert "unforced, paper's prompt" in rows and "unforced, language named" in rows
    assert any(r.startswith("recommended (") and r.endswith("language named") for r in rows)
    html = task_section(steerable.run, ["de"], steerable.run / "figures")
    assert "de-translation, held-out prompts" in html and "task-de-translation" in html


def test_the_default_task_search_holds_a_guarded_opening_and_keeps_its_guard_when_chosen(corpus_dir, tmp_path):
    from langneurons.steer.intervene import load_interventions
    from langneurons.steer.steerable import method_defaults
    from langneurons.steer.taskfrontier import TaskStudy, task_frontier, task_grid

    loaded = make_model("llama")
    find(tmp_path / "all", corpus=str(corpus_dir), loaded=loaded, method="all", progress=False)
    steerable = open_run(tmp_path / "all", loaded=loaded)
    grid = task_grid(steerable, "de")
    lape, _ = method_defaults(steerable, "lape", "de", None, None)
    kinds = {(s.interventions[0].method, s.interventions[0].positions, s.decoding.guard) for s in grid}
    assert {("ap", "all", False), ("ap", "prompt-tail:8+generated", False), ("ap", "prefix:2", True),
            ("diffmean", "generated", False)} <= kinds
    openings = [s for s in grid if s.decoding.guard and len(s.interventions) == 1]  # started, unlooped, distinct
    assert [s.interventions[0].positions for s in openings] == ["prefix:2"] * 2
    assert all(s.decoding.start and s.decoding.no_loops and s.decoding.distinct_starts for s in openings)
    assert all(s.decoding.distinct_starts for s in grid if s.decoding.start)  # a named translation: not English's
    told = [s for s in grid if s.interventions[-1].method == "named"]  # the pair, told the language by the named target
    assert [(s.interventions[2].method, s.interventions[2].value) for s in told] == \
        [("named", "add:1")] * 2 + [("named", "add:2")] * 2 and all(s.decoding.no_loops for s in told)
    shots = [s for s in grid if s.interventions[-1].method == "shots"]  # what worked examples add, alone and opened
    assert [[(iv.method, iv.value, iv.blocks) for iv in s.interventions] for s in shots] == \
        [[("shots", "add:1", "1")]] + [[("ap", "on_p50", ""), ("shots", "add:1", "1")]] * 3
    assert all(s.decoding.no_loops and s.decoding.start and s.interventions[0].positions == "prefix:1" for s in shots[1:])
    answered = [s for s in grid if s.interventions[-1].method == "answer"]  # and what they add on the answer
    assert [[(iv.method, iv.positions, iv.blocks) for iv in s.interventions[1:]] for s in answered] == \
        [[("shots", "prompt-tail:1", "1"), ("answer", "generated", "1")]] * 3
    assert [s.interventions[0] for s in answered] == [s.interventions[0] for s in shots[1:]]  # the same openings
    assert all(s.decoding == shots[1].decoding for s in answered)
    assert len(grid) == 18 - (lape == 0)
    assert not any(iv.method == "shots" for s in task_grid(steerable, "de", names_target=False) for iv in s.interventions)
    tails = [s for s in task_grid(steerable, "de", names_target=False) if len(s.interventions) > 1]
    assert [[iv.positions for iv in s.interventions] for s in tails] == \
        ([["prefix:2", "prompt-tail:4"]] * 2 + [["prefix:2", "prompt-tail:4", "generated"]] * 2) * 2 \
        + [["prefix:2", "prompt-tail:4", "generated"]] * 2 + [["prefix:2", "prompt-tail:4", "prompt-tail:1"]] * 4
    assert all(s.decoding.guard and s.decoding.start and s.decoding.own_starts for s in tails)
    assert not any(s.decoding.distinct_starts for s in task_grid(steerable, "de", names_target=False))
    assert [s.decoding.no_loops for s in tails] == [False] * 4 + [True] * 10
    # the direction at α 0.02, and at 0.03 with the rule only; the named target at α 1 and 2
    assert [(s.interventions[2].method, s.interventions[2].value) for s in tails if len(s.interventions) == 3] == \
        [("diffmean", "add:0.02")] * 4 + [("diffmean", "add:0.03")] * 2 \
        + [("named", "add:1")] * 2 + [("named", "add:2")] * 2
    requests = task_grid(steerable, "de", task="prompts")  # answers of several lines: longer openings
    assert {s.interventions[0].positions for s in requests if s.decoding.guard} == {"prefix:4"}
    assert not any(s.decoding.start for s in requests)
    direction = next(s.interventions[0] for s in requests if s.interventions[0].method == "diffmean")
    assert (direction.value, direction.positions, direction.restore_norm) == ("add:0.04", "generated", False)
    followed = [s for s in requests if len(s.interventions) > 1]  # the opening, then the direction lightly
    assert [[iv.positions for iv in s.interventions] for s in followed] == [["prefix:4", "generated"]] * 4
    assert [s.interventions[-1].value for s in followed] == ["add:0.01"] * 2 + ["add:0.02"] * 2
    assert all(s.decoding.guard and s.decoding.no_loops for s in followed)
    assert not any(s.decoding.no_loops for s in requests if len(s.interventions) == 1)
    assert len(requests) == 11 - (lape == 0)  # the named target joins the best of `followed` later (told_points)
    assert (("lape", "generated", False) in kinds) == (lape > 0)  # a language without LAPE units goes without
    opening = next(s for s in grid if s.decoding.guard)
    study = TaskStudy("de", "translation", named=True, points=(opening,), limit=2,
                      sampling=Sampling(max_new_tokens=4, greedy=True, stop_at_newline=True))
    table, best = task_frontier(steerable, study, progress=False)
    assert bool(best["guard"]) and best["positions"] == "prefix:2"
    held = table[(table["split"] == "heldout") & (table["kind"] == "forced")]
    assert len(held) == 2 and held["guard"].all()  # scored again with its guard, on both prompt styles
    saved = load_interventions(steerable.run / "frontier" / "de-translation-named-recommended.json")
    assert saved.decoding.guard and saved.interventions[0].positions == "prefix:2"


def test_a_task_search_chooses_only_among_its_own_points(steerable):
    from langneurons.steer.taskfrontier import TaskStudy, task_frontier

    sampling = Sampling(max_new_tokens=4, greedy=True, stop_at_newline=True)
    other, ours = (Setting((Intervention("de", n, positions="generated"),)) for n in (30, 10))
    study = TaskStudy("de", "translation", named=True, points=(other,), limit=2, heldout="", sampling=sampling)
    task_frontier(steerable, study, progress=False)  # an earlier search leaves its point in the RUN
    table, best = task_frontier(steerable, replace(study, points=(ours,)), progress=False)
    assert set(table.loc[table["kind"] == "forced", "n"]) == {10, 30}  # both kept in the table
    assert table.loc[table["searched"], "n"].tolist() == [10] and best["n"] != 30  # the earlier point is not chosen


def test_sweep_answers_prompts_and_scores_their_content(steerable, tmp_path):
    from langneurons.steer.sweep import sweep

    (tmp_path / "p.jsonl").write_text('{"id": "a", "prompt": "The cat"}\n{"id": "b", "prompt": "Rain"}\n')
    table = sweep(steerable, ["de"], [0, 10], ["both"], ["prompts"], [1, 2], positions="generated",
                  ppl_sentences=0, progress=False, prompts=str(tmp_path / "p.jsonl"))
    assert list(table["n"]) == [0, 10] and (table["samples"] == 4).all()
    assert table[["lpr", "content", "generated_ppl"]].notna().all().all()
    assert table["samples_from"].str.contains("sha256").all()


def test_sweep_takes_sampling_options_and_the_chat_template_in_every_prompted_mode(steerable, tmp_path):
    from langneurons.steer.generate import SamplingChanges
    from langneurons.steer.sweep import sweep

    (tmp_path / "p.jsonl").write_text('{"id": "a", "prompt": "The cat"}\n')
    tok = steerable.loaded.tokenizer
    tok.chat_template = TEMPLATE
    try:
        table = sweep(steerable, ["de"], [0, 10], ["both"], ["translation", "prompts"], [1], positions="generated",
                      translate_limit=2, ppl_sentences=0, progress=False, prompts=str(tmp_path / "p.jsonl"),
                      sampling=SamplingChanges(max_new_tokens=2, greedy=True), chat_template=True)
    finally:
        tok.chat_template = None
    assert list(table["mode"]) == ["prompts", "prompts", "translation", "translation"]
    assert table["samples_from"].str.endswith('sampling {"greedy": true, "max_new_tokens": 2} chat-template').all()
    records = [json.loads(line) for f in sorted((steerable.run / "sweep").glob("*.jsonl"))
               for line in f.read_text().splitlines()]
    assert len(records) == 6 and all(r["prompt"].startswith("<bos>[user] ") for r in records)
    assert all(len(tok(r["text"], add_special_tokens=False)["input_ids"]) <= 2 for r in records)
    assert sum(bool(r["reference"]) for r in records if r["mode"] == "translation") == 4  # pairs keep their reference
    plain = sweep(steerable, ["de"], [0], ["both"], ["translation"], [1], translate_limit=2, ppl_sentences=0,
                  progress=False)  # without the options: cells of their own
    assert len(plain) == 5 and plain["samples_from"].eq("heldout limit 2").sum() == 1
    with pytest.raises(LangneuronsError, match="--chat-template: text from BOS has no prompt"):
        sweep(steerable, ["de"], [0], ["both"], ["unconditional"], [1], chat_template=True, progress=False)
    with pytest.raises(LangneuronsError, match="sampling options: temperature 0"):
        sweep(steerable, ["de"], [0], ["both"], ["unconditional"], [1], sampling=SamplingChanges(temperature=0),
              progress=False)


def test_target_logprobs_match_a_plain_forward_of_each_row_alone(steerable):
    from langneurons.steer.evaluate import target_logprobs

    model, tok = steerable.loaded.model, steerable.loaded.tokenizer
    contexts = ["Die Katze schläft.\nEnglish:", "Regen\nEnglish:", "Ja\nEnglish:",
                "Der Zug fährt heute nicht.\nEnglish:"]
    targets = ["The cat sleeps on the bank.", "Rain", "Yes, it is", "The train"]  # batched by length, not in order
    batched = target_logprobs(model, tok, contexts, targets, batch_size=2)
    for context, target, got in zip(contexts, targets, batched):
        head = tok(context)["input_ids"]
        tail = tok(" " + target, add_special_tokens=False)["input_ids"]
        with torch.inference_mode():
            logp = torch.log_softmax(model(input_ids=torch.tensor([head + tail])).logits[0].float(), -1)
        expected = logp[len(head) - 1 : -1].gather(-1, torch.tensor(tail)[:, None]).mean()
        assert got == pytest.approx(float(expected), abs=1e-4)


def test_a_task_shape_leaves_the_directions_strength_and_the_language_free():
    from langneurons.steer.taskfrontier import also_shape

    pair = "de-both-4000-on_p50-prompt-tail:4 + de-diffmean-add:0.03-generated-blocks12-16"
    assert also_shape(pair, "de") == "both-4000-on_p50-prompt-tail:4 + diffmean-add-generated-blocks12-16"
    assert also_shape(pair, "de") == also_shape(pair.replace("de-", "fr-").replace("0.03", "0.02"), "fr")
    assert also_shape("", "de") == ""


def test_task_study_settings_are_checked():
    from langneurons.steer.taskfrontier import TaskStudy

    with pytest.raises(LangneuronsError, match="--task 'chat': one of translation, prompts"):
        TaskStudy("de", "chat")
    with pytest.raises(LangneuronsError, match="--named: only with --task translation"):
        TaskStudy("de", "prompts", named=True)
    with pytest.raises(LangneuronsError, match="must differ"):
        TaskStudy("de", choose="heldout", heldout="heldout")
    with pytest.raises(LangneuronsError, match="split 'nowhere': one of choose, heldout, all"):
        TaskStudy("de").prompts_of("paper", "nowhere")


def test_task_search_shares_one_shape_across_languages(steerable):
    import pandas as pd

    from langneurons.steer.shared import TASK_SHAPE, shared_task
    from langneurons.steer.taskfrontier import TaskStudy

    template = TaskStudy("de", "translation", limit=2,
                         sampling=Sampling(max_new_tokens=4, greedy=True, stop_at_newline=True))
    shapes, chosen = shared_task(steerable, ["de", "fr"], template, progress=False)
    assert set(shapes["language"]) == {"de", "fr"} and shapes["chosen"].sum() == 2
    picked = shapes[shapes["chosen"]]
    assert len(picked[list(TASK_SHAPE)].drop_duplicates()) == 1  # the same shape for both; N may differ
    # the paper's prompt adds openings joined by an edit of its tail, one shape in both languages,
    # with and without the no-loops rule
    tails = shapes[shapes["also_shape"].str.contains("prompt-tail:4")]
    for _, rule in tails.groupby(["no_loops", "also_shape"]):
        assert set(rule["language"]) == {"de", "fr"} and len(rule[list(TASK_SHAPE)].drop_duplicates()) == 1
    assert set(tails["no_loops"]) == {False, True}
    # the named target's α is each language's own within the shape
    assert any(shape.endswith(" + named-add-prompt-tail:1-blocks1") for shape in tails["also_shape"])
    assert (steerable.run / "frontier" / "translation-shape.csv").exists()
    for language, best in chosen.items():
        assert all(best[c] == picked[c].iloc[0] for c in TASK_SHAPE), language
        table = pd.read_csv(steerable.run / "frontier" / f"{language}-translation.csv")
        held = table[(table["split"] == "heldout") & (table["kind"] == "forced")]
        assert set(held["prompt_style"]) == {"paper", "named"} and held["recommended"].all()


def test_a_request_search_scores_the_unforced_answers_carried_into_the_language_line_by_line(steerable):
    import pandas as pd

    from langneurons.io import read_jsonl
    from langneurons.report.task import summary
    from langneurons.steer.decoding import Decoding
    from langneurons.steer.intervene import save_interventions
    from langneurons.steer.prompts import NAMED_PROMPT
    from langneurons.steer.task import TRANSLATING
    from langneurons.steer.taskfrontier import TaskStudy, carrier, task_frontier

    opening = Setting((Intervention("de", 20, "both", "on_p50", "prefix:2"),), Decoding(guard=True))
    study = TaskStudy("de", "prompts", points=(opening,), limit=2,
                      sampling=Sampling(max_new_tokens=8, temperature=1.0, top_p=1.0))
    table, best = task_frontier(steerable, study, progress=False)
    carried = table[table["kind"] == "carried"]
    assert len(carried) == 1 and carried["split"].iloc[0] == "heldout" and carried["carried_by"].iloc[0] == "unforced"
    assert best["kind"] == "forced" and not table.loc[table["kind"] == "carried", "recommended"].any()
    shown = table[table["prompt_style"] == "examples"]  # after two example turns: unforced, and the choice held out
    assert sorted(zip(shown["kind"], shown["split"])) == [("forced", "heldout"), ("unforced", "heldout")]
    assert shown.loc[shown["kind"] == "forced", "recommended"].all()
    folder = steerable.run / "frontier" / "de-prompts"
    turns = "".join(f"Q: {q}\nA: {a}\n\n" for q, a in steerable.example_turns("de"))
    given = read_jsonl(folder / f"given-unforced-heldout{study.sampling_tag}-first2.jsonl")
    shown_records = read_jsonl(folder / f"examples-unforced-heldout{study.sampling_tag}-first2.jsonl")
    assert [(r["prompt"], r["source"]) for r in shown_records] == [(turns + r["prompt"], r["source"]) for r in given]
    answers = read_jsonl(folder / f"given-unforced-heldout{study.sampling_tag}-first2.jsonl")
    got = read_jsonl(folder / f"given-carried-by-unforced-heldout{study.sampling_tag}-first2.jsonl")
    assert [r["prompt_id"] for r in got] == [r["prompt_id"] for r in answers]
    for answer, record in zip(answers, got):  # each line translated on its own with the named prompt
        lines = [line.strip() for line in answer["text"].split("\n") if line.strip()]
        prompts = [Prompt(str(k), NAMED_PROMPT.format(name="German", source=line)) for k, line in enumerate(lines)]
        expected = prompt_records(steerable, Setting(), prompts, [1], TRANSLATING, "translation",
                                  progress=False) if prompts else []
        assert record["text"] == "\n".join(r["text"] for r in expected).strip()
    rows = summary(pd.read_csv(folder.parent / "de-prompts.csv"))["row"]
    assert rows.str.startswith("unforced, carried").sum() == 1
    assert {"unforced, after two example turns in the language", "unforced, the prompts"} <= set(rows)
    # with a named-translation recommendation in the RUN, answers are carried by it, in a row of their own
    save_interventions(folder.parent / "de-translation-named-recommended.json", opening, steerable.info.fingerprint)
    assert carrier(steerable, "de") == opening
    table, _ = task_frontier(steerable, study, progress=False)
    assert set(table.loc[table["kind"] == "carried", "carried_by"]) == {"unforced", opening.label}
    current = table.loc[table["current_carrier"].fillna(False).astype(bool), "carried_by"]
    assert list(current) == [opening.label]  # the report shows the bar of the current choice only
    shown = summary(pd.read_csv(folder.parent / "de-prompts.csv"))["row"]
    assert list(shown[shown.str.startswith("unforced, carried")]) == \
        [f"unforced, carried into the language by {opening.label}"]


def test_the_default_request_search_joins_the_named_target_to_its_best_directed_opening(corpus_dir, tmp_path):
    import pandas as pd

    from langneurons.steer.frontier import setting_of
    from langneurons.steer.pareto import same_setting
    from langneurons.steer.taskfrontier import (
        TOLD_ALPHAS,
        TaskStudy,
        directed_openings,
        recommend_task,
        task_frontier,
        task_grid,
    )

    loaded = make_model("llama")
    find(tmp_path / "all", corpus=str(corpus_dir), loaded=loaded, method="all", progress=False)
    steerable = open_run(tmp_path / "all", loaded=loaded)
    study = TaskStudy("de", "prompts", limit=2, heldout="", sampling=Sampling(max_new_tokens=4, temperature=1.0,
                                                                              top_p=1.0))
    table, _ = task_frontier(steerable, study, progress=False)
    searched = table[table["searched"]]
    assert len(searched) == len(set(task_grid(steerable, "de", task="prompts"))) + len(TOLD_ALPHAS)
    assert set(table.loc[table["kind"] == "unforced", "prompt_style"]) == {"given"}  # the other style: held out
    pairs = pd.concat([same_setting(searched, p.columns()) for p in directed_openings(steerable, "de")], axis=1)
    best = setting_of(recommend_task(searched[pairs.any(axis=1)], study))
    told = [setting_of(row) for _, row in searched.iterrows() if "named" in row["also"]]
    assert [s.interventions[1].value for s in told] == [f"add:{a:g}" for a in TOLD_ALPHAS]
    assert all((s.interventions[0], s.interventions[2], s.decoding) == (*best.interventions, best.decoding)
               for s in told)  # the best opening and direction, told the language at the prompt's end
    again, _ = task_frontier(steerable, study, progress=False)  # a rerun reuses every row and scores none
    assert len(again[again["searched"]]) == len(searched) and (again["seconds"] == table["seconds"]).all()


def test_a_request_search_with_examples_chooses_on_the_prompts_after_the_example_turns(steerable):
    from langneurons.steer.decoding import Decoding
    from langneurons.steer.taskfrontier import TaskStudy, task_frontier

    points = (Setting((Intervention("de", 20, "both", "on_p50", "prefix:2"),), Decoding(guard=True)),
              Setting((Intervention("de", 40, "both", "on_p50", "generated"),)))
    study = TaskStudy("de", "prompts", points=points, limit=2, examples=True,
                      sampling=Sampling(max_new_tokens=6, temperature=1.0, top_p=1.0))
    assert (study.name, study.folder, study.style) == ("de-prompts-examples", "de-prompts", "examples")
    table, best = task_frontier(steerable, study, progress=False)
    assert best["prompt_style"] == "examples" and best["split"] == "choose"
    searched = table[(table["kind"] == "forced") & (table["split"] == "choose")]
    assert set(searched["prompt_style"]) == {"examples"} and len(searched) == 2
    held = table[(table["split"] == "heldout") & table["recommended"]]
    assert set(held["prompt_style"]) == {"given", "examples"}  # the choice, held out, with and without examples
    run = steerable.run / "frontier"
    assert (run / "de-prompts-examples-recommended.json").exists() and (run / "de-prompts-examples.csv").exists()
    assert not (run / "de-prompts-examples").exists()  # its rows sit beside the search without examples
    with pytest.raises(LangneuronsError, match="--examples: only with --task prompts"):
        TaskStudy("de", "translation", examples=True)


def test_named_target_directions_are_what_naming_the_language_adds_at_the_prompts_last_token(steerable):
    import numpy as np

    from langneurons.io import read_jsonl
    from langneurons.steer.named import FILE, SOURCES, NamedDirections, nameable
    from langneurons.steer.prompts import NAMED_PROMPT, PAPER_PROMPT

    named = steerable.named_directions()
    assert (steerable.run / FILE).exists()
    assert nameable(["en", "de", "xx"]) == ["de"]  # a language without an English name gets no direction
    assert named.languages == tuple(lang for lang in steerable.info.languages if lang != "en")
    model, tok = steerable.loaded.model, steerable.loaded.tokenizer

    def last_state(text: str) -> torch.Tensor:  # block 0's output at the last token, one prompt alone
        with torch.inference_mode():
            return model(**tok(text, return_tensors="pt"), output_hidden_states=True).hidden_states[1][0, -1]

    sources = [s["text"] for s in read_jsonl(steerable.run / "sentences.jsonl") if s["lang"] == "en"][:SOURCES]
    expected = torch.stack([last_state(NAMED_PROMPT.format(name="German", source=s))
                            - last_state(PAPER_PROMPT.format(source=s)) for s in sources]).mean(0)
    assert np.allclose(named.vector("de", 0), expected.numpy(), atol=1e-4)  # left-padded batches change nothing
    fingerprint = steerable.info.fingerprint
    assert np.array_equal(NamedDirections.read(steerable.run, "named", fingerprint).vectors, named.vectors)
    assert NamedDirections.read(steerable.run, "named", "0" * 64) is None  # made on another run: made again
    kept = (steerable.run / FILE).read_bytes()
    (steerable.run / FILE).write_bytes(kept[: len(kept) // 2])  # damaged from outside: a cache, made again
    assert NamedDirections.read(steerable.run, "named", fingerprint) is None
    (steerable.run / FILE).write_bytes(kept)
    edit = Intervention("de", value="add:2", positions="prompt-tail:1", blocks="0", method="named")
    shift = steerable.plan([edit]).edits[named.blocks[0]]["prompt-tail:1"]
    assert torch.allclose(shift.vector, 2 * torch.from_numpy(named.vector("de", 0)))
    assert edit.label == "de-named-add:2-prompt-tail:1-blocks0"
    with pytest.raises(LangneuronsError, match="method named: value add:α only"):
        Intervention("de", value="clamp:1", positions="prompt-tail:1", blocks="0", method="named")
    with pytest.raises(LangneuronsError, match="not used by method named"):
        Intervention("de", n=10, value="add:1", positions="prompt-tail:1", blocks="0", method="named")


def test_shot_directions_are_what_three_worked_examples_add_to_the_named_prompts_last_token(steerable, monkeypatch):
    import numpy as np

    from langneurons.steer import named
    from langneurons.steer.named import FILES, SHOTS, NamedDirections, directable, example_pool, worked_examples
    from langneurons.steer.prompts import NAMED_PROMPT

    monkeypatch.setattr(named, "SOURCES", 24)  # over the first 24 pairs: enough to check the mean, and quick
    german = steerable.named_directions("shots", ["de"])  # one language's, made alone
    assert (steerable.run / FILES["shots"]).exists() and german.kind == "shots" and german.languages == ("de",)
    answer = NamedDirections.read(steerable.run, "answer", steerable.info.fingerprint)  # made by the same passes
    assert answer is not None and answer.languages == ("de",)
    shots = steerable.named_directions("shots")  # the others are added to the same file
    assert shots.languages == ("de", "fr", "zh") and np.array_equal(shots.vector("de", 0), german.vector("de", 0))
    assert steerable.named_directions("answer").languages == ("de", "fr", "zh")  # and to the answer's, once each
    assert directable("shots", ["en", "de", "xx"]) == ["de"]
    model, tok = steerable.loaded.model, steerable.loaded.tokenizer

    def last_state(text: str) -> torch.Tensor:  # block 0's output at the last token, one prompt alone
        with torch.inference_mode():
            return model(**tok(text, return_tensors="pt"), output_hidden_states=True).hidden_states[1][0, -1]

    pool = example_pool("de")
    sources = [g["en"] for g in pool[:24]]  # the English sides of the pairs the answer direction reads
    shown = worked_examples("de", sources[0], 0, pool)
    assert shown.count("German:") == SHOTS and sources[0] not in shown and shown.endswith("\n\n")
    expected = torch.stack([last_state(worked_examples("de", s, i, pool) + NAMED_PROMPT.format(name="German", source=s))
                            - last_state(NAMED_PROMPT.format(name="German", source=s))
                            for i, s in enumerate(sources)]).mean(0)
    assert np.allclose(shots.vector("de", 0), expected.numpy(), atol=1e-4)
    assert np.array_equal(NamedDirections.read(steerable.run, "shots", steerable.info.fingerprint).vectors, shots.vectors)
    named = steerable.named_directions()  # both kinds side by side, each in its own file
    edits = [Intervention("de", value="add:1", positions="prompt-tail:1", blocks="1", method=kind)
             for kind in ("named", "shots")]
    shift = steerable.plan(edits).edits[shots.blocks[1]]["prompt-tail:1"]
    assert torch.allclose(shift.vector, torch.from_numpy(named.vector("de", 1) + shots.vector("de", 1)), atol=1e-6)
    with pytest.raises(LangneuronsError, match="method shots: value add:α only"):
        Intervention("de", value="clamp:1", positions="prompt-tail:1", blocks="1", method="shots")


def test_answer_directions_are_what_worked_examples_add_over_the_teacher_forced_answers_tokens(steerable, monkeypatch):
    import numpy as np

    from langneurons.steer import named
    from langneurons.steer.named import FILES, directable, example_pool, worked_examples
    from langneurons.steer.prompts import NAMED_PROMPT

    monkeypatch.setattr(named, "SOURCES", 24)  # over the first 24 pairs: enough to check the mean, and quick
    answer = steerable.named_directions("answer", ["de"])
    assert (steerable.run / FILES["answer"]).exists() and answer.kind == "answer"
    assert directable("answer", ["en", "de", "xx"]) == ["de"]
    model, tok = steerable.loaded.model, steerable.loaded.tokenizer
    pool = example_pool("de")

    def answer_states(prompt: str, reply: str) -> torch.Tensor:  # block 0's outputs at the reply's tokens, alone
        ids, tail = tok(prompt)["input_ids"], tok(reply, add_special_tokens=False)["input_ids"]
        with torch.inference_mode():
            states = model(input_ids=torch.tensor([ids + tail]), output_hidden_states=True).hidden_states[1][0]
        return states[-len(tail):]

    shown, plain = [], []
    for i, group in enumerate(pool[:24]):
        prompt, reply = NAMED_PROMPT.format(name="German", source=group["en"]), f" {group['de']}"
        shown.append(answer_states(worked_examples("de", group["en"], i, pool) + prompt, reply))
        plain.append(answer_states(prompt, reply))
    expected = torch.cat(shown).mean(0) - torch.cat(plain).mean(0)  # a mean over every answer token
    assert np.allclose(answer.vector("de", 0), expected.numpy(), atol=1e-4)
    edit = Intervention("de", value="add:1.5", positions="generated", blocks="0", method="answer")
    shift = steerable.plan([edit]).edits[answer.blocks[0]]["generated"]
    assert torch.allclose(shift.vector, 1.5 * torch.from_numpy(answer.vector("de", 0)))
    with pytest.raises(LangneuronsError, match="method answer: value add:α only"):
        Intervention("de", value="clamp:1", positions="generated", blocks="0", method="answer")
