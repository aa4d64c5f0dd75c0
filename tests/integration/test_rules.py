"""The decoding rules as transformers logits processors, plugged into `model.generate`."""

from transformers import LogitsProcessorList

from langneurons.steer.rules import GuardOpening, SentenceStart, opening_vocabulary, sentence_starts

from conftest import SAMPLE


def test_the_rules_plug_into_model_generate_and_ban_what_they_should(tiny_llama):
    model, tok = tiny_llama.model, tiny_llama.tokenizer
    prompts = tok(["Die Katze", "Wir gingen im Morgengrauen"], return_tensors="pt", padding=True,
                  padding_side="left")
    width = prompts["input_ids"].shape[1]
    starts = sentence_starts(tok, SAMPLE["fr"])
    rules = LogitsProcessorList([SentenceStart(starts, width), GuardOpening(tok, width, length=5)])
    kwargs = dict(do_sample=False, max_new_tokens=8, pad_token_id=tok.pad_token_id)
    plain = model.generate(**prompts, **kwargs)[:, width:]
    ruled = model.generate(**prompts, **kwargs, logits_processor=rules)[:, width:]
    words, forms = opening_vocabulary(tok, model.config.vocab_size)
    assert not bool(starts[plain[:, 0]].all())  # the rules change something here
    assert bool(starts[ruled[:, 0]].all())  # the first new token opens sentences
    for row in ruled.tolist():
        opening = row[:5]  # words, no form written twice
        assert all(bool(words[t]) for t in opening) and len({int(forms[t]) for t in opening}) == 5
