"""Interventions and generation on a tiny model: exact edits, positions, hooks, seeds, CLI."""

import inspect
import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import make_model

from langneurons.errors import LangneuronsError
from langneurons.find.record import record
from langneurons.find.run import find
from langneurons.hooks import hooks
from langneurons.steer.apply import Edit, Plan, resolve, steer
from langneurons.steer.decoding import Decoding
from langneurons.steer.generate import (
    TRANSLATION,
    UNCONDITIONAL,
    Sampling,
    SamplingChanges,
    generate,
    generate_batch,
    next_tokens,
    tall_logits,
)
from langneurons.steer.intervene import (
    Intervention,
    Setting,
    load_interventions,
    save_interventions,
)
from langneurons.steer.prompts import Prompt
from langneurons.steer.rules import guard_opening, opening_vocabulary, sentence_start
from langneurons.steer.steerable import open_run
from langneurons.steer.task import prompt_records


@pytest.fixture
def steerable(corpus_dir, tmp_path):
    loaded = make_model("llama")
    find(tmp_path / "run", corpus=str(corpus_dir), loaded=loaded, progress=False)
    return open_run(tmp_path / "run", loaded=loaded)


def run_means(model, tokenizer, names, plan=None):
    ids = tokenizer(["Die Katze schläft auf der Bank."], return_tensors="pt")
    with torch.inference_mode(), steer(model, plan), record(model, names) as cache:
        cache.set_mask(ids["attention_mask"])
        model.base_model(**ids)
    return {k: v.clone() for k, v in cache.means.items()}


def test_edit_changes_exactly_the_chosen_units(steerable):
    model, tok = steerable.loaded.model, steerable.loaded.tokenizer
    names = [s["name"] for s in steerable.info.sites]
    target = "model.layers.0.mlp.up_proj"
    plan = Plan({target: {"all": Edit(torch.tensor([1, 7]), torch.zeros(2), torch.tensor([2.5, -1.0]))}}, steerable.widths)
    base, steered = run_means(model, tok, names), run_means(model, tok, names, plan)
    assert steered[target][0, [1, 7]].tolist() == pytest.approx([2.5, -1.0], abs=1e-6)
    others = [u for u in range(base[target].shape[1]) if u not in (1, 7)]
    assert torch.equal(base[target][:, others], steered[target][:, others])
    for name in names[: names.index(target)]:
        assert torch.equal(base[name], steered[name])
    assert not torch.equal(base["model.layers.0.mlp.down_proj"], steered["model.layers.0.mlp.down_proj"])


def test_resolve_uses_each_neurons_own_value_and_combines(steerable):
    expertise = steerable.expertise
    plan = resolve([Intervention("de", 6, "both")], expertise, steerable.widths)
    assert plan.n_units == 6
    de = expertise[expertise.concept == "de"].set_index(["layer", "unit"])
    for layer, per in plan.edits.items():
        index, value = per["all"].index, per["all"].add
        expected = de.loc[[(layer, int(u)) for u in index], "on_p50"].to_numpy()
        assert torch.allclose(value.double(), torch.tensor(expected), atol=1e-6)
    two = resolve([Intervention("de", 6, "top"), Intervention("fr", 6, "top")], expertise, steerable.widths)
    assert 6 < two.n_units <= 12
    zero = resolve([Intervention("de", 4, "top", "zero")], expertise, steerable.widths)
    assert all(float(e.keep.abs().sum() + e.add.abs().sum()) == 0 for per in zero.edits.values() for e in per.values())
    rnd = resolve([Intervention("de", 5, "random", seed=3)], expertise, steerable.widths)
    again = resolve([Intervention("de", 5, "random", seed=3)], expertise, steerable.widths)
    assert rnd.n_units == 5 and rnd.edits.keys() == again.edits.keys()
    assert all(torch.equal(rnd.edits[k]["all"].index, again.edits[k]["all"].index) for k in rnd.edits)


