"""Data-parallel `find` under torchrun: each rank records its share of the sentences.

`torchrun --nproc-per-node K -m langneurons find ...` (or any launcher that sets WORLD_SIZE, RANK,
LOCAL_RANK, MASTER_ADDR and MASTER_PORT) starts one process per rank; without it everything here
is a no-op. Rank 0 checks the RUN folder and creates the store while the others wait; every rank
records batches i % world == rank into that store; rank 0 waits for all of them, then computes
expertise and writes the outputs alone while the others exit. The trap: every rank must reach
every collective. A rank that fails makes torchrun stop the others, so the long timeout below only
has to cover the slowest rank's share of recording.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from accelerate import PartialState
from accelerate.utils import gather_object

from ..errors import LangneuronsError

TIMEOUT = timedelta(hours=24)  # rank 0 waits at most this long for the others to finish recording
SUMMED = ("batches_computed", "sentences_computed", "tokens_computed")


@dataclass(frozen=True)
class Ranks:
    """This process's place in a data-parallel run; one rank of one when not under torchrun."""

    state: PartialState | None = None  # None: a single process, no process group
    owns_group: bool = False  # we started the process group, so we end it

    @property
    def rank(self) -> int:
        return self.state.process_index if self.state else 0

    @property
    def world(self) -> int:
        return self.state.num_processes if self.state else 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def shard(self) -> tuple[int, int]:
        return self.rank, self.world

    @contextmanager
    def main_first(self) -> Iterator[None]:
        """Rank 0 runs the block first (creating files); the other ranks run it after rank 0 is done."""
        with self.state.main_process_first() if self.state else nullcontext():
            yield

    def finish(self, counts: dict) -> dict | None:
        """Wait until every rank has recorded; rank 0 gets the counts summed (seconds: the slowest
        rank) and the others None. Leaves the process group."""
        if self.world == 1:
            return counts
        every = gather_object([counts])  # one dict per rank, on every rank
        if self.owns_group:
            self.state.destroy_process_group()
        if not self.main:
            return None
        total = {key: sum(c[key] for c in every) for key in SUMMED}
        return {**total, "record_seconds": max(c["record_seconds"] for c in every), "ranks": self.world}


def join(device: str, device_map: str | None) -> tuple[Ranks, str]:
    """Join the process group when launched by torchrun; return the ranks and this rank's device.

    The collectives are barriers and a gather of a few numbers, so they run over gloo on the CPU
    for CUDA runs too (no NCCL watchdog on the long wait, no GPU memory for communication
    buffers): `PartialState(cpu=True)` with the 24 h timeout passed on to `init_process_group`;
    this rank's GPU is picked here, not by Accelerate.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Ranks(), device
    local_rank, local_world = int(os.environ["LOCAL_RANK"]), int(os.environ["LOCAL_WORLD_SIZE"])
    if device_map is not None and local_world > 1:
        raise LangneuronsError(
            f"--device-map {device_map} with {local_world} processes per node: each would spread the "
            "model over the same GPUs; use --nproc-per-node 1 with --device-map, or drop --device-map"
        )
    if device_map is None and device in ("auto", "cuda") and torch.cuda.is_available():
        if local_rank >= torch.cuda.device_count():
            raise LangneuronsError(
                f"{local_world} processes per node but {torch.cuda.device_count()} GPU(s): use "
                f"--nproc-per-node {torch.cuda.device_count()} or fewer"
            )
        device = f"cuda:{local_rank}"
        torch.cuda.set_device(local_rank)
    owns = not dist.is_initialized()
    return Ranks(PartialState(cpu=True, backend="gloo", timeout=TIMEOUT), owns), device
