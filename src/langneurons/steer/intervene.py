"""Interventions as plain data (docs/method.md §5): which units get which edit, at which positions.

An `Intervention` says which neurons (language, selection, N) or which residual direction get
which value at which positions; a `Setting` is interventions applied together with one `Decoding`.
Applying them is `apply.py`'s work. The trap: "positions" is a phase of generation (the prompt
pass, then one forward per new token with a KV cache), not token indices.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..errors import LangneuronsError
from ..io import write_json
from ..schema import migrate, stamp
from .decoding import Decoding

SELECTIONS = ("top", "bottom", "both", "random")
METHODS = ("ap", "lape", "diffmean", "named", "shots", "answer")  # AP, LAPE, then residual directions
DIRECTIONS = ("diffmean", "named", "shots", "answer")  # methods that add a vector to a block's output: the language's, a prompt's
DIFFMEAN_UNUSED = ("n", "selection", "seed", "modules")  # neuron fields a DiffMean edit has no use for
POSITIONS = ("all", "prompt", "generated", "first:K", "prefix:K", "prompt-tail:K")
OPENINGS = ("first", "prefix")  # positions that edit only the first K new tokens
BASE_VALUES = ("on_p50", "on_p90", "off_mean", "off_p50", "zero")
DIRECTION_VALUES = ("add", "clamp")  # DiffMean: add α·v̂, or raise the projection on v̂ to a level


@dataclass(frozen=True)
class Intervention:
    """Force N neurons of `language` (chosen by `selection`) to `value` at `positions`.

    positions: `all` (the paper), `prompt`, `generated`, `first:K` (while the first K new tokens
    are written; their edited keys and values stay in the cache) or `prefix:K` (the same, then the
    model reads the text so far afresh, unedited, and continues it: a steered opening),
    `prompt-tail:K` (the prompt's last K tokens only), or parts joined by `+`, e.g.
    `prompt-tail:8+generated`.
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
    `clamp:β` raises each state's projection on v̂ to at least m + β·‖v‖, m the other languages' mean
    projection (β 1: the language's own mean; the direction's counterpart of the neurons' `clamp`);
    `restore_norm` rescales each edited state to its norm before the edit; `subtract` (a language)
    uses the unit direction of v_language − v_subtract instead. n, selection, seed and modules are
    neuron fields and stay at their defaults. method `named` adds, with `add:α`, α times the
    language's named-target direction (steer/named.py: what naming the language in a translation
    prompt adds to the state at its last token) to each block of `blocks`; positions e.g. `prompt-tail:1`;
    method `shots` likewise adds what three worked examples add to the named prompt's last token, and
    `answer` what they add to the states of the answer's tokens (positions e.g. `generated`).
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
        if self.method in DIRECTIONS:
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
        position_parts(self.positions)
        if self.n < 0:
            raise LangneuronsError(f"n {self.n}: must be 0 or more")
        parse_value(self.value)
        parse_blocks(self.blocks)

    def check_diffmean(self) -> None:
        """The fields of a direction's edit (method diffmean, or a prompt's: named, shots or answer)."""
        for name in DIFFMEAN_UNUSED:
            default = type(self).__dataclass_fields__[name].default
            if getattr(self, name) != default:
                raise LangneuronsError(f"{name} {getattr(self, name)!r}: not used by method {self.method} (it adds a "
                                       f"direction; its strength is value add:α or clamp:β); leave {name} at {default!r}")
        kind, _ = parse_strength(self.value)
        position_parts(self.positions)
        if not parse_blocks(self.blocks):
            raise LangneuronsError(f"blocks: method {self.method} needs the block(s) whose output gets the "
                                   "direction, e.g. 12 or 10-12")
        if self.method != "diffmean" and (kind != "add" or self.restore_norm or self.subtract):
            raise LangneuronsError(f"method {self.method}: value add:α only, without restore_norm or subtract "
                                   f"(got value {self.value!r})")
        if not isinstance(self.restore_norm, bool):
            raise LangneuronsError(f"restore_norm {self.restore_norm!r}: true or false")
        if self.subtract == self.language:
            raise LangneuronsError(f"subtract {self.subtract!r}: the target language itself; give the source "
                                   "language (or leave it out)")

    @property
    def label(self) -> str:
        """The edit's name in file keys; a `Setting` adds its decoding's suffix."""
        if self.method in DIRECTIONS:
            return (f"{self.language}-{self.method}-{self.value}-{self.positions}-blocks{self.blocks}"
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


def parse_strength(value: str) -> tuple[str, float]:
    """A DiffMean value → (kind, strength): `add:α` (α in units of the block's typical hidden-state norm)
    or `clamp:β` (β in units of the language's mean difference along v̂, from the other languages' mean)."""
    kind, _, number = value.partition(":")
    try:
        strength = float(number) if kind in DIRECTION_VALUES else None
    except ValueError:
        strength = None
    if strength is None or not np.isfinite(strength):
        raise LangneuronsError(f"value {value!r}: method diffmean takes add:α (add α typical norms along v̂, e.g. "
                               "add:0.1) or clamp:β (raise each state along v̂ to at least β of the way from the "
                               "other languages' mean to the language's, e.g. clamp:1)")
    return kind, strength


def parse_positions(spec: str) -> tuple[str, int]:
    """One part of a positions spec: `all`/`prompt`/`generated` → (spec, 0); `first:K`/`prefix:K`/
    `prompt-tail:K` → (kind, K) with K ≥ 1."""
    if spec in POSITIONS[:3]:
        return spec, 0
    kind, _, count = spec.partition(":")
    if kind in (*OPENINGS, "prompt-tail") and count.isdigit() and int(count) >= 1:
        return kind, int(count)
    raise LangneuronsError(f"positions {spec!r}: use all, prompt, generated, first:K, prefix:K or prompt-tail:K "
                           "(K ≥ 1 tokens), or several joined by +, e.g. prompt-tail:8+generated")


def position_parts(spec: str) -> list[tuple[str, int]]:
    """The parts of `spec` joined by `+` (`prompt-tail:8+generated`: the prompt's last 8 tokens and every
    new token), each checked by `parse_positions`; a part may not repeat."""
    parts = [parse_positions(part) for part in spec.split("+")]
    if len(set(parts)) < len(parts) or ("all", 0) in parts and len(parts) > 1:
        raise LangneuronsError(f"positions {spec!r}: a part repeats, or `all` is joined with others")
    return parts


def is_opening(positions: str) -> bool:
    """Whether `positions` edits only the first K new tokens (`first:K`, `prefix:K`); refuses bad ones."""
    return any(kind in OPENINGS for kind, _ in position_parts(positions))


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


def save_interventions(path: Path, setting: Setting, run_fingerprint: str) -> None:
    """Write a setting (interventions and decoding) as an intervention file for the run it was made for."""
    write_json(path, stamp("interventions", {"run": run_fingerprint, **setting.to_dict()}))


def recommended_path(run: Path, language: str, method: str = "ap") -> Path:
    """Where a frontier study writes its recommendation: RUN/frontier/<L>-recommended.json for AP (or
    mixed) points, <L>-lape-recommended.json and <L>-diffmean-recommended.json for the other methods."""
    return Path(run) / "frontier" / (f"{language}-recommended.json" if method == "ap" else
                                     f"{language}-{method}-recommended.json")


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
