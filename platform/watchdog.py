"""Nothing of an embedded Ray session outlives its driver, SIGKILL of the driver included.

Ray shares the fate of its GCS and raylet with the driver that started them, and non-detached
actors die with their owner, but the raylet's helpers (dashboard agent, runtime-env agent) and
idle workers linger for a long while after a SIGKILL. The driver therefore starts one small
watchdog process per embedded session: it keeps a list of the session's processes (the ones
Ray started and all their descendants) and SIGKILLs every one still alive as soon as the
driver is gone. It exits on its own when the session ends normally.

Run as ``python -m neurocomm.platform.watchdog DRIVER_PID ROOT_PID...``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from typing import Any

POLL_S = 0.5
_guarded: set[str] = set()


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time) of a live, non-zombie process; None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if fields[0] in (b"Z", b"X"):
        return None
    return int(fields[1]), int(fields[19])


def _children_map() -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            info = _stat(int(name))
            if info is not None:
                out.setdefault(info[0], []).append(int(name))
    return out


def _tree(roots: set[int]) -> set[int]:
    children = _children_map()
    seen, todo = set(), list(roots)
    while todo:
        pid = todo.pop()
        if pid in seen or _stat(pid) is None:
            continue
        seen.add(pid)
        todo.extend(children.get(pid, []))
    return seen


def watch(driver: int, roots: set[int]) -> None:
    """Follow the session's process tree while ``driver`` lives; then kill what is left."""
    me = os.getpid()
    known: dict[int, int] = {}  # pid -> start time, so a reused pid is never killed
    while True:
        alive = _stat(driver) is not None
        for pid in _tree(roots) - {me, driver}:
            info = _stat(pid)
            if info is not None:
                known.setdefault(pid, info[1])
        known = {p: t for p, t in known.items() if (_stat(p) or (0, -1))[1] == t}
        if not alive:
            break
        if not known:
            return  # the session ended normally
        time.sleep(POLL_S)
    for _ in range(3):  # processes forked while we were killing
        for pid, started in list(known.items()):
            info = _stat(pid)
            if info is not None and info[1] == started:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
        for pid in _tree(set(known)) - set(known) - {me}:
            info = _stat(pid)
            if info is not None:
                known[pid] = info[1]
        time.sleep(POLL_S)


def session_roots(ray: Any) -> tuple[str, set[int]]:
    """The embedded session's name and the pids of the processes Ray started for it."""
    node = ray._private.worker._global_node  # noqa: SLF001 - Ray keeps its process table here
    pids = {info.process.pid for infos in node.all_processes.values() for info in infos
            if getattr(info, "process", None) is not None}
    return str(node.session_name), pids


def guard_session(ray: Any) -> None:
    """Start the watchdog for this process's embedded Ray session (once per session; Linux)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        session, roots = session_roots(ray)
    except AttributeError:  # a Ray without a local node (a client connection)
        return
    if session in _guarded or not roots:
        return
    _guarded.add(session)
    subprocess.Popen(  # noqa: S603 - our own module, our own interpreter
        [sys.executable, "-m", "neurocomm.platform.watchdog", str(os.getpid()), *map(str, sorted(roots))],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,  # a Ctrl-C meant for the driver does not stop it
    )


if __name__ == "__main__":
    watch(int(sys.argv[1]), {int(p) for p in sys.argv[2:]})
