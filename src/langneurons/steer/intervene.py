"""Interventions as data, and the context manager that applies them (docs/method.md §5).

An `Intervention` says which neurons (language, selection, N) get which value at which positions;
`resolve()` turns one or more of them into a `Plan` of per-module unit indices and values, and
`steer()` applies a plan with hooks on the affected modules only. The trap: with a KV cache the
prompt pass and each new token are separate forwards, so "positions" is a phase of generation,
which the generation loop reports through `Steering.fed` (new tokens fed back so far).
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..errors import LangneuronsError
from ..find.tables import select
from ..find.tables import select_lape
from ..hooks import hooks
from ..io import write_json
from ..model import modules_by_name, output_width
from ..schema import migrate, stamp
from .decoding import Decoding

SELECTIONS = ("top", "bottom", "both", "random")
METHODS = ("ap", "lape", "diffmean")  # AP over linears, LAPE over MLP activations, residual directions
DIFFMEAN_UNUSED = ("n", "selection", "seed", "modules")  # neuron fields a DiffMean edit has no use for
POSITIONS = ("all", "prompt", "generated", "first:K", "prefix:K")
OPENINGS = ("first", "prefix")  # positions that edit only the first K new tokens
BASE_VALUES = ("on_p50", "on_p90", "off_mean", "off_p50", "zero")


@dataclass(frozen=True)
class Intervention:
    """Force N neurons of `language` (chosen by `selection`) to `value` at `positions`.

    positions: `all` (the paper), `prompt`, `generated`, `first:K` (while the first K new tokens
    are written; their edited keys and values stay in the cache) or `prefix:K` (the same, then the
    model reads the text so far afresh, unedited, and continues it: a steered opening).
    value: `on_p50` (the paper), `on_p90`, `off_mean`, `off_p50`, `zero`, `scale:K[:base]`
    (K times the base value), `shift:A` (add A·(on_p50 − off_mean)), `mix:A`
    ((1 − A)·output + A·on_p50) or `clamp[:base]` (at least on_p50 where the language raises the
    unit, at most where it lowers it: the unit keeps its own value beyond that).
    method: `ap` (the AP experts among all linears) or `lape` (the language's LAPE neurons at the
    MLP activations, lowest entropy first; selection `top` or `random`); the statistics of a LAPE
    neuron are those of its mean activation. modules: e.g. `mlp`, to choose only in such modules.
    method `diffmean` adds the language's residual direction (find/diffmean.py) to the output of
    each block of `blocks` (e.g. "12" or "10-12"): value `add:α` adds α·typical_norm(ℓ)·v̂ (α in units
    of the block's typical per-token hidden-state norm, so one α means the same on any model);
    `restore_norm` rescales each edited state to its norm before the edit; `subtract` (a language)
    uses the unit direction of v_language − v_subtract instead. n, selection, seed and modules are
    neuron fields and stay at their defaults.
    The sampling rules that go with an edit (guard, start rule, temperatures) are a `Decoding`.
    """

    language: str
    n: int = 2000
    selection: str = "both"
    value: str = "on_p50"
    positions: str = "all"
    seed: int = 0  # picks the neurons of the `random` control
    blocks: str = ""  # e.g. "0-3,14-17": choose neurons only in these decoder blocks
    method: str = "ap"
    modules: str = ""  # e.g. "mlp" or "gate_proj,up_proj": only in modules whose path contains one
    restore_norm: bool = False  # diffmean: each edited hidden state keeps its norm
    subtract: str = ""  # diffmean: a source language whose direction is subtracted

    def __post_init__(self) -> None:
        if self.method == "diffmean":
            self.check_diffmean()
            return
        for name, default in (("restore_norm", False), ("subtract", "")):
            if getattr(self, name) != default:
                raise LangneuronsError(f"{name} {getattr(self, name)!r}: only for method diffmean (residual "
                                       f"directions), not {self.method}")
        if self.selection not in SELECTIONS:
            raise LangneuronsError(f"selection {self.selection!r} is not one of {', '.join(SELECTIONS)}")
        if self.method not in METHODS:
            raise LangneuronsError(f"method {self.method!r} is not one of {', '.join(METHODS)}")
        if self.method == "lape" and self.selection not in ("top", "random"):
            raise LangneuronsError(f"selection {self.selection!r} ranks by AP; LAPE neurons are chosen "
                                   "with top (lowest entropy first) or random")
        parse_positions(self.positions)
        if self.n < 0:
            raise LangneuronsError(f"n {self.n}: must be 0 or more")
        parse_value(self.value)
        parse_blocks(self.blocks)

    def check_diffmean(self) -> None:
        for name in DIFFMEAN_UNUSED:
            default = type(self).__dataclass_fields__[name].default
            if getattr(self, name) != default:
                raise LangneuronsError(f"{name} {getattr(self, name)!r}: not used by method diffmean (it adds a "
                                       f"direction; its strength is value add:α); leave {name} at {default!r}")
        parse_strength(self.value)
        parse_positions(self.positions)
        if not parse_blocks(self.blocks):
            raise LangneuronsError("blocks: method diffmean needs the block(s) whose output gets the direction, "
                                   "e.g. 12 or 10-12")
        if not isinstance(self.restore_norm, bool):
            raise LangneuronsError(f"restore_norm {self.restore_norm!r}: true or false")
        if self.subtract == self.language:
            raise LangneuronsError(f"subtract {self.subtract!r}: the target language itself; give the source "
                                   "language (or leave it out)")

    @property
    def label(self) -> str:
        """The edit's name in file keys; a `Setting` adds its decoding's suffix."""
        if self.method == "diffmean":
            return (f"{self.language}-diffmean-{self.value}-{self.positions}-blocks{self.blocks}"
                    + ("-restore" if self.restore_norm else "") + (f"-minus{self.subtract}" if self.subtract else ""))
        return f"{self.language}-{self.selection}-{self.n}-{self.value}-{self.positions}" + (
            f"-seed{self.seed}" if self.selection == "random" else "") + (
            f"-blocks{self.blocks}" if self.blocks else "") + ("-lape" if self.method == "lape" else "") + (
            f"-modules{self.modules}" if self.modules else "")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Intervention":
        """The intervention of `to_dict`'s layout (decoding rules live in a `Decoding`)."""
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise LangneuronsError(f"intervention has unknown field(s) {sorted(unknown)}")
        for name, value in data.items():  # a file edited by hand: name the mistyped field
            whole = name in ("n", "seed")
            if name == "restore_norm":
                if not isinstance(value, bool):
                    raise LangneuronsError(f"intervention field {name} {value!r}: must be true or false")
            elif (not isinstance(value, str)) if not whole else (isinstance(value, bool) or not isinstance(value, int)):
                raise LangneuronsError(f"intervention field {name} {value!r}: must be "
                                       f"{'a whole number' if whole else 'text'}")
        return cls(**data)


@dataclass(frozen=True)
class Setting:
    """Interventions applied together and the decoding rules their text is sampled under."""

    interventions: tuple[Intervention, ...] = ()
    decoding: Decoding = field(default_factory=Decoding)

    def __post_init__(self) -> None:
        object.__setattr__(self, "interventions", tuple(self.interventions))
        if self.decoding.needs_opening and not self.openings:
            positions = ", ".join(repr(iv.positions) for iv in self.interventions) or "none"
            if self.decoding.guard:
                problem = "guard: only for the tokens of an opening (positions first:K or prefix:K), not positions"
            elif self.decoding.start:
                problem = "start: only for the first token of an opening (positions first:K or prefix:K), not positions"
            else:
                problem = (f"opening_temperature {self.decoding.opening_temperature}: a temperature above 0, only "
                           "for an opening (positions first:K or prefix:K), not")
            raise LangneuronsError(f"{problem} {positions}")

    @property
    def openings(self) -> list[str]:
        """The positions of the interventions that edit only the first K new tokens."""
        return list(dict.fromkeys(iv.positions for iv in self.interventions if is_opening(iv.positions)))

    @property
    def labels(self) -> list[str]:
        """Each intervention's label; the decoding's suffix goes on the first opening (else the first)."""
        labels = [iv.label for iv in self.interventions]
        if labels and self.decoding.suffix:
            at = next((i for i, iv in enumerate(self.interventions) if is_opening(iv.positions)), 0)
            labels[at] += self.decoding.suffix
        return labels

    @property
    def label(self) -> str:
        return "+".join(self.labels)

    def columns(self) -> dict:
        """The setting as a score row holds it: the first intervention's fields, the decoding's,
        the labels of the other interventions in `also`."""
        first = self.interventions[0].to_dict() if self.interventions else {}
        return {**first, **self.decoding.to_dict(), "also": " + ".join(self.labels[1:])}

    def to_dict(self) -> dict:
        return {"interventions": [iv.to_dict() for iv in self.interventions], "decoding": self.decoding.to_dict()}

    @classmethod
    def from_dict(cls, data: dict | list) -> "Setting":
        """A setting from `to_dict`'s layout, or from an older version's list of interventions (each
        with its decoding rules inside), migrated."""
        if isinstance(data, list):
            data = migrate("interventions", {"interventions": data})
        return cls(tuple(Intervention.from_dict(d) for d in data["interventions"]),
                   Decoding.from_dict(data.get("decoding", {})))


def parse_value(value: str) -> tuple[str, float, str]:
    """Parse a value into (kind, factor, base statistic).

    `on_p50` → replace by on_p50; `scale:2[:base]` → replace by 2×base; `shift:a` → add
    a·(on_p50 − off_mean) to the output; `mix:a` → (1 − a)·output + a·on_p50; `clamp[:base]` →
    bound the output by base on the side of off_mean.
    """
    if value in BASE_VALUES:
        return "replace", 1.0, value
    parts = value.split(":")
    if parts[0] == "clamp" and len(parts) <= 2 and (parts[1:] or ["on_p50"])[0] in BASE_VALUES[:4]:
        return "clamp", 1.0, (parts[1:] or ["on_p50"])[0]
    kinds = {"scale": "replace", "shift": "shift", "mix": "mix"}
    if parts[0] in kinds and len(parts) in (2, 3) and (len(parts) == 2 or parts[0] == "scale"):
        base = parts[2] if len(parts) == 3 else "on_p50"
        try:
            factor = float(parts[1])
        except ValueError:
            factor = None
        if factor is not None and base in BASE_VALUES:
            return kinds[parts[0]], factor, base
    raise LangneuronsError(
        f"value {value!r}: use one of {', '.join(BASE_VALUES)}, scale:K[:base], shift:A, mix:A or "
        "clamp[:base] (e.g. scale:2, shift:0.5, mix:0.7, clamp)"
    )


def parse_strength(value: str) -> float:
    """A DiffMean value `add:α` → α (in units of the block's typical hidden-state norm)."""
    kind, _, number = value.partition(":")
    try:
        alpha = float(number) if kind == "add" else None
    except ValueError:
        alpha = None
    if alpha is None or not np.isfinite(alpha):
        raise LangneuronsError(f"value {value!r}: method diffmean takes add:α, α in units of the block's typical "
                               "hidden-state norm (e.g. add:4)")
    return alpha


def parse_positions(spec: str) -> tuple[str, int]:
    """`all`/`prompt`/`generated` → (spec, 0); `first:K`/`prefix:K` → (kind, K) with K ≥ 1."""
    if spec in POSITIONS[:3]:
        return spec, 0
    kind, _, count = spec.partition(":")
    if kind in OPENINGS and count.isdigit() and int(count) >= 1:
        return kind, int(count)
    raise LangneuronsError(f"positions {spec!r}: use all, prompt, generated, first:K or prefix:K "
                           "(K ≥ 1 new tokens)")


def is_opening(positions: str) -> bool:
    """Whether `positions` edits only the first K new tokens (`first:K`, `prefix:K`); refuses bad ones."""
    return parse_positions(positions)[0] in OPENINGS


def parse_blocks(spec: str) -> set[int] | None:
    """`0-3,14-17` → {0, 1, 2, 3, 14, 15, 16, 17}; empty → None (all blocks)."""
    if not spec:
        return None
    try:
        blocks: set[int] = set()
        for part in spec.split(","):
            lo, _, hi = part.partition("-")
            blocks |= set(range(int(lo), int(hi or lo) + 1))
        return blocks
    except ValueError:
        raise LangneuronsError(f"blocks {spec!r}: use ranges like 0-3,14-17") from None


@dataclass(frozen=True)
class Edit:
    """What happens to some units of one module: output = clamp(keep·output + add, low, high)."""

    index: torch.Tensor  # unit indices
    keep: torch.Tensor
    add: torch.Tensor
    low: torch.Tensor | None = None  # bounds of `clamp` values; None: unbounded
    high: torch.Tensor | None = None

    def to(self, device: torch.device, dtype: torch.dtype) -> "Edit":
        move = lambda t: None if t is None else t.to(device, dtype)
        return Edit(self.index.to(device), move(self.keep), move(self.add), move(self.low), move(self.high))

    def apply(self, out: torch.Tensor) -> None:
        """Edit `out` [..., width] in place."""
        edited = out[..., self.index] * self.keep + self.add
        if self.low is not None:
            edited = torch.clamp(edited, self.low, self.high)
        out[..., self.index] = edited


@dataclass(frozen=True)
class Shift:
    """Add `vector` to every hidden state of a block's output; `restore`: then rescale each state to
    the norm it had before (ReCoVeR's norm restoration)."""

    vector: torch.Tensor  # [hidden]
    restore: bool = False

    def to(self, device: torch.device, dtype: torch.dtype) -> "Shift":
        return Shift(self.vector.to(device, dtype), self.restore)

    def apply(self, out: torch.Tensor) -> None:
        """Edit `out` [..., hidden] in place."""
        before = out.float().norm(dim=-1, keepdim=True) if self.restore else None
        out.add_(self.vector)
        if before is not None:
            out.mul_((before / out.float().norm(dim=-1, keepdim=True).clamp_min(1e-12)).to(out.dtype))


def shift_vectors(iv: Intervention, directions) -> dict[int, np.ndarray]:
    """Block → α·typical_norm(block)·v̂ of a DiffMean intervention (`directions`: find.diffmean.Directions)."""
    if directions is None:
        raise LangneuronsError("method diffmean: this run has no DiffMean directions; run "
                               "`langneurons find --method all` (or diffmean) to record them")
    alpha, shifts = parse_strength(iv.value), {}
    for block in sorted(parse_blocks(iv.blocks)):
        v = directions.vector(iv.language, block).astype(np.float64)
        if iv.subtract:
            v = v - directions.vector(iv.subtract, block)
        norm = np.linalg.norm(v)
        if not norm > 0:
            raise LangneuronsError(f"block {block}: the direction of {iv.language} is zero; choose another block")
        shifts[block] = (alpha * float(directions.typical_norm[block]) * v / norm).astype(np.float32)
    return shifts


def edit_terms(kind: str, factor: float, base: str, rows: pd.DataFrame) -> dict[str, np.ndarray]:
    """keep, add, low and high per chosen neuron (see `Edit`)."""
    ones, zeros, inf = np.ones(len(rows)), np.zeros(len(rows)), np.full(len(rows), np.inf)
    value = zeros if base == "zero" else rows[base].to_numpy()
    terms = {"keep": zeros, "add": factor * value, "low": -inf, "high": inf}
    if kind == "shift":
        terms.update(keep=ones, add=factor * (rows["on_p50"].to_numpy() - rows["off_mean"].to_numpy()))
    elif kind == "mix":
        terms.update(keep=ones * (1 - factor))
    elif kind == "clamp":  # the language raises the unit: at least `value`; lowers it: at most
        raises = value >= rows["off_mean"].to_numpy()
        terms.update(keep=ones, add=zeros, low=np.where(raises, value, -inf), high=np.where(raises, inf, value))
    return terms


@dataclass
class Plan:
    """Resolved edits: module → positions → `Edit` of its chosen units."""

    edits: dict[str, dict[str, Edit | Shift]] = field(default_factory=dict)
    widths: dict[str, int] = field(default_factory=dict)
    guards: set[str] = field(default_factory=set)  # positions whose new tokens are guarded
    temperatures: dict[str, float] = field(default_factory=dict)  # positions → their opening temperature
    whole_characters: bool = False  # sample no token that puts "�" in the text (see Intervention)
    starts: torch.Tensor | None = None  # token ids → may the first new token be it (`start`); None: any
    start_temperature: float | None = None  # the first new token's temperature; None: the sampling's

    @property
    def n_units(self) -> int:
        return sum(edit.vector.numel() if isinstance(edit, Shift) else len(edit.index)
                   for per in self.edits.values() for edit in per.values())

    @property
    def rereads(self) -> set[int]:
        """Numbers of new tokens after which generation re-reads its text without the `prefix:K` edits."""
        return {count for per in self.edits.values() for pos in per
                for kind, count in [parse_positions(pos)] if kind == "prefix"}


def chosen_neurons(expertise: pd.DataFrame | None, iv: Intervention, block_of: dict[str, int],
                   activation: pd.DataFrame | None = None) -> pd.DataFrame:
    """The rows (for iv.language) that `iv` forces, within its blocks and modules if given: from `expertise`
    for method ap, from `activation` (the activation sites' table, lape.py) for method lape."""
    expertise = expertise if iv.method == "ap" else activation
    if expertise is None:
        raise LangneuronsError(f"method {iv.method}: this run has no {iv.method.upper()} results; "
                               "run `langneurons find --method both` to have both")
    allowed = parse_blocks(iv.blocks)
    if allowed is not None:
        expertise = expertise[expertise["layer"].map(block_of).isin(allowed)]
        if expertise.empty:
            raise LangneuronsError(f"blocks {iv.blocks!r}: no neuron of this run lies in these blocks (it has "
                                   f"blocks 0-{max(block_of.values(), default=0)})")
    if iv.modules:
        parts = [p for p in iv.modules.split(",") if p]
        expertise = expertise[expertise["layer"].map(lambda name: any(p in name for p in parts))]
        if expertise.empty:
            raise LangneuronsError(f"modules {iv.modules!r}: no neuron of this run lies in a module whose "
                                   "path contains it (see `langneurons sites` for the module paths)")
    if iv.method == "lape" and iv.selection == "top":
        return select_lape(expertise, iv.language, iv.n)
    if iv.selection != "random":
        return select(expertise, iv.language, iv.n, iv.selection)
    table = expertise[expertise["concept"] == iv.language]
    if table.empty:
        raise LangneuronsError(f"language {iv.language}: not in this run")
    if iv.n > len(table):
        raise LangneuronsError(f"n {iv.n}: more than the {len(table)} neurons of the model")
    picks = np.random.default_rng(iv.seed).choice(len(table), size=iv.n, replace=False)
    return table.iloc[np.sort(picks)].assign(side="random")


def resolve(interventions: list[Intervention], expertise: pd.DataFrame | None, widths: dict[str, int],
            block_of: dict[str, int] | None = None, activation: pd.DataFrame | None = None,
            starts: torch.Tensor | None = None, decoding: Decoding | None = None, directions=None) -> Plan:
    """Turn interventions into per-module edits; a later intervention wins on a shared unit; DiffMean
    shifts (`directions`: the run's find.diffmean.Directions) of one block and positions add up.

    `widths` and `block_of` cover every module edited (linears, and activations for LAPE); `starts`
    (which tokens may open a text, `rules.sentence_starts`) is needed when `decoding` has `start`.
    """
    setting = Setting(tuple(interventions), decoding or Decoding())  # checks the rules meet an opening
    rules = setting.decoding
    if rules.start and starts is None:
        raise LangneuronsError("start: this plan needs the run's sentence-start tokens (resolve it through "
                               "sweep.Steerable.plan)")
    merged: dict[tuple[str, str], dict[int, tuple[float, float, float, float]]] = {}
    shifts: dict[tuple[str, str], list] = {}
    for iv in (iv for iv in interventions if iv.method == "diffmean"):
        for block, vector in shift_vectors(iv, directions).items():
            name = directions.blocks[block]
            widths = {**widths, name: directions.hidden}
            total = shifts.setdefault((name, iv.positions), [np.zeros_like(vector), False])
            total[0] = total[0] + vector
            total[1] = total[1] or iv.restore_norm
    for iv in (iv for iv in interventions if iv.n > 0 and iv.method != "diffmean"):  # N = 0 edits nothing
        rows = chosen_neurons(expertise, iv, block_of or {}, activation)
        terms = edit_terms(*parse_value(iv.value), rows)
        for layer, unit, *values in zip(rows["layer"], rows["unit"], *terms.values()):
            merged.setdefault((layer, iv.positions), {})[int(unit)] = tuple(map(float, values))
    openings = setting.openings
    plan = Plan(widths=dict(widths), guards=set(openings) if rules.guard else set(),
                temperatures={p: rules.opening_temperature for p in openings if rules.opening_temperature},
                whole_characters=rules.whole_characters, starts=starts if rules.start else None,
                start_temperature=rules.start_temperature)
    for (name, positions), (vector, restore) in shifts.items():
        plan.edits.setdefault(name, {})[positions] = Shift(torch.from_numpy(vector), restore)
    for (layer, positions), units in merged.items():
        order = sorted(units)
        keep, add, low, high = (torch.tensor([units[u][i] for u in order], dtype=torch.float32) for i in range(4))
        bounded = bool(torch.isfinite(low).any() or torch.isfinite(high).any())
        plan.edits.setdefault(layer, {})[positions] = Edit(
            torch.tensor(order, dtype=torch.long), keep, add, low if bounded else None, high if bounded else None)
    return plan


class Steering:
    """Live state of an applied plan: the generation loop sets `fed`, the number of new tokens
    fed back into the model so far (0 during the prompt pass, and in any plain forward)."""

    def __init__(self, guards: set[str] | None = None, temperatures: dict[str, float] | None = None,
                 start_temperature: float | None = None) -> None:
        self.fed = 0
        self.guards = guards or set()
        self.temperatures = temperatures or {}
        self.start_temperature = start_temperature

    @property
    def guarded(self) -> bool:
        """Whether the token about to be sampled is one of a guarded opening."""
        return any(self.active(positions) for positions in self.guards)

    @property
    def temperature(self) -> float | None:
        """The temperature to sample the next token at: the start temperature for the first new token,
        else that of an opening being written (the coolest of them if several), else None: the sampling's."""
        if self.fed == 0 and self.start_temperature is not None:
            return self.start_temperature
        active = [t for positions, t in self.temperatures.items() if self.active(positions)]
        return min(active) if active else None

    def active(self, positions: str) -> bool:
        kind, count = parse_positions(positions)
        if kind in OPENINGS:  # the forwards that write new tokens 1..K
            return self.fed < count
        return kind == "all" or (kind == "generated") == (self.fed > 0)


@contextmanager
def steer(model: nn.Module, plan: Plan | None) -> Iterator[Steering]:
    """Apply `plan` while inside the block: the chosen units' outputs are overwritten."""
    state = Steering(plan.guards, plan.temperatures, plan.start_temperature) if plan is not None else Steering()
    if plan is None or not plan.edits:
        yield state
        return
    modules = modules_by_name(model, list(plan.edits))
    for name, module in modules.items():  # activation modules have no static width: checked below
        if output_width(module) not in (None, plan.widths.get(name, output_width(module))):
            raise LangneuronsError(
                f"the intervention was made for another model: {name} has {output_width(module)} "
                f"outputs here, {plan.widths[name]} in the run"
            )

    def editor(name: str):
        placed: dict[tuple, list] = {}  # (device, dtype) of the output -> edits moved there once

        def edit(output: torch.Tensor | tuple) -> torch.Tensor | tuple:  # a block's output: a tuple
            out = output[0] if isinstance(output, tuple) else output  # [batch, pos, width]
            where = (out.device, out.dtype)
            if where not in placed:
                if out.shape[-1] != plan.widths.get(name, out.shape[-1]):
                    raise LangneuronsError(f"the intervention was made for another model: {name} has "
                                           f"{out.shape[-1]} outputs here, {plan.widths[name]} in the run")
                placed[where] = [(pos, edit.to(*where)) for pos, edit in plan.edits[name].items()]
            for positions, edit in placed[where]:
                if state.active(positions):
                    edit.apply(out)
            return output

        return edit

    with hooks(model, {name: editor(name) for name in plan.edits}):
        yield state


def save_interventions(path: Path, setting: Setting, run_fingerprint: str) -> None:
    """Write a setting (interventions and decoding) as an intervention file for the run it was made for."""
    write_json(path, stamp("interventions", {"run": run_fingerprint, **setting.to_dict()}))


def load_interventions(path: Path, run_fingerprint: str | None = None) -> Setting:
    """Read an intervention file (of this version or an older one); refuse one made for another run
    when a fingerprint is given."""
    try:
        data = migrate("interventions", json.loads(Path(path).read_text(encoding="utf-8")))
        data["interventions"]  # noqa: B018  a file without any is no intervention file
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise LangneuronsError(f"{path}: not an intervention file ({exc})") from None
    if run_fingerprint and data.get("run") not in (None, run_fingerprint):
        raise LangneuronsError(
            f"{path}: made for another run/model (fingerprint {str(data['run'])[:12]}, this run "
            f"{run_fingerprint[:12]}); resolve it against the run it came from"
        )
    return Setting.from_dict(data)