def test_positions_prompt_and_generated(steerable):
    model, tok = steerable.loaded.model, steerable.loaded.tokenizer
    target = "model.layers.1.mlp.gate_proj"
    act = dict(model.named_modules())["model.layers.1.mlp.act_fn"]  # sees gate_proj's edited output
    for positions, expected in (("prompt", [True, False, False]), ("generated", [False, True, True]),
                                ("all", [True, True, True]), ("first:1", [True, False, False]),
                                ("first:2", [True, True, False]), ("first:9", [True, True, True])):
        plan = Plan({target: {positions: Edit(torch.tensor([0]), torch.zeros(1), torch.tensor([9.0]))}}, steerable.widths)
        calls = []
        handle = act.register_forward_pre_hook(lambda _m, args: calls.append(bool((args[0][..., 0] == 9.0).all())))
        try:
            generate_batch(model, tok, [[2, 5, 6]], [1], Sampling(max_new_tokens=3, temperature=1.0), plan)
        finally:
            handle.remove()
        assert calls == expected, positions


def test_first_k_writes_k_tokens_under_the_intervention_then_continues_unforced(steerable):
    model, tok = steerable.loaded.model, steerable.loaded.tokenizer
    greedy = Sampling(max_new_tokens=6, greedy=True)
    edit = lambda positions: steerable.plan([Intervention("de", 40, "both", "scale:50", positions)])
    plain = generate_batch(model, tok, [[2]], [0], greedy)[0]
    forced = generate_batch(model, tok, [[2]], [0], greedy, edit("all"))[0]
    first = generate_batch(model, tok, [[2]], [0], greedy, edit("first:2"))[0]
    assert forced != plain  # the edit changes the text at all
    assert first[:2] == forced[:2]  # tokens 1-2 are written under the edit
    cache_arg = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    with torch.inference_mode():  # then the unforced model continues BOS + t1 (KV made under the edit) + t2
        with steer(model, edit("prompt")):  # "prompt": active in any plain forward
            step = model(input_ids=torch.tensor([[2, first[0]]]), use_cache=True)
        previous = first[1]
        for token in first[2:]:
            cache = step.get("cache") or step.get("past_key_values")
            step = model(input_ids=torch.tensor([[previous]]), use_cache=True, **{cache_arg: cache})
            previous = token
            assert int(step.logits[0, -1].argmax()) == token


def test_prefix_k_continues_the_opening_as_the_unedited_model_reads_it(steerable):
    model, tok = steerable.loaded.model, steerable.loaded.tokenizer
    greedy = Sampling(max_new_tokens=7, greedy=True)
    edit = lambda positions: steerable.plan([Intervention("de", 40, "both", "scale:50", positions)])
    forced = generate_batch(model, tok, [[2, 5]], [0], greedy, edit("all"))[0]
    out = generate_batch(model, tok, [[2, 5]], [0], greedy, edit("prefix:3"))[0]
    assert out[:3] == forced[:3]  # the opening is the edited model's
    assert edit("prefix:3").rereads == {3} and edit("first:3").rereads == set()
    continued = generate_batch(model, tok, [[2, 5] + out[:3]], [0], Sampling(max_new_tokens=4, greedy=True))[0]
    assert out[3:] == continued  # then exactly what the plain model writes after prompt + opening
    first = generate_batch(model, tok, [[2, 5]], [0], greedy, edit("first:3"))[0]
    assert first[:3] == out[:3]  # first:K differs only in keeping the edited keys and values


