"""Neuron sites: the linear layers inside a model's repeated decoder blocks whose output features
are neurons (docs/method.md §2), and the MLP activation module of each block (LAPE's site), as plain data.

Finding them in a model is `model.discover_sites` / `model.activation_sites`; this module holds
what a run stores and reads back without torch. The trap: a site is named by its full
`named_modules()` path, and that name is the key everywhere (store, CSV, report).
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import LangneuronsError

# Words in a module path (relative to its block) that mark it as part of attention.
ATTENTION_WORDS = ("attn", "attention")
# Words in a parameter-free leaf module's class name that mark it as an activation function.
ACTIVATION_WORDS = ("act", "gelu", "relu", "silu", "swish", "tanh", "sigmoid", "mish")
ACTIVATION = "activation"  # the `kind` of an activation site


def block_name(blocks_path: str, index: int) -> str:
    """The full module path of decoder block `index` (a bare index when the blocks sit at the root)."""
    return f"{blocks_path}.{index}" if blocks_path else str(index)


@dataclass(frozen=True)
class Site:
    """One linear module whose output features are neurons."""

    name: str  # full `named_modules()` path, e.g. "model.layers.3.mlp.up_proj"
    block: int  # index of the decoder block it belongs to
    local: str  # path inside the block, e.g. "mlp.up_proj"
    kind: str  # "attention", "mlp" or "activation"
    width: int  # number of output features (neurons)
    offset: int  # index of its first neuron in the model-wide neuron numbering


@dataclass(frozen=True)
class Sites:
    """All neuron sites of a model, in block order, with a model-wide neuron numbering."""

    blocks_path: str
    n_blocks: int
    sites: tuple[Site, ...]

    @property
    def total(self) -> int:
        return sum(s.width for s in self.sites)

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.sites]

    def __iter__(self):
        return iter(self.sites)

    def __len__(self) -> int:
        return len(self.sites)

    def __getitem__(self, name: str) -> Site:
        for site in self.sites:
            if site.name == name:
                return site
        raise LangneuronsError(
            f"no neuron site named {name!r}; run `langneurons sites` to list them "
            f"(e.g. {self.sites[0].name!r})"
        )

    def to_records(self) -> list[dict]:
        return [s.__dict__.copy() for s in self.sites]


def feeding_sites(linear: Sites) -> dict[int, Site]:
    """Per block, the first MLP linear: the one whose output the activation transforms."""
    first: dict[int, Site] = {}
    for site in linear:
        if site.kind == "mlp":
            first.setdefault(site.block, site)
    return first
