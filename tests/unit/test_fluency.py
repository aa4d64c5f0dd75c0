"""Fluency figures of generated text."""

import numpy as np

from langneurons.steer.evaluate import (
    bootstrap_ci,
    distinct,
    fluency,
    is_degenerate,
    opening,
    openings,
    padding,
)


def test_degenerate_outputs():
    assert is_degenerate("")
    assert is_degenerate("Gesetz" * 8)
    assert is_degenerate("ut - - - - - - - - - - - -")
    assert is_degenerate("ああああああああ")
    assert not is_degenerate("Der Hund läuft über die Wiese und bellt zweimal laut.")
    assert not is_degenerate("Gesetz" * 7)
    assert is_degenerate("<br>\n<br>\n" * 8) and is_degenerate("| " * 10)


def test_layout_whitespace_is_not_repetition():
    # Gemma-3-270M, unforced, seed 131: code indented by 8 spaces was counted as degenerate
    code = "def area(r):\n        return 3.14 * r * r\n\n\n\n\n\n\n\n\n# done"
    assert not is_degenerate(code)
    assert not is_degenerate("Titel\t\t\t\t\t\t\t\t\tText")
    assert is_degenerate("ab        " * 8)  # a real unit repeated, whatever its spacing
    assert is_degenerate(" \n\t ")  # only whitespace is empty text


def test_distinct_counts_words_or_characters():
    assert distinct(["a b a b"], "en", 1) == 0.5
    assert distinct(["a b a b"], "en", 2) == 2 / 3
    assert distinct(["猫猫狗"], "zh", 1) == 2 / 3


def test_fluency_and_bootstrap():
    figures = fluency(["Der Hund läuft.", "aaaaaaaaaaaa", ""], "de")
    assert figures["degenerate_share"] == 2 / 3 and figures["empty_share"] == 1 / 3
    assert figures["degenerate_low"] <= 2 / 3 <= figures["degenerate_high"]
    low, high = bootstrap_ci(np.ones(50))
    assert low == high == 1.0
    low, high = bootstrap_ci(np.r_[np.ones(50), np.zeros(50)])
    assert 0.35 < low < 0.5 < high < 0.65


def test_usable_share_counts_samples_in_the_language_that_do_not_collapse():
    from langneurons.steer.steerable import score_cell

    texts = ["Der Hund läuft jeden Morgen über die große Wiese hinter dem Haus.",
             "The dog runs across the big meadow behind the house every morning.",
             "Der Hund läuft und läuft " + "und " * 12, ""]
    row = score_cell([{"text": t} for t in texts], "de", None)
    assert row["target_share"] == 0.5 and row["degenerate_share"] == 0.5 and row["empty_share"] == 0.25
    assert row["usable_share"] == 0.25 and row["usable_low"] <= 0.25 <= row["usable_high"]


def test_trailing_blanks_of_one_kind_are_padding():
    assert padding("猫が寝ている。" + "\u3000" * 12) == 12
    assert padding("Der Hund.  \n") == 1  # a run of one character: the newline alone
    assert padding("Der Hund.") == 0 and padding("   ") == 3


def test_padding_of_eight_blanks_is_degenerate():
    assert is_degenerate("猫が寝ている。", padded=8) and not is_degenerate("猫が寝ている。", padded=7)
    figures = fluency(["猫が寝ている。", "犬が走る。", "鳥が鳴く。", ""], "ja", paddings=[20, 7, 0, 0])
    assert figures["padded_share"] == 0.25 and figures["degenerate_share"] == 0.5
    assert fluency(["猫が寝ている。"], "ja")["padded_share"] == 0.0  # no paddings given: none known


def test_openings_count_first_words_or_first_two_characters():
    assert opening("Die Katze schläft.", "de") == "die" and opening("«Bonjour», dit-il.", "fr") == "bonjour"
    assert opening("予算は少ない。", "ja") == "予算" and opening("  ", "de") == ""
    texts = ["Die Katze.", "die Maus.", "Der Hund.", "Ein Vogel.", ""]
    assert openings(texts, "de") == {"opening_top_share": 2 / 4, "openings_per_text": 3 / 4}
    figures = fluency(["予算は少ない。", "予算が多い。", "猫が寝ている。"], "ja")
    assert figures["opening_top_share"] == 2 / 3 and figures["openings_per_text"] == 2 / 3
    assert openings(["", " "], "ja") == {"opening_top_share": 0.0, "openings_per_text": 0.0}