def test_a_guarded_opening_is_words_none_repeated_then_the_plain_model_goes_on(steerable):
    model, tok = steerable.loaded.model, steerable.loaded.tokenizer
    greedy = Sampling(max_new_tokens=8, greedy=True)
    strong = dict(language="de", n=40, selection="both", value="scale:50", positions="prefix:3")
    guarded = steerable.plan([Intervention(**strong)], Decoding(guard=True))
    assert guarded.guards == {"prefix:3"} and not steerable.plan([Intervention(**strong)]).guards
    out = generate_batch(model, tok, [[2, 5]], [0], greedy, guarded)[0]
    # the opening, step by step: the edited model's most likely token among the allowed ones
    edited = steerable.plan([Intervention(**{**strong, "positions": "all"})])
    words, forms = opening_vocabulary(tok, model.config.vocab_size)
    for k in range(3):
        with torch.inference_mode(), steer(model, edited):
            logits = model(input_ids=torch.tensor([[2, 5] + out[:k]])).logits[:, -1, :]
        allowed = guard_opening(logits, [out[:k]], tok)
        assert int(allowed.argmax()) == out[k] and bool(words[out[k]])
        banned = ~words | torch.isin(forms, forms[out[:k]]) if k else ~words
        assert torch.isinf(allowed[0, banned]).all() and torch.equal(allowed[0, ~banned], logits[0, ~banned])
    assert len({int(forms[t]) for t in out[:3]}) == 3
    plain = generate_batch(model, tok, [[2, 5]], [0], greedy, steerable.plan([Intervention(**strong)]))[0]
    assert not words[plain[:3]].all()  # unguarded, this opening has a token without a letter
    continued = generate_batch(model, tok, [[2, 5] + out[:3]], [0], Sampling(max_new_tokens=5, greedy=True))[0]
    assert out[3:] == continued  # the guard ends with the opening


def test_an_opening_temperature_samples_the_opening_cooler_then_the_plain_model_goes_on(steerable):
    model, tok = steerable.loaded.model, steerable.loaded.tokenizer
    sampling, seeds = Sampling(max_new_tokens=6), list(range(8))
    strong = dict(language="de", n=40, selection="both", value="scale:20", positions="prefix:3")
    cooled = steerable.plan([Intervention(**strong)], Decoding(opening_temperature=0.3))
    assert cooled.temperatures == {"prefix:3": 0.3}
    out = generate_batch(model, tok, [[2, 5]] * len(seeds), seeds, sampling, cooled)
    edited = steerable.plan([Intervention(**{**strong, "positions": "all"})])
    for seed, row in zip(seeds, out):  # token by token, with the seed's own uniform draws
        draws = np.random.default_rng(seed).random(len(row))
        for k, token in enumerate(row):
            with torch.inference_mode(), steer(model, edited if k < 3 else None):
                logits = model(input_ids=torch.tensor([[2, 5] + row[:k]])).logits[:, -1, :]
            step = replace(sampling, temperature=0.3) if k < 3 else sampling  # 0.8 after the opening
            assert int(next_tokens(logits, step, draws[k : k + 1])[0]) == token
    warm = generate_batch(model, tok, [[2, 5]] * len(seeds), seeds, sampling, steerable.plan([Intervention(**strong)]))
    assert [row[:3] for row in warm] != [row[:3] for row in out]  # the temperature changed some openings
    with pytest.raises(LangneuronsError, match="only for an opening"):
        Setting((Intervention("de", 4, positions="all"),), Decoding(opening_temperature=0.5))
    with pytest.raises(LangneuronsError, match="above 0"):
        Decoding(opening_temperature=0)
    assert Setting((Intervention("de", 4, positions="prefix:2"),),
                   Decoding(opening_temperature=0.5)).label.endswith("-prefix:2-T0.5")


