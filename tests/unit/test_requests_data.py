"""The project's own request set for steering experiments (CORPUS.md, "The request set")."""

import json
import re
from collections import Counter
from importlib.resources import files

DOMAINS = ("news", "science", "travel", "sports", "technology", "business",
           "nature", "food", "history", "daily_life", "arts", "health")
FORBIDDEN = ("english", "german", "french", "spanish", "chinese", "japanese",
             "language", "translate")


def _rows(name):
    text = files("langneurons").joinpath("corpus", name).read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


ROWS = _rows("requests.jsonl")


def test_size_keys_and_domains():
    assert len(ROWS) == 180
    for row in ROWS:
        assert list(row) == ["id", "domain", "request"], row
        assert all(isinstance(v, str) and v == v.strip() and v for v in row.values()), row
    assert Counter(r["domain"] for r in ROWS) == {d: 15 for d in DOMAINS}


def test_ids_unique_and_match_domain():
    ids = [r["id"] for r in ROWS]
    assert len(set(ids)) == len(ids)
    for row in ROWS:
        m = re.fullmatch(r"req-([a-z_]+)-(\d{3})", row["id"])
        assert m, row["id"]
        assert m.group(1) == row["domain"], row["id"]
    for d in DOMAINS:
        numbers = sorted(int(r["id"][-3:]) for r in ROWS if r["domain"] == d)
        assert numbers == list(range(1, 16)), d


def test_requests_unique_and_length():
    norm = [" ".join(r["request"].lower().split()) for r in ROWS]
    dup = [t for t, n in Counter(norm).items() if n > 1]
    assert not dup, dup
    for row in ROWS:
        n = len(row["request"].split())
        assert 6 <= n <= 30, (n, row["id"])


def test_no_forbidden_words():
    for row in ROWS:
        low = row["request"].lower()
        hits = [w for w in FORBIDDEN if w in low]
        assert not hits, (row["id"], hits)


def test_not_a_builtin_sentence():
    builtin = {" ".join(g["en"].lower().split()) for g in _rows("builtin.jsonl")}
    assert len(builtin) > 500
    same = [r["id"] for r in ROWS if " ".join(r["request"].lower().split()) in builtin]
    assert not same, same


def test_an_answer_to_a_request_ends_where_the_transcript_s_next_turn_starts():
    from langneurons.steer.task import PROMPTED

    assert PROMPTED.cut("Hallo Welt.\nA: Hello world.") == "Hallo Welt."
    assert PROMPTED.cut("你好。\nQ：What is it?") == "你好。"
    assert PROMPTED.cut("Zeile eins.\nZeile zwei: A: B") == "Zeile eins.\nZeile zwei: A: B"  # not a turn
