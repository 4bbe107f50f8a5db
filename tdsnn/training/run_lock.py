"""One training process per run folder: an exclusive advisory lock on ``OUT/.lock``.

Two processes that trained the same ``--out`` at once would overwrite each other's
checkpoints. ``hold_run`` takes the lock for the duration of a ``with`` block; the
operating system releases it when the process ends, however it ends, so a crashed run
never leaves a stale lock behind. The file records the holder's pid for the message.
"""
from __future__ import annotations

import contextlib
import fcntl  # POSIX advisory locks; the kernel drops them with the process (no stale lock files)
import os
from pathlib import Path
from typing import Iterator

from .config import ConfigError

LOCK_NAME = ".lock"


class RunInUse(ConfigError):
    """Another process is training this run folder."""


def _holder(handle) -> str:
    handle.seek(0)
    pid = handle.read().strip()
    return f"pid {pid}" if pid.isdigit() else "another process"


@contextlib.contextmanager
def hold_run(out: Path, wait: bool = False) -> Iterator[None]:
    """Hold the lock of run folder ``out`` (created if missing). Busy: ``RunInUse``, or
    with ``wait`` a message and a wait until the holder ends."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / LOCK_NAME, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(handle)
            if not wait:
                raise RunInUse(f"{out} is being trained by {holder}; wait for it to end, or choose another "
                               "--out") from None
            print(f"{out} is being trained by {holder}; waiting for it to end", flush=True)
            fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