def test_a_start_opening_draws_its_first_token_from_the_sentence_starts_then_goes_on_as_before(steerable):
    model, tok = steerable.loaded.model, steerable.loaded.tokenizer
    sampling, seeds = Sampling(max_new_tokens=6), list(range(12))
    strong = dict(language="de", n=40, selection="both", value="scale:20", positions="prefix:3")
    plan = steerable.plan([Intervention(**strong)], Decoding(start=True, start_temperature=1.5))
    starts = steerable.sentence_starts()
    assert plan.starts is starts and plan.start_temperature == 1.5 and 0 < int(starts.sum()) < len(tok)
    out = generate_batch(model, tok, [[2]] * len(seeds), seeds, sampling, plan)
    edited = steerable.plan([Intervention(**{**strong, "positions": "all"})])
    for seed, row in zip(seeds, out):  # token by token, with the seed's own uniform draws
        draws = np.random.default_rng(seed).random(len(row))
        assert starts[row[0]]
        for k, token in enumerate(row):
            with torch.inference_mode(), steer(model, edited if k < 3 else None):
                logits = model(input_ids=torch.tensor([[2] + row[:k]])).logits[:, -1, :]
            step = replace(sampling, temperature=1.5) if k == 0 else sampling  # then 0.8, edited to token 3
            allowed = sentence_start(logits, starts) if k == 0 else logits
            assert int(next_tokens(allowed, step, draws[k : k + 1])[0]) == token
    free = generate_batch(model, tok, [[2]] * len(seeds), seeds, sampling, steerable.plan([Intervention(**strong)]))
    assert not all(starts[row[0]] for row in free)  # without the rule some texts open otherwise
    control = steerable.plan([Intervention("de", 0, positions="prefix:3")], Decoding(start=True))
    assert control is not None and not control.edits and control.starts is starts  # the rule alone: a control
    with pytest.raises(LangneuronsError, match="start: only for the first token of an opening"):
        Setting((Intervention("de", 4, positions="all"),), Decoding(start=True))
    with pytest.raises(LangneuronsError, match="only with start"):
        Decoding(start_temperature=1.3)
    own = steerable.plan([Intervention(**strong)], Decoding(start=True, own_starts=True)).starts
    assert own is steerable.sentence_starts("de") and 0 < int(own.sum()) < int(starts.sum())
    assert Setting((Intervention(**strong),), Decoding(start=True, own_starts=True)).label.endswith("-start-own")
    with pytest.raises(LangneuronsError, match="own_starts: only with start"):
        Decoding(own_starts=True)
    distinct = Decoding(start=True, own_starts=True, distinct_starts=True)
    kept = steerable.plan([Intervention(**strong)], distinct).starts
    english = steerable.sentence_starts("en")
    assert torch.equal(kept, own & ~english) and not (kept & english).any() and int(kept.sum()) > 0
    assert Setting((Intervention(**strong),), distinct).label.endswith("-start-own-distinct")
    with pytest.raises(LangneuronsError, match="distinct_starts: only with own_starts"):
        Decoding(start=True, distinct_starts=True)
    with pytest.raises(LangneuronsError, match="the target is English"):
        steerable.plan([Intervention(**{**strong, "language": "en"})], distinct)
    with pytest.raises(LangneuronsError, match="need one language"):
        steerable.plan([Intervention(**strong), Intervention(**{**strong, "language": "fr"})],
                       Decoding(start=True, own_starts=True))
    with pytest.raises(LangneuronsError, match="above 0"):
        Decoding(start=True, start_temperature=0)
    with pytest.raises(LangneuronsError, match="sentence-start tokens"):
        resolve([Intervention("de", 4, positions="prefix:2")], steerable.expertise, steerable.widths,
                decoding=Decoding(start=True))
    label = Setting((Intervention("de", 4, positions="prefix:2"),),
                    Decoding(guard=True, start=True, start_temperature=1.3)).label
    assert label.endswith("-prefix:2-guard-start-S1.3")


def test_the_guard_knows_words_and_their_spaced_forms(steerable):
    tok = steerable.loaded.tokenizer
    words, forms = opening_vocabulary(tok, len(tok) + 3)
    text = {i: tok.decode([i]) for i in range(len(tok))}
    assert not words[[tok.bos_token_id, tok.eos_token_id, tok.pad_token_id]].any()  # special tokens
    assert not words[len(tok):].any()  # ids of the model's head the tokenizer lacks
    assert {bool(words[i]) for i, t in text.items() if t in (",", ".", "1", " ")} == {False}
    pairs = [(i, j) for i, t in text.items() for j, u in text.items() if i != j and t.strip() == u.strip() and words[i]]
    assert pairs and all(forms[i] == forms[j] for i, j in pairs)  # e.g. "die" and " die"
    with pytest.raises(LangneuronsError, match="guard: only for the tokens of an opening"):
        Setting((Intervention("de", 4, positions="all"),), Decoding(guard=True))
    assert Setting((Intervention("de", 4, positions="first:2"),), Decoding(guard=True)).label.endswith("-first:2-guard")


