"""The response store's column reader returns exactly the stored values, in any band size."""

import numpy as np
import pytest

from langneurons import store as store_module
from langneurons.store import ResponseStore


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
