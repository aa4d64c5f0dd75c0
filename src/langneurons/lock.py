"""One writer per RUN folder: an exclusive `flock` on RUN/.lock held for a command's whole run.

The trap: two `find` (or `sweep`) processes on one RUN both write its files and leave a run that
says one thing beside files that say another. The kernel drops a flock when its process dies, so
a lock left by a killed process is simply taken over; the PID and command written into the lock
file only serve the message of the refused second writer.
"""

from __future__ import annotations

import errno
import fcntl
import os
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Iterator

from .errors import LangneuronsError
from .io import disk_errors

LOCK_NAME = ".lock"


def holder(path: Path) -> str:
    """`PID <pid> (<command>)` from a lock file, or a plain phrase when it cannot be read."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        text = ""
    pid, _, command = text.partition("\n")
    return f"PID {pid} ({command})" if pid else "another process"


@contextmanager
def run_lock(run: Path, command: str) -> Iterator[Path]:
    """Hold the exclusive lock of `run` (created if missing) while the block runs; a second
    writer fails at once with the holder's PID and command."""
    run = Path(run)
    path = run / LOCK_NAME
    with disk_errors(path):
        run.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            raise LangneuronsError(
                f"{run} is in use by {holder(path)}; wait for it to finish (or stop it), "
                "or choose another folder"
            ) from None
        with disk_errors(path):
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n{command}\n".encode(), 0)
        try:
            yield path
        finally:
            try:
                os.ftruncate(fd, 0)
            except OSError:
                pass
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def main_rank_lock(run: Path, command: str) -> AbstractContextManager[Path]:
    """`run_lock` in the main process; under torchrun only rank 0 takes it (the other ranks of the
    same command write their own shards of the store)."""
    return run_lock(run, command) if os.environ.get("RANK", "0") == "0" else nullcontext(Path(run) / LOCK_NAME)