@pytest.mark.parametrize("spec", ["first", "first:0", "first:x", "last:3", "All"])
def test_bad_positions_are_refused_with_the_choices(spec):
    with pytest.raises(LangneuronsError, match="first:K"):
        Intervention("de", 4, positions=spec)


def test_hooks_removed_after_exception_in_steering(steerable):
    model = steerable.loaded.model
    plan = steerable.plan([Intervention("de", 10, "both")])
    with pytest.raises(ValueError):
        with steer(model, plan):
            raise ValueError("inside")
    assert all(not m._forward_hooks for m in model.modules())


def test_same_seed_same_text_whatever_the_batch(steerable):
    model, tok = steerable.loaded.model, steerable.loaded.tokenizer
    plan = steerable.plan([Intervention("fr", 10, "both")])
    seeds = list(range(1, 9))
    together = generate(model, tok, None, seeds, UNCONDITIONAL, plan, batch_size=8, progress=False)
    apart = generate(model, tok, None, seeds, UNCONDITIONAL, plan, batch_size=3, progress=False)
    single = generate(model, tok, None, seeds[:2], UNCONDITIONAL, plan, batch_size=1, progress=False)
    assert together == apart and together[:2] == single
    assert len(set(together)) > 1  # different seeds give different samples


def test_n_zero_is_bit_for_bit_the_baseline(steerable):
    model, tok = steerable.loaded.model, steerable.loaded.tokenizer
    ids = tok(["The cat sleeps."], return_tensors="pt")
    with torch.inference_mode():
        plain = model(**ids).logits
        with steer(model, steerable.plan([Intervention("de", 0, "both")])):
            zero = model(**ids).logits
    assert torch.equal(plain, zero)


def test_intervention_files_roundtrip_and_refuse_other_runs(steerable, tmp_path):
    ivs = [Intervention("de", 20, "top", "scale:2"), Intervention("fr", 4, "bottom", "zero", "generated")]
    save_interventions(tmp_path / "iv.json", Setting(tuple(ivs)), steerable.info.fingerprint)
    assert load_interventions(tmp_path / "iv.json", steerable.info.fingerprint) == Setting(tuple(ivs))
    with pytest.raises(LangneuronsError, match="made for another run"):
        load_interventions(tmp_path / "iv.json", "0" * 64)
    with pytest.raises(LangneuronsError, match="value 'scale:x'"):
        Intervention("de", 2, "top", "scale:x")
    with pytest.raises(LangneuronsError, match="selection 'middle'"):
        Intervention("de", 2, "middle")
    for value in ("clamp:2", "clamp:on_p50:1", "clamp:zero"):
        with pytest.raises(LangneuronsError, match="clamp\\[:base\\]"):
            Intervention("de", 2, "top", value)


def test_modules_restrict_the_neurons_and_a_filter_matching_nothing_is_refused(steerable):
    plan = steerable.plan([Intervention("de", 30, "both", modules="mlp.up_proj,mlp.down_proj")])
    assert plan.n_units == 30 and all(name.endswith(("mlp.up_proj", "mlp.down_proj")) for name in plan.edits)
    with pytest.raises(LangneuronsError, match="modules 'mlp.fc9': no neuron of this run"):
        steerable.plan([Intervention("de", 4, modules="mlp.fc9")])


