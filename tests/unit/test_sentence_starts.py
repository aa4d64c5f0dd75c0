"""The start rule: an opening's first token is one over-represented at the start of the run's sentences."""

import torch
from conftest import make_tokenizer

from langneurons.steer.rules import sentence_start, sentence_starts


def test_tokens_that_begin_sentences_more_than_they_fill_them_may_open_a_text():
    tok = make_tokenizer()
    texts = ["The cat sleeps.", "We walked.", "Die Katze schläft.", " the" * 12]
    allowed = sentence_starts(tok, texts)
    ids = {text: tok(text, add_special_tokens=False)["input_ids"] for text in texts}
    assert len(allowed) == len(tok)
    assert all(bool(allowed[ids[text][0]]) for text in texts[:3])  # "The", "We", "Die": a start each
    the = ids[texts[3]][0]
    assert tok.decode([the]) == " the" and not allowed[the]  # begins 1 of 4 texts, but is 12 of their 38 tokens
    assert not allowed[ids["The cat sleeps."][1]]  # " c" begins nothing
    same_word = [i for i in range(len(tok)) if tok.decode([i]).strip() in ("The", "We", "Die")]
    assert allowed[same_word].all()  # "We" and " We" count as one word, as in the guard
    assert int(allowed.sum()) == len(same_word)


def test_banned_first_tokens_get_no_probability_also_past_the_tokenizer():
    starts = torch.tensor([True, False, True])
    logits = torch.zeros(2, 5)  # a head wider than the tokenizer: ids 3 and 4 are no token
    kept = sentence_start(logits, starts)
    assert torch.isinf(kept[:, [1, 3, 4]]).all() and (kept[:, [0, 2]] == 0).all()
