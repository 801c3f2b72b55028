"""One live writer per run directory: an OS lock held for the life of the run.

``RUN/.lock`` is locked with ``fcntl.flock`` by the process that writes the run (a new run,
a resume, a sweep point). The kernel drops the lock when that process exits, however it
exits (SIGKILL included), so a dead run never blocks its own resume and there is no heartbeat
to go stale. The file holds the holder's host and pid, for the error a second writer gets.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from neurocomm.platform.errors import RunDirError

LOCK_NAME = ".lock"


class RunLock:
    """Held from :meth:`acquire` until :meth:`release` (or the process's death)."""

    def __init__(self, run_path: Path) -> None:
        self.path = Path(run_path) / LOCK_NAME
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> RunLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise RunDirError(
                f"{self.path.parent}: the run is live (written by pid {holder.get('pid', '?')} on "
                f"{holder.get('host', '?')}); stop that process before resuming it"
            ) from None
        record = {"host": socket.gethostname(), "pid": os.getpid(), "since": round(time.time(), 3)}
        # Written in place: the lock file is never replaced, or a second writer would lock
        # another inode.
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)
        os.close(self._fd)  # closing drops the flock
        self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


def _read_holder(fd: int) -> dict[str, Any]:
    try:
        data = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