def test_translation_records_stop_at_newline(steerable):
    prompts = [Prompt(str(i), f"English: {en}\nGerman:", ref, en)
               for i, (en, ref) in enumerate([("The cat sleeps.", "Die Katze schläft."), ("Rain tonight.", "Regen.")])]
    records = prompt_records(steerable, Setting((Intervention("de", 4),)), prompts, [0], TRANSLATION, "translation",
                             batch_size=2, progress=False)
    assert len(records) == 2 and all("\n" not in r["text"] for r in records)
    assert records[0]["reference"] == "Die Katze schläft." and json.dumps(records)


def test_sampling_changes_replace_only_the_options_given_and_bad_ones_are_named():
    changes = SamplingChanges(max_new_tokens=5, stop=["\nQ:"])
    assert changes.on(TRANSLATION) == replace(TRANSLATION, max_new_tokens=5, stop=("\nQ:",))
    assert changes.given == {"max_new_tokens": 5, "stop": ("\nQ:",)} and SamplingChanges().on(UNCONDITIONAL) == UNCONDITIONAL
    with pytest.raises(LangneuronsError, match="sampling options: temperature 0"):
        SamplingChanges(temperature=0).on(UNCONDITIONAL)


@pytest.mark.parametrize("value", ["on_p50", "scale:2", "shift:0.5", "mix:0.25", "zero", "scale:0.5:off_mean", "clamp"])
def test_each_strategy_is_exact_arithmetic_on_the_recorded_output(steerable, value):
    model, tok = steerable.loaded.model, steerable.loaded.tokenizer
    iv = Intervention("de", 6, "top", value, blocks="1")
    plan = steerable.plan([iv])
    assert set(plan.edits) <= {s["name"] for s in steerable.info.sites if s["block"] == 1}
    names = list(plan.edits)
    ids = tok(["Die Katze schläft."], return_tensors="pt")
    outputs = {}
    for label, p in (("plain", None), ("steered", plan)):
        seen = {}
        with torch.inference_mode(), steer(model, p), hooks(model, {n: (lambda out, n=n: seen.__setitem__(n, out.clone())) for n in names}):
            model.base_model(**ids)
        outputs[label] = seen
    de = steerable.expertise[steerable.expertise.concept == "de"].set_index(["layer", "unit"])
    order = [s["name"] for s in steerable.info.sites]
    first = min(names, key=order.index)  # the earliest edited module sees an unchanged input
    index = plan.edits[first]["all"].index
    stats = de.loc[[(first, int(u)) for u in index]]
    on, off = torch.tensor(stats["on_p50"].to_numpy()).float(), torch.tensor(stats["off_mean"].to_numpy()).float()
    before, after = outputs["plain"][first][..., index], outputs["steered"][first][..., index]
    expected = {"on_p50": on.expand_as(before), "scale:2": 2 * on.expand_as(before),
                "shift:0.5": before + 0.5 * (on - off), "mix:0.25": 0.75 * before + 0.25 * on,
                "zero": torch.zeros_like(before),
                "scale:0.5:off_mean": 0.5 * torch.tensor(stats["off_mean"].to_numpy()).float().expand_as(before),
                "clamp": torch.where(on >= off, torch.maximum(before, on), torch.minimum(before, on))}[value]
    torch.testing.assert_close(after, expected, rtol=1e-5, atol=1e-6)


def test_tall_logits_match_the_head_and_restore_it(tiny):
    model, tok = tiny.model, tiny.tokenizer
    ids = tok(["The cat sleeps.", "Le chat dort sur le lit."], return_tensors="pt", padding=True)
    head = model.get_output_embeddings()
    with torch.inference_mode():
        plain = model(**ids).logits
        with tall_logits(model):
            tall = model(**ids).logits
        with pytest.raises(ValueError), tall_logits(model):
            raise ValueError("inside")
    assert torch.allclose(plain, tall, atol=1e-5, rtol=1e-5)
    assert "forward" not in vars(head)  # the module's own forward is back


