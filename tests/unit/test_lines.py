"""Line-level pass rate and English leakage of steered answers (steer/lines.py)."""

import math
import subprocess
import sys

from langneurons.steer.lines import english_leakage, is_english, line_pass_rate, line_passes, words

DE_1 = "Der Hund läuft jeden Morgen durch den großen Park am Fluss."
DE_2 = "Danach trinken wir zusammen einen heißen Kaffee in der kleinen Bäckerei."
EN = "After that we usually drink a hot coffee in the small bakery."
ZH = "今天的天气非常好，我们下午去公园散步吧。"
ZH_MIXED = "我们使用 Python 和 machine learning 来分析数据"
JA = "今日はとても良い天気なので、午後は公園を散歩しましょう。"


def test_german_answer_passes_for_german_only():
    answer = f"{DE_1}\n{DE_2}"
    assert line_passes(answer, "de")
    assert not line_passes(answer, "fr")


def test_one_long_english_line_fails_the_answer():
    assert not line_passes(f"{DE_1}\n{EN}", "de")
    assert line_pass_rate([f"{DE_1}\n{DE_2}", f"{DE_1}\n{EN}"], "de") == 0.5


def test_short_lines_are_ignored():
    assert line_passes(f"{DE_1}\nOkay, thank you!\n\n{DE_2}", "de")  # 3 words: not judged
    assert not line_passes(f"{DE_1}\nOkay, thank you so much!", "de")  # 5 words: judged


def test_answer_without_long_lines_is_judged_whole():
    assert line_passes("Hallo, wie geht es?", "de")
    assert not line_passes("Hello, how are you?", "de")


def test_empty_answers_fail():
    assert not line_passes("", "de")
    assert not line_passes(" \n\t", "de")
    assert line_pass_rate(["", f"{DE_1}\n{DE_2}"], "de") == 0.5
    assert line_pass_rate([], "de") == 0.0


def test_chinese_lines_are_judged_by_jieba_words():
    assert line_passes(f"{ZH}\n我们使用计算机来分析这些重要的数据。", "zh")
    assert not line_passes(f"{ZH}\n{EN}", "zh")


def test_chinese_and_japanese_are_segmented_into_words():
    for text, language in [(ZH, "zh"), (JA, "ja")]:
        tokens = words(text, language)
        characters = sum(not c.isspace() for c in text)
        assert 5 <= len(tokens) < characters - 5, tokens  # words, neither characters nor the whole line
        assert "公园" in tokens or "公園" in tokens
        assert not {"，", "。", "、"} & set(tokens)  # punctuation dropped


def test_other_languages_split_on_whitespace():
    assert words("Der Hund  läuft - schnell.", "de") == ["Der", "Hund", "läuft", "schnell."]


def test_torch_free_and_quiet():
    code = ("import sys, langneurons.steer.lines as l; l.words('今天天气好', 'zh'); l.words('今日は晴れ', 'ja'); "
            "l.line_passes('Guten Tag', 'de'); print('torch' in sys.modules)")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert (run.stdout.strip(), run.stderr) == ("False", "")  # no torch, and jieba says nothing on stderr


def test_english_leakage_into_chinese():
    assert english_leakage([ZH_MIXED], "zh") == 3 / len(words(ZH_MIXED, "zh"))  # Python, machine, learning
    assert english_leakage([ZH], "zh") == 0.0
    assert english_leakage([ZH, ZH_MIXED], "zh") == 3 / (len(words(ZH, "zh")) + len(words(ZH_MIXED, "zh")))
    assert english_leakage([], "zh") == 0.0


def test_english_leakage_into_japanese():
    assert english_leakage(["私たちは Python でデータを分析します。"], "ja") > 0
    assert english_leakage([JA], "ja") == 0.0


def test_acronyms_are_not_leakage():
    assert english_leakage(["中国的 GDP 增长很快，CPU 也很便宜"], "zh") == 0.0
    assert not is_english("GDP") and not is_english("HTML")
    assert is_english("NVIDIA") and is_english("Gdp") and is_english("don't") and is_english("state-of-the-art")
    assert not is_english("a") and not is_english("3D") and not is_english("-ish") and not is_english("café")


def test_english_leakage_is_undefined_outside_zh_ja():
    assert math.isnan(english_leakage([f"{DE_1} machine learning"], "de"))
