"""The response store: every neuron's recorded response to every sentence, on disk.

Responses live in one preallocated array per module, `[n_sentences, width]`, memory-mapped, plus
a per-sentence `done` flag written after the sentence's rows. A killed run therefore leaves a
valid partial store (the kernel keeps a killed process's mapped writes); rerunning fills only the
rows not yet done. The trap: a store is only reusable for the same model, sentences and settings,
so it carries a fingerprint and refuses to be mixed with another run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ..errors import LangneuronsError
from ..io import disk_errors, write_json

STORE_DTYPES = {"float32": np.float32, "float16": np.float16}
BAND_BYTES = 16 * 2**20  # rows read at once by ResponseStore.columns


def done_file(rank: int) -> str:
    """Done flags of one writer: `done.npy` for rank 0 (and a single process), `done.rank<r>.npy` else."""
    return "done.npy" if rank == 0 else f"done.rank{rank}.npy"


def read_meta(path: Path) -> dict:
    """A store's meta.json, or a clear error naming it when it is damaged."""
    try:
        meta = json.loads(Path(path).read_text(encoding="utf-8"))
        if not (isinstance(meta, dict) and isinstance(meta.get("fingerprint"), str)
                and isinstance(meta.get("n_rows"), int) and meta.get("dtype") in STORE_DTYPES
                and isinstance(meta.get("widths"), dict)):
            raise ValueError("fields missing or mistyped")
    except (ValueError, OSError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise LangneuronsError(f"{path} is damaged ({exc}); delete the folder {Path(path).parent} and rerun "
                               "`langneurons find` with the run's settings to record it again") from None
    return meta


def load_array(path: Path, shape: tuple[int, ...], mode: str = "r") -> np.ndarray:
    """One array of a store, memory-mapped; a missing, truncated or reshaped one is named."""
    try:
        array = np.load(path, mmap_mode=mode)
        if array.shape != shape:
            raise ValueError(f"shape {array.shape}, expected {shape}")
    except (ValueError, OSError, EOFError) as exc:
        raise LangneuronsError(f"{path} is damaged ({exc}); delete the folder {Path(path).parent} and rerun "
                               "`langneurons find` with the run's settings to record it again") from None
    return array


class ResponseStore:
    """Per-module response arrays `[n_rows, width]` and per-row done flags, in one folder.

    Rows are written with positioned writes (not a memory map), so memory stays flat however
    large the store; reads map one module at a time. Under torchrun every rank writes its own rows
    into the same arrays and its own done file (a mapped page is never shared by two writers,
    which a shared filesystem across nodes needs); a row is done when any done file says so.
    """

    def __init__(self, root: Path, meta: dict, rank: int = 0):
        self.root = Path(root)
        self.meta = meta
        self.itemsize = np.dtype(STORE_DTYPES[meta["dtype"]]).itemsize
        done = self.root / done_file(rank)
        if not done.exists():  # a rank's first run: allocate beside, then rename (a kill leaves nothing)
            tmp = done.with_name(f".{done.name}.tmp{os.getpid()}")
            with disk_errors(done):
                self._allocate(tmp, (meta["n_rows"],), np.bool_)
                os.replace(tmp, done)
        self.done = load_array(done, (meta["n_rows"],), "r+")
        self.offsets = {name: load_array(self.root / f"{name}.npy", (meta["n_rows"], width)).offset
                        for name, width in meta["widths"].items()}
        self.files = {name: open(self.root / f"{name}.npy", "r+b") for name in meta["widths"]}

    @classmethod
    def open(cls, root: Path, fingerprint: str, widths: dict[str, int], n_rows: int,
             dtype: str = "float32", rank: int = 0) -> "ResponseStore":
        """Open the store at `root` as writer `rank`, creating it if absent; refuse one of another run."""
        root = Path(root)
        meta_path = root / "meta.json"
        if meta_path.exists():
            meta = read_meta(meta_path)
            if meta["fingerprint"] != fingerprint:
                raise LangneuronsError(
                    f"{root} holds responses of another run (model, sentences or settings differ: "
                    f"fingerprint {meta['fingerprint'][:12]} vs {fingerprint[:12]}); use another "
                    "--out, or delete that folder to start over"
                )
            return cls(root, meta, rank)
        if dtype not in STORE_DTYPES:
            raise LangneuronsError(f"--store-dtype {dtype!r} is not one of {', '.join(STORE_DTYPES)}")
        meta = {"fingerprint": fingerprint, "n_rows": n_rows, "dtype": dtype, "widths": widths}
        with disk_errors(root):
            root.mkdir(parents=True, exist_ok=True)
            for name, width in widths.items():
                cls._allocate(root / f"{name}.npy", (n_rows, width), STORE_DTYPES[dtype])
            cls._allocate(root / "done.npy", (n_rows,), np.bool_)
        write_json(meta_path, meta)  # written last: its presence means the arrays exist
        return cls(root, meta, rank)

    @staticmethod
    def _allocate(path: Path, shape: tuple[int, ...], dtype: type) -> None:
        """Create a zero-filled .npy with its disk blocks reserved (a full disk fails here)."""
        arr = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
        offset, size = arr.offset, arr.nbytes
        del arr
        if size:
            with open(path, "r+b") as fh:
                os.posix_fallocate(fh.fileno(), offset, size)

    def done_mask(self) -> np.ndarray:
        """Rows stored by any writer, in this run or an earlier one, `[n_rows]` bool."""
        mask = np.zeros(self.meta["n_rows"], dtype=bool)
        for path in self.root.glob("done*.npy"):
            mask |= np.load(path, mmap_mode="r")
        return mask

    def write(self, rows: np.ndarray, pooled: dict[str, np.ndarray]) -> None:
        """Store one batch's responses `[len(rows), width]` per module, then mark the rows done."""
        with disk_errors(self.root):
            for name, values in pooled.items():
                values = np.ascontiguousarray(values, dtype=STORE_DTYPES[self.meta["dtype"]])
                row_bytes = values.shape[1] * self.itemsize
                fd, offset = self.files[name].fileno(), self.offsets[name]
                for row, data in zip(rows, values):
                    os.pwrite(fd, data.tobytes(), offset + int(row) * row_bytes)
            self.done[rows] = True

    def flush(self) -> None:
        with disk_errors(self.root):
            for fh in self.files.values():
                os.fsync(fh.fileno())
            self.done.flush()

    def responses(self, name: str) -> np.ndarray:
        """All rows of one module, `[n_rows, width]`, memory-mapped read-only (drop it after use)."""
        return np.load(self.root / f"{name}.npy", mmap_mode="r")

    def columns(self, name: str, lo: int, hi: int) -> np.ndarray:
        """Columns `lo:hi` of one module for every row as float32 `[n_rows, hi - lo]`.

        Read in bands of rows with plain reads (no memory map), so memory is the result plus one
        band however many rows the store has.
        """
        n_rows, width = self.meta["n_rows"], self.meta["widths"][name]
        row_bytes = width * self.itemsize
        rows_per_band = max(1, BAND_BYTES // row_bytes)
        out = np.empty((n_rows, hi - lo), np.float32)
        path = self.root / f"{name}.npy"
        with disk_errors(path), open(path, "rb") as fh:
            for r0 in range(0, n_rows, rows_per_band):
                r1 = min(n_rows, r0 + rows_per_band)
                raw = os.pread(fh.fileno(), (r1 - r0) * row_bytes, self.offsets[name] + r0 * row_bytes)
                band = np.frombuffer(raw, STORE_DTYPES[self.meta["dtype"]]).reshape(r1 - r0, width)
                out[r0:r1] = band[:, lo:hi]
        return out

    def close(self) -> None:
        for fh in self.files.values():
            fh.close()
