"""Deterministic fault injection for tests and drills: ``NEUROCOMM_FAULT``.

The variable holds comma-separated faults, each fired at most once per process:

``driver:K``
    the driver kills itself with SIGKILL just before it submits round K (rounds 0..K-1 have
    been collected; what was not yet flushed is lost, as in a real crash).
``interrupt:K``
    the driver sends itself SIGINT just before round K: the same path as a Ctrl-C.
``shard:K`` or ``shard:K:S``
    shard actor S (default 0) is killed with SIGKILL just before round K, once every earlier
    round has been collected (Ray backend; the actor must run on this machine).
``enospc:K``
    the K-th file write into a run directory (counted from 1 in this process) fails with
    ``OSError(ENOSPC)``, as on a full disk.

Tests use it instead of racing a poller against the run, so the fault lands at a known round.
In-process callers (tests of the Python API) can also hang their own fault on a round with
:func:`at_round`, e.g. removing a node of a test cluster.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

ENV = "NEUROCOMM_FAULT"
KINDS = ("driver", "interrupt", "shard", "enospc")


@dataclass(frozen=True)
class Fault:
    kind: str
    at: int
    shard: int = 0


def parse(text: str) -> list[Fault]:
    """The faults named by ``text``; ValueError with a one-line reason when malformed."""
    out = []
    for item in filter(None, (s.strip() for s in text.split(","))):
        kind, _, rest = item.partition(":")
        fields = rest.split(":") if rest else []
        if kind not in KINDS or not 1 <= len(fields) <= (2 if kind == "shard" else 1):
            raise ValueError(f"{ENV}: cannot read {item!r}; allowed: driver:K, interrupt:K, "
                             "shard:K[:S], enospc:K (K, S integers >= 0)")
        try:
            numbers = [int(f) for f in fields]
        except ValueError:
            raise ValueError(f"{ENV}: {item!r}: K and S must be integers") from None
        if min(numbers) < 0:
            raise ValueError(f"{ENV}: {item!r}: K and S must be >= 0")
        out.append(Fault(kind, numbers[0], numbers[1] if len(numbers) > 1 else 0))
    return out


_fired: set[Fault] = set()
_writes = 0
_callbacks: dict[int, list[Callable[[Any], None]]] = {}


def at_round(round_: int, fn: Callable[[Any], None]) -> None:
    """Call ``fn(backend)`` once, in this process, just before round ``round_`` is submitted
    (every earlier round collected)."""
    _callbacks.setdefault(round_, []).append(fn)


def reset() -> None:
    """Forget which faults fired and how many writes were counted (for tests in one process)."""
    global _writes
    _fired.clear()
    _callbacks.clear()
    _writes = 0


def _active(kind: str) -> list[Fault]:
    text = os.environ.get(ENV, "")
    if not text:
        return []
    return [f for f in parse(text) if f.kind == kind and f not in _fired]


def check() -> None:
    """Raise ValueError (one line) when ``NEUROCOMM_FAULT`` is set but malformed."""
    parse(os.environ.get(ENV, ""))


def wants_quiet_round(round_: int) -> bool:
    """True when a driver or shard fault fires before ``round_``: the runner first collects the
    rounds in flight, so the fault lands at exactly that round."""
    return round_ in _callbacks or any(
        f.at == round_ for kind in ("driver", "interrupt", "shard") for f in _active(kind))


def before_round(round_: int, backend: Any) -> None:
    """Fire the faults due at ``round_`` (called with no round in flight)."""
    for fn in _callbacks.pop(round_, []):
        fn(backend)
    for fault in _active("interrupt"):
        if fault.at == round_:
            _fired.add(fault)
            os.kill(os.getpid(), signal.SIGINT)
    for fault in _active("shard"):
        if fault.at == round_:
            _fired.add(fault)
            _kill_shard(backend, fault.shard)
    for fault in _active("driver"):
        if fault.at == round_:
            os.kill(os.getpid(), signal.SIGKILL)


def _kill_shard(backend: Any, index: int) -> None:
    places = backend.placement()
    if backend.name != "ray" or not 0 <= index < len(places):
        raise RuntimeError(f"{ENV}: shard:{index} needs the ray backend and a shard {index}")
    place = places[index]
    if place.get("host") != socket.gethostname():
        raise RuntimeError(f"{ENV}: shard {index} runs on {place.get('host')}, not on this machine")
    pid = int(place["pid"])
    os.kill(pid, signal.SIGKILL)
    # Wait until the process is gone, so the next round certainly meets a dead actor.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.01)


def before_write(path: os.PathLike[str] | str) -> None:
    """Count a file write into a run directory; raise ENOSPC at the one ``enospc:K`` names."""
    global _writes
    faults = _active("enospc")
    if not faults:
        return
    _writes += 1
    for fault in faults:
        if fault.at == _writes:
            _fired.add(fault)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
