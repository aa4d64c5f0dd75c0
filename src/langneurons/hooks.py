"""Hooks on named modules: the one place that touches hook handles (like baukit's TraceDict).

`hooks(model, {name: fn})` attaches `fn(output)` after each named module's forward and removes
every hook it added on exit, also on errors, in reverse order. The trap: never clear a module's
hooks wholesale; other code (Accelerate's device map) may have its own there.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

import torch
from torch import nn

from .model import modules_by_name

HookFn = Callable[[torch.Tensor], torch.Tensor | None]  # output -> replacement or None


@contextmanager
def hooks(model: nn.Module, fns: dict[str, HookFn]) -> Iterator[None]:
    """Run `fns[name](output)` after each named module's forward; remove every hook on exit."""
    modules = modules_by_name(model, list(fns))
    handles = []
    try:
        for name, fn in fns.items():
            handles.append(modules[name].register_forward_hook(lambda _m, _a, out, fn=fn: fn(out)))
        yield
    finally:
        for handle in reversed(handles):
            handle.remove()