def test_whole_characters_is_plain_data_and_a_no_op_without_byte_tokens(steerable):
    iv, chars = Intervention("de", 0), Decoding(whole_characters=True)
    assert Setting((iv,), chars).label.endswith("-chars") and Decoding.from_dict(chars.to_dict()) == chars
    plan = steerable.plan([iv, Intervention("de", 4, positions="first:2")], chars)
    assert plan.whole_characters and plan.n_units == 4 and not steerable.plan([Intervention("de", 4)]).whole_characters
    model, tok = steerable.loaded.model, steerable.loaded.tokenizer  # byte-level BPE: no <0xAB> tokens
    sampling = Sampling(max_new_tokens=12)
    assert generate_batch(model, tok, [[2], [2]], [3, 4], sampling, steerable.plan([iv], chars)) == \
        generate_batch(model, tok, [[2], [2]], [3, 4], sampling)


def test_no_loops_is_plain_data_and_keeps_greedy_text_out_of_loops(steerable):
    iv, rule = Intervention("de", 0), Decoding(no_loops=True)
    setting = Setting((iv,), rule)
    assert setting.label.endswith("-noloops") and Setting.from_dict(setting.to_dict()) == setting
    assert steerable.plan([iv], rule).no_loops and not steerable.plan([Intervention("de", 4)]).no_loops
    model, tok = steerable.loaded.model, steerable.loaded.tokenizer
    sampling = Sampling(max_new_tokens=40, greedy=True)
    prompts, seeds = [[2], [2, 5], [2, 9, 11]], [1, 2, 3]
    plain = generate_batch(model, tok, prompts, seeds, sampling)
    ruled = generate_batch(model, tok, prompts, seeds, sampling, steerable.plan([iv], rule))

    def loops(ids: list[int]) -> bool:  # a unit of 1-8 tokens a third time in a row (one token: a fourth)
        return any(ids[i:i + p * (3 if p > 1 else 4)] == ids[i:i + p] * (3 if p > 1 else 4)
                   for p in range(1, 9) for i in range(len(ids)))

    assert any(loops(ids) for ids in plain)  # the tiny random model loops when greedy
    assert not any(loops(ids) for ids in ruled)


@pytest.mark.parametrize("family", ["llama", "gemma3", "gpt2", "bloom", "xglm", "qwen2"])
def test_answers_that_stop_leave_the_batch_without_changing_the_others(family):
    """Rows that stop early are dropped from the batch (and from its cache); every answer is the one
    its prompt and seed give alone, through a prefix opening's reread too."""
    loaded = make_model(family)
    model, tok = loaded.model, loaded.tokenizer
    prompts = ["The cat", "Die Katze schläft auf der", "Le chat", "We walked to the old harbour"]
    sampling = Sampling(max_new_tokens=12, temperature=1.5, top_p=1.0, stop=("e",))
    encoded = [tok(p)["input_ids"] for p in prompts]
    together = generate_batch(model, tok, encoded, [1, 2, 3, 4], sampling)
    alone = [generate_batch(model, tok, [ids], [seed], sampling)[0] for ids, seed in zip(encoded, [1, 2, 3, 4])]
    assert together == alone
    assert len({len(out) for out in together}) > 1  # some stopped before others: rows left the batch


def test_stopped_rows_leave_a_steered_batch_with_a_reread_opening(steerable):
    model, tok = steerable.loaded.model, steerable.loaded.tokenizer
    plan = steerable.plan([Intervention("fr", 10, "both", positions="prefix:2")], Decoding(guard=True))
    sampling = Sampling(max_new_tokens=12, temperature=1.5, top_p=1.0, stop=("e",))
    encoded = [tok(p)["input_ids"] for p in ["The cat", "Die Katze schläft auf der", "Le chat", "We walked"]]
    seeds = [5, 6, 7, 8]
    together = generate_batch(model, tok, encoded, seeds, sampling, plan)
    alone = [generate_batch(model, tok, [ids], [seed], sampling, plan)[0] for ids, seed in zip(encoded, seeds)]
    assert together == alone and len({len(out) for out in together}) > 1
