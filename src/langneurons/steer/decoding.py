"""Decoding rules apart from the edits: which tokens may be sampled, and at what temperature.

An `Intervention` (intervene.py) says which neurons get which edit; a `Decoding` says how the
steered text is sampled (guard, whole characters, no loops, opening and start temperatures, start
rule);
`intervene.Setting` is the two together. The trap: the guard, opening temperature and start rule
act on an opening (positions first:K or prefix:K), which lives on the interventions, so that
combination is checked where both meet, in `Setting`, not here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..errors import LangneuronsError
from ..schema import DECODING_FIELDS


@dataclass(frozen=True)
class Decoding:
    """How to sample under an edit (each off by default: the sampling's own rules).

    guard: the tokens written under an opening are words (a letter or mark in them) and none repeats
    an earlier one of them: a forced opening of "，" or "im im" is what the unedited model goes on
    to loop. whole_characters: no token is sampled that would put "�" in the text (one that holds
    it, or a byte token `<0xE3>` that breaks UTF-8): Gemma-3-270M loops on "���" once it has written
    one. opening_temperature: sample the opening's tokens at this temperature instead of the
    sampling's, the edited model's next-token distribution being flat. start: the first new token is
    one that begins the run's sentences more often than its share of all their tokens
    (`rules.sentence_starts`): the edited model otherwise often opens mid-phrase ("など", "か").
    start_temperature (with start): sample that first token at this temperature. own_starts (with
    start): the sentence starts are those of the target language's sentences alone, so that an
    opening cannot begin with another language's first word ("The", "What" in a French answer).
    distinct_starts (with own_starts): of those, only the ones that do not also begin the run's
    English sentences, the prompts' language: an answer that opens with a word both share ("In")
    can go on in English.
    no_loops: on every new token, no token is sampled that begins one more copy of a unit the text
    already repeats in a row (`rules.no_loops`): a model pushed off its course can fall into a loop
    ("准准准准…") that it never leaves, greedy decoding above all.
    """

    guard: bool = False
    whole_characters: bool = False
    opening_temperature: float | None = None
    start: bool = False
    start_temperature: float | None = None
    own_starts: bool = False
    no_loops: bool = False
    distinct_starts: bool = False

    def __post_init__(self) -> None:
        if self.opening_temperature is not None and not self.opening_temperature > 0:
            raise LangneuronsError(f"opening_temperature {self.opening_temperature}: a temperature above 0, "
                                   "only for an opening (positions first:K or prefix:K)")
        if self.start_temperature is not None and not (self.start and self.start_temperature > 0):
            raise LangneuronsError(f"start_temperature {self.start_temperature}: a temperature above 0, only "
                                   "with start (the opening's first token from the sentence starts)")
        if self.own_starts and not self.start:
            raise LangneuronsError("own_starts: only with start (the target language's sentence starts)")
        if self.distinct_starts and not self.own_starts:
            raise LangneuronsError("distinct_starts: only with own_starts (the target language's sentence starts "
                                   "that English sentences do not share)")

    @property
    def needs_opening(self) -> bool:
        """Whether a rule here acts on an opening's tokens (guard, opening temperature, start)."""
        return self.guard or self.opening_temperature is not None or self.start

    @property
    def active(self) -> bool:
        """Whether any rule is on (a plan is needed even when no neuron is edited)."""
        return self != Decoding()

    @property
    def suffix(self) -> str:
        """The part of a setting's label (and file key) that names the rules, "" when none is on."""
        return ("-guard" if self.guard else "") + ("-chars" if self.whole_characters else "") + (
            f"-T{self.opening_temperature:g}" if self.opening_temperature is not None else "") + (
            "-start" if self.start else "") + ("-own" if self.own_starts else "") + (
            "-distinct" if self.distinct_starts else "") + (
            f"-S{self.start_temperature:g}" if self.start_temperature is not None else "") + (
            "-noloops" if self.no_loops else "")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Decoding":
        unknown = set(data) - set(DECODING_FIELDS)
        if unknown:
            raise LangneuronsError(f"decoding has unknown field(s) {sorted(unknown)}")
        for name, value in data.items():  # a file edited by hand: name the mistyped field
            number = name.endswith("temperature")
            if (value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)))
                    if number else not isinstance(value, bool)):
                raise LangneuronsError(f"decoding field {name} {value!r}: must be "
                                       f"{'a number or null' if number else 'true or false'}")
        return cls(**data)
