"""Atomic writes of every result file, and the reading of the JSONL files this package writes.

The trap: a reader (or a killed writer) must never see half a file, so every write goes to a
temporary file beside the target and is renamed over it; OS errors become messages that name the
file and what to do.
"""

from __future__ import annotations

import errno
import json
import os
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv

from .errors import LangneuronsError


@contextmanager
def disk_errors(path: Path) -> Iterator[None]:
    """Turn OS write failures into errors that name the file and what to do."""
    try:
        yield
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise LangneuronsError(
                f"disk full while writing {path}; free some space and rerun the same command "
                "(finished work is kept)"
            ) from None
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EEXIST):
            raise LangneuronsError(
                f"cannot write {path}: {exc.strerror} ({exc.filename}); choose another --out"
            ) from None
        raise


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call `write(tmp)` then rename tmp over `path`, so readers never see a half file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with disk_errors(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            write(tmp)
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()


def write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda tmp: tmp.write_bytes(data))


def write_npz(path: Path, **arrays: np.ndarray) -> None:
    """Arrays saved as one .npz, atomically (np.savez is given an open file, so it adds no suffix)."""
    def save(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)

    atomic_write(path, save)


# what np.load raises on an npz that is truncated, overwritten or missing an array
NPZ_DAMAGE = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile)


def write_json(path: Path, obj: object) -> None:
    write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def write_jsonl(path: Path, rows: list[dict]) -> None:
    write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def read_jsonl(path: Path) -> list[dict]:
    """The rows of a JSONL file this package wrote (user files go through data.parse_json_line).
    Lines end at "\n" only: `json.dumps(ensure_ascii=False)` leaves U+2028 and U+0085 raw inside
    strings, and `str.splitlines()` would cut a generated text at them."""
    rows = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").split("\n"), start=1):
        if not line:
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise LangneuronsError(f"{path}:{number}: not a JSON line ({exc.msg}); the file is damaged: "
                                   "delete it and it is made again") from None
    return rows


def write_table(df: pd.DataFrame, path: Path) -> None:
    """Write a DataFrame as CSV or Parquet by the file's suffix, atomically."""
    path = Path(path)
    if path.suffix == ".parquet":
        atomic_write(path, lambda tmp: df.to_parquet(tmp, index=False))
    else:
        atomic_write(path, lambda tmp: write_csv(df, tmp))


def write_csv(df: pd.DataFrame, path: Path) -> None:
    """pandas' CSV; written by Arrow (10x faster) when no value needs quoting and none is boolean."""
    if any(pd.api.types.is_bool_dtype(dtype) for dtype in df.dtypes):
        df.to_csv(path, index=False)
        return
    try:
        # one chunk per column: pyarrow's CSV writer writes NUL bytes for a string column of several
        # chunks with an empty one, which pandas' Arrow-backed strings give after a concat
        table = pa.Table.from_pandas(df, preserve_index=False).combine_chunks()
        with open(path, "wb") as fh:
            fh.write((",".join(map(str, df.columns)) + "\n").encode())
            pa_csv.write_csv(table, fh, pa_csv.WriteOptions(include_header=False, quoting_style="none"))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        df.to_csv(path, index=False)


def ensure_writable(folder: Path) -> Path:
    """Create `folder` and prove it is writable before any long work starts."""
    folder = Path(folder)
    with disk_errors(folder):
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    return folder


# ---------------------------------------------------------------- RUN folder guards

# the files and folders a RUN holds; no --out or --save-intervention may replace one of them
RUN_FILES = ("run.json", "expertise.parquet", "expertise", "activation_expertise.parquet", "store",
             "lape", "lape.parquet", "lape_store", "diffmean.npz", "diffmean.parquet", "diffmean_store",
             "named_directions.npz", "shot_directions.npz", "answer_directions.npz", "sentences.jsonl", "sweep",
             "frontier", "analysis", "figures", "report.html", ".lock")


def inside(run: Path, path: Path) -> Path:
    """`path` resolved (relative paths are taken inside `run`); refused if it leaves the RUN."""
    root = Path(run).resolve()
    target = (root / path).resolve()
    if target != root and root not in target.parents:
        raise LangneuronsError(
            f"{path}: would be written outside the run folder {root}; a label or module name must "
            "not hold /, \\ or .."
        )
    return target


def check_label(value: object, what: str) -> str:
    """A value that becomes part of a file name (a language, a `modules` value, a label): no path
    separators, no `..`, no control characters."""
    text = str(value)
    bad = [c for c in ("/", "\\", "..") if c in text]
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        bad.append("control characters")
    if bad or not text.strip():
        raise LangneuronsError(
            f"{what} {text!r}: {'must not be empty' if not bad else 'must not hold ' + ', '.join(bad)} "
            "(it becomes part of a file name in the run folder)"
        )
    return text


def check_not_run_file(path: Path, option: str, run: Path | None = None) -> Path:
    """Refuse an output path that would replace one of a run's own files: a known RUN file of
    `run`, or of any run folder the path lies in (a folder holding run.json)."""
    target = Path(path).expanduser().resolve()
    runs = [Path(run).resolve()] if run is not None else []
    runs += [p for p in (target, *target.parents) if (p / "run.json").is_file()]
    for folder in runs:
        if target == folder or any(target == folder / name or folder / name in target.parents
                                   for name in RUN_FILES):
            raise LangneuronsError(
                f"{option} {path}: would replace a file of the run {folder}; write it elsewhere "
                "(e.g. a new file name in another folder)"
            )
    if target.is_dir():
        raise LangneuronsError(f"{option} {path}: is a folder; give a file name")
    return target


def check_run_languages(values: list[str], known: list[str], option: str) -> list[str]:
    """Languages a command was given, checked as file-name labels and against the run's languages."""
    values = [check_label(v, option) for v in values]
    unknown = [v for v in values if v not in known]
    if unknown:
        raise LangneuronsError(
            f"{option} {', '.join(unknown)}: not a language of this run (it has {', '.join(known)})"
        )
    return values
