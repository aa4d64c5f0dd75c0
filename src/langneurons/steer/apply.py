"""Applying interventions: `resolve()` turns interventions into a `Plan` of per-module edits, and
`steer()` applies a plan with hooks on the affected modules only (docs/method.md §5).

The trap: with a KV cache the prompt pass and each new token are separate forwards, so which
edits are active is decided per forward from `Steering.fed` (new tokens fed back so far), which
the generation loop sets.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..errors import LangneuronsError
from ..find.tables import select, select_lape
from ..hooks import hooks
from ..model import modules_by_name, output_width
from .decoding import Decoding
from .intervene import (
    DIRECTIONS,
    OPENINGS,
    Intervention,
    Setting,
    parse_blocks,
    parse_strength,
    parse_value,
    position_parts,
)


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


@contextmanager
def kept_norms(out: torch.Tensor, restore: bool) -> Iterator[None]:
    """With `restore`, rescale each state of `out` [..., hidden] after the block's in-place edit to the
    norm it had before (ReCoVeR's norm restoration); else leave the edit as it is."""
    before = out.float().norm(dim=-1, keepdim=True) if restore else None
    yield
    if before is not None:
        out.mul_((before / out.float().norm(dim=-1, keepdim=True).clamp_min(1e-12)).to(out.dtype))


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
        with kept_norms(out, self.restore):
            out.add_(self.vector)


@dataclass(frozen=True)
class Floor:
    """Raise every hidden state of a block's output along `direction` (a unit vector) to at least `level`:
    h + max(0, level − h·direction)·direction; `restore`: then rescale each state to its norm before."""

    direction: torch.Tensor  # [hidden], unit norm
    level: float
    restore: bool = False

    def to(self, device: torch.device, dtype: torch.dtype) -> "Floor":
        return Floor(self.direction.to(device, dtype), self.level, self.restore)

    def apply(self, out: torch.Tensor) -> None:
        """Edit `out` [..., hidden] in place."""
        with kept_norms(out, self.restore):
            out.add_((self.level - out @ self.direction).clamp_min(0).unsqueeze(-1) * self.direction)


def unit_directions(iv: Intervention, directions) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Block → (v, v̂) of a DiffMean intervention: the language's direction, minus `subtract`'s if given
    (`directions`: find.diffmean.Directions)."""
    if directions is None:
        raise LangneuronsError("method diffmean: this run has no DiffMean directions; run "
                               "`langneurons find --method all` (or diffmean) to record them")
    units = {}
    for block in sorted(parse_blocks(iv.blocks)):
        v = directions.vector(iv.language, block).astype(np.float64)
        if iv.subtract:
            v = v - directions.vector(iv.subtract, block)
        norm = np.linalg.norm(v)
        if not norm > 0:
            raise LangneuronsError(f"block {block}: the direction of {iv.language} is zero; choose another block")
        units[block] = (v, v / norm)
    return units


def shift_vectors(iv: Intervention, directions) -> dict[int, np.ndarray]:
    """Block → α·typical_norm(block)·v̂ of a DiffMean `add:α` intervention."""
    kind, alpha = parse_strength(iv.value)
    if kind != "add":
        raise LangneuronsError(f"value {iv.value!r}: only an add:α DiffMean edit is a fixed vector")
    return {block: (alpha * float(directions.typical_norm[block]) * unit).astype(np.float32)
            for block, (_, unit) in unit_directions(iv, directions).items()}


def named_shifts(iv: Intervention, named) -> dict[int, np.ndarray]:
    """Block → α times the language's prompt-state direction of the edit's method (`named`:
    steer.named.NamedDirections)."""
    if named is None:
        raise LangneuronsError(f"method {iv.method}: resolve it through Steerable.plan, which computes the run's "
                               f"{iv.method} directions")
    _, alpha = parse_strength(iv.value)
    return {block: (alpha * named.vector(iv.language, block)).astype(np.float32)
            for block in sorted(parse_blocks(iv.blocks))}


def floors(iv: Intervention, directions) -> dict[int, Floor]:
    """Block → the `Floor` of a DiffMean `clamp:β` intervention: level m + β·(v·v̂), m the projection of
    the mean over the language's negatives (the language's mean minus v_language) on v̂."""
    _, beta = parse_strength(iv.value)
    edits = {}
    for block, (v, unit) in unit_directions(iv, directions).items():
        own = directions.vector(iv.language, block, "means").astype(np.float64)
        others = own - directions.vector(iv.language, block)
        edits[block] = Floor(torch.from_numpy(unit.astype(np.float32)), float(others @ unit + beta * (v @ unit)),
                             iv.restore_norm)
    return edits


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
    """Resolved edits: module → positions → `Edit` of its chosen units (or a block's `Shift` / `Floor`)."""

    edits: dict[str, dict[str, Edit | Shift | Floor]] = field(default_factory=dict)
    widths: dict[str, int] = field(default_factory=dict)
    guards: set[str] = field(default_factory=set)  # positions whose new tokens are guarded
    temperatures: dict[str, float] = field(default_factory=dict)  # positions → their opening temperature
    whole_characters: bool = False  # sample no token that puts "�" in the text (see Decoding)
    no_loops: bool = False  # sample no token that begins one more copy of a repeated unit (see Decoding)
    starts: torch.Tensor | None = None  # token ids → may the first new token be it (`start`); None: any
    start_temperature: float | None = None  # the first new token's temperature; None: the sampling's

    @property
    def n_units(self) -> int:
        return sum(edit.index.numel() if isinstance(edit, Edit) else self.widths[name]
                   for name, per in self.edits.items() for edit in per.values())

    @property
    def rereads(self) -> set[int]:
        """Numbers of new tokens after which generation re-reads its text without the `prefix:K` edits."""
        return {count for per in self.edits.values() for pos in per
                for kind, count in position_parts(pos) if kind == "prefix"}


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
            starts: torch.Tensor | None = None, decoding: Decoding | None = None, directions=None,
            named: dict | None = None) -> Plan:
    """Turn interventions into per-module edits; a later intervention wins on a shared unit; DiffMean
    and prompt-state shifts (`directions`: the run's find.diffmean.Directions; `named`: its
    steer.named.NamedDirections by kind) of one block and positions add up.

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
    lifted: dict[tuple[str, str], Floor] = {}
    for iv in (iv for iv in interventions if iv.method in DIRECTIONS):
        clamp = parse_strength(iv.value)[0] == "clamp"
        prompted = iv.method != "diffmean"  # a prompt-state direction (steer/named.py)
        source = (named or {}).get(iv.method) if prompted else directions  # the block names and hidden width
        vectors = named_shifts(iv, source) if prompted else (floors if clamp else shift_vectors)(iv, directions)
        for block, edit in vectors.items():
            name = source.blocks[block]
            widths = {**widths, name: source.hidden}
            if clamp:
                lifted[name, iv.positions] = edit
                continue
            total = shifts.setdefault((name, iv.positions), [np.zeros_like(edit), False])
            total[0] = total[0] + edit
            total[1] = total[1] or iv.restore_norm
    for iv in (iv for iv in interventions if iv.n > 0 and iv.method not in DIRECTIONS):  # N = 0 edits nothing
        rows = chosen_neurons(expertise, iv, block_of or {}, activation)
        terms = edit_terms(*parse_value(iv.value), rows)
        for layer, unit, *values in zip(rows["layer"], rows["unit"], *terms.values()):
            merged.setdefault((layer, iv.positions), {})[int(unit)] = tuple(map(float, values))
    openings = setting.openings
    plan = Plan(widths=dict(widths), guards=set(openings) if rules.guard else set(),
                temperatures={p: rules.opening_temperature for p in openings if rules.opening_temperature},
                whole_characters=rules.whole_characters, no_loops=rules.no_loops,
                starts=starts if rules.start else None, start_temperature=rules.start_temperature)
    for (name, positions), (vector, restore) in shifts.items():
        plan.edits.setdefault(name, {})[positions] = Shift(torch.from_numpy(vector), restore)
    for (name, positions), floor in lifted.items():
        if positions in plan.edits.get(name, {}):
            raise LangneuronsError(f"{name}: a clamp:β and an add:α DiffMean edit at the same positions "
                                   f"({positions}); keep one of them, or give them different positions")
        plan.edits.setdefault(name, {})[positions] = floor
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
        self.rereading = False  # the forward reads the whole text again (after a prefix:K opening)
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
        return any(self.part_span(kind, count) is not None for kind, count in position_parts(positions))

    def span(self, positions: str, length: int) -> slice | None:
        """Which of the current forward's `length` sequence positions `positions` edits: a slice, or
        None (none). Its parts always make one run (e.g. the prompt's tail, then the answer)."""
        runs = [part.indices(length)[:2] for kind, count in position_parts(positions)
                if (part := self.part_span(kind, count)) is not None]
        runs = [(lo, hi) for lo, hi in runs if lo < hi]
        if not runs:
            return None
        lo, hi = min(lo for lo, _ in runs), max(hi for _, hi in runs)
        return slice(None) if (lo, hi) == (0, length) else slice(lo, hi)

    def part_span(self, kind: str, count: int) -> slice | None:
        """The positions one part edits. Prompts are left-padded, so a prompt's last K tokens are the
        sequence's last K in the prompt pass; after it each forward reads one new token, except the
        reread after a prefix:K opening, which reads the prompt and the `fed` new tokens again, with
        every edit but the finished openings' at the positions it had before."""
        new = self.fed
        if not self.rereading:
            if kind in OPENINGS:  # the forwards that write new tokens 1..K
                return slice(None) if new < count else None
            if kind == "prompt-tail":
                return slice(-count, None) if new == 0 else None
            return slice(None) if kind == "all" or (kind == "generated") == (new > 0) else None
        if kind == "all" or (kind in OPENINGS and count > new):
            return slice(None)
        if kind == "first":  # the prompt and new tokens 1..K-1
            return slice(None, -(new - count + 1))
        return {"prompt": slice(None, -new), "generated": slice(-new, None),
                "prompt-tail": slice(-(new + count), -new)}.get(kind)  # prefix: finished, unedited


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
                span = state.span(positions, out.shape[1])
                if span is not None:
                    edit.apply(out if span == slice(None) else out[:, span])
            return output

        return edit

    with hooks(model, {name: editor(name) for name in plan.edits}):
        yield state
