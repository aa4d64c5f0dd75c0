"""Neuron sites: every linear layer inside the model's repeated decoder blocks (DESIGN §2), and
the MLP activation module of each block (LAPE's site).

The block list is found generically (the largest ModuleList of identical blocks), never by a
per-architecture name table. The one trap: GPT-2 style models use `Conv1D`, not `nn.Linear`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers.pytorch_utils import Conv1D

from .errors import LangneuronsError

# Words in a module path (relative to its block) that mark it as part of attention.
ATTENTION_WORDS = ("attn", "attention")
# Words in a parameter-free leaf module's class name that mark it as an activation function.
ACTIVATION_WORDS = ("act", "gelu", "relu", "silu", "swish", "tanh", "sigmoid", "mish")
ACTIVATION = "activation"  # the `kind` of an activation site


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


def output_width(module: nn.Module) -> int | None:
    """Number of output features of a linear-like module, None for anything else."""
    if isinstance(module, nn.Linear):
        return module.out_features
    if isinstance(module, Conv1D):
        return module.nf
    return None


def find_blocks(model: nn.Module) -> tuple[str, nn.ModuleList]:
    """Return the path and the ModuleList of the repeated decoder blocks.

    Chosen as the ModuleList of same-class modules holding the most parameters.
    """
    best: tuple[int, str, nn.ModuleList] | None = None
    for path, module in model.named_modules():
        if not isinstance(module, nn.ModuleList) or len(module) == 0:
            continue
        if len({type(child) for child in module}) != 1:
            continue
        n_params = sum(p.numel() for p in module.parameters())
        if best is None or n_params > best[0]:
            best = (n_params, path, module)
    if best is None or best[0] == 0:
        raise LangneuronsError(
            f"could not find the decoder block list of {type(model).__name__}: no ModuleList of "
            "identical blocks with parameters; is this a decoder-only causal LM?"
        )
    return best[1], best[2]


def discover_sites(model: nn.Module) -> Sites:
    """List every linear under the decoder blocks, in block order, with widths and offsets."""
    blocks_path, blocks = find_blocks(model)
    sites: list[Site] = []
    offset = 0
    for index, block in enumerate(blocks):
        for local, module in block.named_modules():
            width = output_width(module)
            if width is None:
                continue
            kind = "attention" if any(w in local.lower() for w in ATTENTION_WORDS) else "mlp"
            name = f"{blocks_path}.{index}.{local}" if blocks_path else f"{index}.{local}"
            sites.append(Site(name, index, local, kind, width, offset))
            offset += width
    if not sites:
        raise LangneuronsError(f"the decoder blocks at {blocks_path!r} contain no linear layers")
    return Sites(blocks_path, len(blocks), tuple(sites))


def modules_by_name(model: nn.Module, names: list[str]) -> dict[str, nn.Module]:
    """Look up modules by their full path; an unknown name raises a clear error."""
    table = dict(model.named_modules())
    missing = [n for n in names if n not in table]
    if missing:
        raise LangneuronsError(
            f"module(s) {missing[:3]} not found in {type(model).__name__}; the neuron file was "
            "probably made for another model"
        )
    return {n: table[n] for n in names}


def site_device(model: nn.Module) -> torch.device:
    """Device of the model's first parameter."""
    return next(model.parameters()).device


def is_activation(module: nn.Module) -> bool:
    """A leaf module without parameters whose class name says it is an activation function."""
    name = type(module).__name__.lower()
    leaf = next(module.children(), None) is None and next(module.parameters(), None) is None
    return leaf and any(word in name for word in ACTIVATION_WORDS)


def activation_sites(model: nn.Module, linear: Sites | None = None) -> Sites:
    """The MLP activation module of each block (`act_fn(gate_proj(x))` in Llama/Gemma/Qwen).

    Named by its full path, e.g. `model.layers.3.mlp.act_fn`; its width is that of the block's
    first MLP linear (gate_proj, c_fc, fc1, dense_h_to_4h), whose output it transforms, so its
    unit i is that linear's unit i. Recording checks the width on the first forward.
    """
    feeding_of = feeding_sites(linear or discover_sites(model))
    blocks_path, blocks = find_blocks(model)
    sites: list[Site] = []
    seen: set[int] = set()
    for index, block in enumerate(blocks):
        found = [(local, m) for local, m in block.named_modules() if is_activation(m)
                 and not any(w in local.lower() for w in ATTENTION_WORDS)]
        prefix = f"{blocks_path}.{index}" if blocks_path else str(index)
        if len(found) != 1:
            names = ", ".join(local for local, _ in found)
            what = f"{len(found)} activation modules ({names})" if found else "no activation module"
            raise LangneuronsError(
                f"{type(model).__name__}: block {prefix} has {what} outside attention; LAPE needs "
                "exactly one MLP activation module per block to hook (e.g. mlp.act_fn), and this "
                "model applies its activation as a plain function or has several"
            )
        local, module = found[0]
        if id(module) in seen:
            raise LangneuronsError(f"{type(model).__name__}: the activation module {prefix}.{local} "
                                   "is shared between blocks; its hook could not tell them apart")
        seen.add(id(module))
        feeding = feeding_of.get(index)
        if feeding is None:
            raise LangneuronsError(f"{type(model).__name__}: block {prefix} has no MLP linear before "
                                   "its activation")
        offset = sites[-1].offset + sites[-1].width if sites else 0
        sites.append(Site(f"{prefix}.{local}", index, local, ACTIVATION, feeding.width, offset))
    return Sites(blocks_path, len(blocks), tuple(sites))


def feeding_sites(linear: Sites) -> dict[int, Site]:
    """Per block, the first MLP linear: the one whose output the activation transforms."""
    first: dict[int, Site] = {}
    for site in linear:
        if site.kind == "mlp":
            first.setdefault(site.block, site)
    return first
