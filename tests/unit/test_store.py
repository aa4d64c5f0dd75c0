"""The response store's column reader returns exactly the stored values, in any band size; JSONL rows
read back as written."""

import numpy as np
import pytest

from langneurons.errors import LangneuronsError
from langneurons.find import store as store_module
from langneurons.find.store import ResponseStore
from langneurons.io import read_jsonl, write_jsonl


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("band_bytes", [1, 100, 2**20])
def test_columns_equal_the_stored_rows(tmp_path, monkeypatch, dtype, band_bytes):
    monkeypatch.setattr(store_module, "BAND_BYTES", band_bytes)
    rng = np.random.default_rng(0)
    widths = {"a": 7, "b": 33}
    store = ResponseStore.open(tmp_path / "s", "fp", widths, 23, dtype)
    values = {name: rng.standard_normal((23, w)).astype(np.float32) for name, w in widths.items()}
    order = rng.permutation(23)
    for rows in np.array_split(order, 4):
        store.write(rows, {name: v[rows] for name, v in values.items()})
    store.close()
    for name, width in widths.items():
        stored = values[name].astype(store_module.STORE_DTYPES[dtype]).astype(np.float32)
        for lo, hi in [(0, width), (0, 1), (3, width), (width - 1, width)]:
            got = store.columns(name, lo, hi)
            assert got.dtype == np.float32 and got.shape == (23, hi - lo)
            np.testing.assert_array_equal(got, stored[:, lo:hi])


def test_jsonl_rows_keep_the_line_breaks_other_than_newline_that_models_write(tmp_path):
    rows = [{"text": "一行\u2028二行"}, {"text": "a\x85b\u2029c\x1cd\x0be"}, {"text": "x\ny"}]
    write_jsonl(tmp_path / "s.jsonl", rows)
    assert read_jsonl(tmp_path / "s.jsonl") == rows  # str.splitlines() would cut the first two


def test_a_damaged_jsonl_names_its_file_and_line(tmp_path):
    (tmp_path / "s.jsonl").write_text('{"seed": 1}\n{"seed": 2, "te\n', encoding="utf-8")
    with pytest.raises(LangneuronsError, match=r"s.jsonl:2: not a JSON line .*delete it"):
        read_jsonl(tmp_path / "s.jsonl")


def test_a_table_concatenated_with_an_empty_one_is_written_as_text(tmp_path):
    import pandas as pd

    from langneurons.io import write_table

    rows = pd.DataFrame({"language": ["de", "fr"], "kind": ["real", "shuffled"], "content": [2.36, float("nan")]})
    table = pd.concat([pd.DataFrame(columns=["language"]), rows], ignore_index=True)  # a column of two chunks
    write_table(table, tmp_path / "t.csv")
    assert b"\x00" not in (tmp_path / "t.csv").read_bytes()
    back = pd.read_csv(tmp_path / "t.csv")
    assert list(back["kind"]) == ["real", "shuffled"] and back["content"].iloc[0] == 2.36
