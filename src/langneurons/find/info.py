"""`run.json`: what a finished `find` recorded (settings, fingerprint, counts, sites, timings), as one class.

Torch-free on purpose: the report and the studies read a run through this module. The trap:
run.json is written by every `find` and kept for years; an older one (no `schema` field) is
migrated in `schema.migrate`, a damaged or newer one is refused with "rerun `langneurons find`".
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import pandas as pd

from ..errors import LangneuronsError
from ..io import write_json
from ..schema import migrate, stamp
from ..sites import Site, Sites


RUN_METHODS = {"ap": ("ap",), "lape": ("lape",), "both": ("ap", "lape"), "diffmean": ("diffmean",),
               "all": ("ap", "lape", "diffmean")}  # find --method → the methods a run computed


@dataclass(frozen=True)
class RunInfo:
    """The content of run.json. `sites` and `lape["sites"]` are `Site` records (name, block, width...);
    `lape` is None for a run without LAPE (`method` ap or diffmean), `diffmean` (the residual sites and
    the file of the directions, find/diffmean.py) None for a run without DiffMean."""

    model: str
    dtype: str
    corpus: str
    languages: list[str]
    fingerprint: str
    sites: list[dict]
    neurons: int
    modules: int
    blocks: int
    unique_sentences: int
    positives_per_language: dict[str, int]
    negatives_per_language: dict[str, int]
    store_dtype: str = "float32"
    batch_size: int = 16
    method: str = "ap"
    lape: dict | None = None
    diffmean: dict | None = None
    timings: dict = field(default_factory=dict)
    model_class: str = ""
    device: str = ""
    device_map: dict | None = None
    langneurons: str = ""
    torch: str = ""
    transformers: str = ""

    def __post_init__(self) -> None:
        if self.method not in RUN_METHODS:
            raise LangneuronsError(f"run.json: method {self.method!r} is not one of {', '.join(RUN_METHODS)}")
        for part, results in (("lape", self.lape), ("diffmean", self.diffmean)):
            if (results is None) == (part in RUN_METHODS[self.method]):
                raise LangneuronsError(f"run.json: method {self.method} {'without' if results is None else 'with'} "
                                       f"{part.upper()} results")

    @property
    def methods(self) -> tuple[str, ...]:
        """The methods this run computed: of ap, lape, diffmean."""
        return RUN_METHODS[self.method]

    @property
    def site_records(self) -> list[dict]:
        """Every module an intervention may edit: the linears, and the activations with LAPE."""
        return self.sites + (self.lape or {}).get("sites", [])

    def to_dict(self) -> dict:
        return stamp("run", asdict(self))

    @classmethod
    def from_dict(cls, data: dict, run: Path | str = "RUN") -> "RunInfo":
        """run.json's content at this version's schema (an older one migrated); refuses a damaged or
        newer one with the command that makes it again."""
        rerun = f"langneurons find --out {run}"
        if not isinstance(data, dict):
            raise LangneuronsError(f"{run}/run.json is damaged; rerun `{rerun}`")
        data = migrate("run", data, rerun)
        known = {f.name for f in fields(cls)}
        try:
            return cls(**{k: v for k, v in data.items() if k in known})
        except TypeError as exc:
            raise LangneuronsError(f"{run}/run.json is damaged ({exc}); rerun `{rerun}`") from None

    @classmethod
    def read(cls, run: Path) -> "RunInfo":
        """RUN/run.json, read and checked."""
        path = Path(run) / "run.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise LangneuronsError(f"{path} is damaged ({type(exc).__name__}); rerun "
                                   f"`langneurons find --out {run}` with the run's settings (it rewrites run.json "
                                   "and keeps the recording)") from None
        except IsADirectoryError:
            raise LangneuronsError(f"{path} is a folder, not the run's run.json") from None
        except OSError as exc:
            raise LangneuronsError(f"{path}: cannot be read ({exc.strerror or exc})") from None
        return cls.from_dict(data, run)

    def write(self, run: Path) -> None:
        write_json(Path(run) / "run.json", self.to_dict())


def load_run(run: Path) -> tuple[RunInfo, pd.DataFrame]:
    """Read a RUN folder's run.json and expertise table, with clear errors when incomplete."""
    run = Path(run)
    info = RunInfo.read(run) if (run / "run.json").exists() else None
    if info is not None and "ap" not in info.methods:
        raise LangneuronsError(f"{run}: a --method {info.method} run has no AP results, which this needs; run "
                               f"`langneurons find --method all --out {run}` (it keeps what is recorded)")
    if info is None or not (run / "expertise.parquet").exists():
        raise LangneuronsError(
            f"{run}: not a finished run (no run.json/expertise.parquet); run `langneurons find --out {run}`"
        )
    return info, read_parquet(run / "expertise.parquet", f"langneurons find --out {run}")


def read_parquet(path: Path, rerun: str) -> pd.DataFrame:
    """A table of the run, or a clear error naming the file when it is damaged (truncated, not Parquet)."""
    try:
        return pd.read_parquet(path)
    except OSError as exc:
        if isinstance(exc, PermissionError):
            raise LangneuronsError(f"{path}: cannot be read (permission denied); fix its permissions") from None
        raise LangneuronsError(f"{path} is damaged ({str(exc).splitlines()[0][:120]}); delete it and rerun "
                               f"`{rerun}` with the run's settings") from None
    except (ValueError, TypeError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise LangneuronsError(f"{path} is damaged ({str(exc).splitlines()[0][:120]}); delete it and rerun "
                               f"`{rerun}` with the run's settings") from None


def sites_from_run(info: RunInfo) -> Sites:
    """The neuron sites (linears) recorded in run.json."""
    sites = tuple(Site(**record) for record in info.sites)
    return Sites(sites[0].name.rsplit(".", 2)[0] if sites else "", info.blocks, sites)
