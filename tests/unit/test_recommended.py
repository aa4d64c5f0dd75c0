"""The settings published in docs/recommended/ load as plain settings for any run of the built-in corpus."""

import json
from pathlib import Path

import pytest

from langneurons.steer.intervene import load_interventions

FILES = sorted((Path(__file__).resolve().parents[2] / "docs" / "recommended").glob("*.json"))


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_published_settings_load_without_a_run_fingerprint(path):
    assert "run" not in json.loads(path.read_text(encoding="utf-8"))
    setting = load_interventions(path, "0" * 64)  # any run: no fingerprint to refuse
    language = path.name.split("-")[0]
    assert setting.interventions and all(iv.language == language for iv in setting.interventions)


def test_there_are_published_settings():
    assert FILES
