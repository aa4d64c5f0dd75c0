"""Schema versions of the result files a user keeps, and the one place that migrates older ones.

Every kept result carries `"schema": N` (run.json, intervention files, sample records, score rows).
`migrate(kind, data)` brings what an older version wrote up to the current schema, or says it must be
made again: it returns None for a result that is recomputed (samples stripped of their padding,
scores of such samples) and raises for one only the user can remake (run.json). The trap: a file
without a `schema` field is version 1, the layout before versions were written; a version above
the current one comes from a newer langneurons and is refused, never guessed at.
"""

from __future__ import annotations

import json
from typing import Callable

from .errors import LangneuronsError

SCHEMAS = {"run": 2, "interventions": 2, "samples": 3, "score": 3, "diffmean": 2, "named": 1}
DECODING_FIELDS = ("guard", "whole_characters", "opening_temperature", "start", "start_temperature", "own_starts",
                   "no_loops", "distinct_starts")


def version(data: dict) -> int:
    """The schema version of a stored result: its `schema` field, 1 when it has none."""
    found = data.get("schema", 1)
    return found if isinstance(found, int) and not isinstance(found, bool) else -1


def split_decoding(items: list[dict]) -> tuple[list[dict], dict]:
    """Version-1 intervention dicts (decoding rules inside each) → (the edits alone, one decoding).

    A flag set on any intervention holds for the setting (it did in the plan); two different
    temperatures of the same kind cannot be one setting and are refused."""
    edits = [{k: v for k, v in item.items() if k not in DECODING_FIELDS} for item in items]
    decoding: dict = {}
    for name in DECODING_FIELDS:
        values = {item[name] for item in items if item.get(name) not in (None, False)}
        if len(values) > 1:
            raise LangneuronsError(f"{name}: the interventions of one setting hold {sorted(values)}; "
                                   "a setting has one decoding rule, keep one of them")
        if values:
            decoding[name] = values.pop()
    return edits, decoding


def _interventions_1(data: dict) -> dict | None:
    edits, decoding = split_decoding(data["interventions"])
    return {**data, "interventions": edits, "decoding": decoding}


def _run_1(data: dict) -> dict | None:
    return {"method": "ap", "lape": None, **data}  # an `ap` run.json before LAPE had neither


def _samples_1(data: dict) -> dict | None:
    if "padding" not in data:  # stored stripped of their trailing blanks: generated again
        return None
    edits, decoding = split_decoding(data.get("setting", []))
    return {**data, "setting": edits, "decoding": decoding}


def _score_1(data: dict) -> dict | None:
    if "padded_share" not in data:  # scored on samples stripped of their padding: scored again
        return None
    row = {"method": "ap", **data}  # sweep cells before LAPE
    if "kind" not in row and "n" in row:  # frontier points before the kind column
        row["kind"] = "unforced" if row["n"] == 0 else "forced"
    if isinstance(row.get("interventions"), str) and row["interventions"]:
        row["interventions"] = json.dumps(split_decoding(json.loads(row["interventions"]))[0])
    return row


def _samples_2(data: dict) -> dict | None:
    # an answer to a Q/A frame ("Q: ...\nA:") ran on past the transcript's next "A:" turn: made again
    return None if data.get("mode") == "prompts" and str(data.get("prompt", "")).endswith("\nA:") else data


def _score_2(data: dict) -> dict | None:
    prompted = data.get("task") == "prompts" or data.get("mode") == "prompts"
    return None if prompted else data  # scored on such answers: scored again (from samples made again)


def _diffmean_1(data: dict) -> dict | None:
    return data  # without the language means: read as is, `clamp:β` refuses it (find/diffmean.py)


STEPS: dict[str, dict[int, Callable[[dict], dict | None]]] = {
    "run": {1: _run_1}, "interventions": {1: _interventions_1}, "samples": {1: _samples_1, 2: _samples_2},
    "score": {1: _score_1, 2: _score_2}, "diffmean": {1: _diffmean_1},
}


def migrate(kind: str, data: dict, rerun: str = "") -> dict | None:
    """`data` (a stored result of `kind`) at the current schema, or None when it is to be made again.

    Raises LangneuronsError for an unknown or newer schema: "rerun `rerun`" when given."""
    at, current = version(data), SCHEMAS[kind]
    if not 1 <= at <= current:
        advice = f"; rerun `{rerun}`" if rerun else "; it was written by another langneurons version"
        raise LangneuronsError(f"{kind} file with schema {data.get('schema')!r}, this version reads "
                               f"1 to {current}{advice}")
    while at < current and data is not None:
        data = STEPS[kind][at](data)
        at += 1
    return None if data is None else {**data, "schema": current}


def stamp(kind: str, data: dict) -> dict:
    """`data` with the current schema version of `kind`, first, as it is written."""
    return {"schema": SCHEMAS[kind], **data}
