"""Timing and memory probes around ``neurocomm.platform.runner.run``.

The runner is driven exactly as a user drives it; the only addition is a thin wrapper around
the backend it builds (``runner.make_backend`` is swapped for the duration of one run) that
notes when each round's work is done, how long reading the agents' state for the checkpoints
takes, the CPU time of every process involved, and the actors' memory just before they are shut
down. Nothing in the round loop changes.

Timing conventions (also in docs/performance.md):

* ``wall_s``: ``time.perf_counter`` around ``run(cfg)``: run directory, actor start-up, the
  checkpoints at round 0 and at the end (always written), every round, shut-down.
* ``setup_s``: from the start of ``run(cfg)`` to the first round's submission (run directory,
  actors started, round-0 checkpoint).
* ``train_s``: from the first round's submission to the last round's report; no start-up and
  no checkpoint (``checkpoint_every`` is 0, so none is written in between).
* ``games_per_s`` and ``rounds_per_s``: steady state, rounds 2..R: (R - 1) rounds over the time
  from the end of the first round's work to the end of the last one's (the first round, which
  carries one-off warm-up, is left out). A round's work ends when ``submit_round`` returns on
  the local backend (it plays the round right there) and when its reports are back on Ray.
* ``cores_busy``: CPU seconds of the driver, the actors and Ray's own processes over that same
  window, per second; ``games_per_cpu_s``: games per CPU second.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from neurocomm.platform import runner as nc_runner
from neurocomm.platform.config import build_config

MB = 2**20


# ---------------------------------------------------------------------- memory from /proc


def proc_status(pid: int | str = "self") -> dict[str, float]:
    """VmRSS and VmHWM (peak RSS) of a process in MB; {} when it is gone."""
    out: dict[str, float] = {}
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    out[key] = int(value.split()[0]) / 1024
    except OSError:
        return {}
    return out


def proc_pss_mb(pid: int | str = "self") -> float:
    """Proportional set size in MB: shared pages (libtorch, ...) split among their users."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return math.nan


_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of ``pids`` so far (processes that are gone count 0)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
                fields = fh.read().rpartition(")")[2].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / _TICK


def reset_peak_rss() -> bool:
    """Restart this process's VmHWM from its current RSS (Linux: ``5 > /proc/self/clear_refs``)."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def memory_of(pids: list[int]) -> dict[str, float]:
    """Sums over ``pids``: RSS, peak RSS and PSS in MB."""
    rss = hwm = pss = 0.0
    for pid in pids:
        st = proc_status(pid)
        rss += st.get("VmRSS", 0.0)
        hwm += st.get("VmHWM", 0.0)
        pss += proc_pss_mb(pid)
    return {"rss_mb": rss, "hwm_mb": hwm, "pss_mb": pss, "processes": len(pids)}


# ---------------------------------------------------------------------- the backend wrapper


@dataclass
class Probe:
    """What one run's backend saw: per-round report times, state reads, actor memory."""

    first_submit: float | None = None
    done: list[float] = field(default_factory=list)  # when each round's work was finished
    collected: list[float] = field(default_factory=list)  # when the driver had each report
    games: list[float] = field(default_factory=list)
    state_s: list[float] = field(default_factory=list)
    actor_memory: dict[str, float] = field(default_factory=dict)
    pids: list[int] = field(default_factory=list)  # driver, actors, Ray's own processes
    cpu: list[float] = field(default_factory=list)  # their CPU seconds at each report


class TimedBackend:
    """Forwards everything to the real backend, noting times (and actor memory at close)."""

    def __init__(self, inner: Any, probe: Probe, on_report: Callable[[int, Any], None] | None) -> None:
        self._inner, self._probe, self._on_report = inner, probe, on_report
        self.name = inner.name

    def submit_round(self, round_: int, edges: list[Any]) -> Any:
        if self._probe.first_submit is None:
            pids = [os.getpid()]
            if self._inner.name == "ray":
                pids += [int(p["pid"]) for p in self._inner.placement()] + ray_system_pids()
            self._probe.pids = pids
            self._probe.first_submit = time.perf_counter()
        handle = self._inner.submit_round(round_, edges)
        if self._inner.name == "local":  # the local backend plays the round inside submit
            self._done()
        return handle

    def collect(self, pending: Any) -> Any:
        report = self._inner.collect(pending)
        if self._inner.name != "local":  # Ray: the round is done when its reports are back
            self._done()
        self._probe.collected.append(time.perf_counter())
        self._probe.games.append(sum(float(s.games) for s in report.edge_stats.values()))
        if self._on_report is not None:
            self._on_report(len(self._probe.collected) - 1, report)
        return report

    def _done(self) -> None:
        self._probe.done.append(time.perf_counter())
        self._probe.cpu.append(cpu_seconds(self._probe.pids))

    def get_state(self) -> Any:
        start = time.perf_counter()
        state = self._inner.get_state()
        self._probe.state_s.append(time.perf_counter() - start)
        return state

    def close(self) -> None:
        if self._inner.name == "ray" and getattr(self._inner, "actors", None):
            pids = [int(p["pid"]) for p in self._inner.placement()]
            self._probe.actor_memory = memory_of(pids)
        self._inner.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


@contextlib.contextmanager
def probed(on_report: Callable[[int, Any], None] | None = None,
           on_start: Callable[[Any], None] | None = None) -> Iterator[Probe]:
    """While inside, every backend the runner builds is wrapped by :class:`TimedBackend`
    (``on_start`` gets the real backend once it is built, before the first round)."""
    probe = Probe()
    original = nc_runner.make_backend

    def make(cfg: Any, n_agents: int) -> TimedBackend:
        backend = original(cfg, n_agents)
        if on_start is not None:
            on_start(backend)
        return TimedBackend(backend, probe, on_report)

    nc_runner.make_backend = make
    try:
        yield probe
    finally:
        nc_runner.make_backend = original


# ---------------------------------------------------------------------- scratch space

_SCRATCH: list[str] = []


def scratch_dir() -> str:
    """A fresh folder for one run's directory, under one root per process (see clean_scratch)."""
    if not _SCRATCH:
        _SCRATCH.append(tempfile.mkdtemp(prefix="ncbench-"))
    return tempfile.mkdtemp(dir=_SCRATCH[0])


def clean_scratch() -> None:
    """Delete every run directory made through :func:`scratch_dir` (checkpoints of 512 agents
    are hundreds of MB)."""
    import shutil

    while _SCRATCH:
        shutil.rmtree(_SCRATCH.pop(), ignore_errors=True)


# ---------------------------------------------------------------------- configs


QUICKSTART_AGENT = {
    "model": "neuroai-rnn", "lr": 0.003,
    "params": {"hidden_size": 64, "embed_size": 32, "cell": "gru", "perception_layers": [64]},
}


def referential_config(
    *, n: int = 2, graph: str = "cycle_graph", graph_params: dict[str, Any] | None = None,
    rounds: int = 50, batch_size: int = 128, backend: str = "local", agents_per_actor: int = 1,
    directed_pair: bool = False, log_dir: str | None = None, **logging: Any,
) -> dict[str, Any]:
    """The quickstart game and agents on ``graph`` with ``n`` nodes, timing-friendly logging
    (no evaluation, no message log, no checkpoint but the two the runner always writes)."""
    if directed_pair:  # one speaker, one listener: a single directed edge 0 → 1
        log_dir = log_dir or scratch_dir()
        edges = os.path.join(log_dir, "pair.edgelist")
        with open(edges, "w", encoding="ascii") as fh:
            fh.write("0 1\n")
        topology: dict[str, Any] = {"generator": None, "file": edges, "directed": True}
    else:
        topology = {"generator": graph, "params": {"n": n, **(graph_params or {})}}
    return {
        "name": "bench", "seed": 0, "topology": topology,
        "population": {"vocab_size": 10, "max_len": 3, "agent": QUICKSTART_AGENT},
        "scenario": {"name": "referential", "params": {"n_attributes": 3, "n_values": 4, "n_distractors": 3}},
        "training": {"rule": "gumbel", "rounds": rounds, "batch_size": batch_size},
        "runtime": {"backend": backend, "agents_per_actor": agents_per_actor},
        "logging": {"dir": log_dir or scratch_dir(), "progress": False,
                    "eval_every": 0, "messages_every": 0, "checkpoint_every": 0, **logging},
    }


# ---------------------------------------------------------------------- one timed run


def timed_run(data: dict[str, Any], on_report: Callable[[int, Any], None] | None = None) -> dict[str, Any]:
    """Run ``data`` with the real runner; → timings, games, memory (see the module docstring)."""
    cfg = build_config(data)
    reset_peak_rss()
    before = proc_status().get("VmRSS", math.nan)
    with probed(on_report) as probe:
        start = time.perf_counter()
        result = nc_runner.run(cfg)
        wall = time.perf_counter() - start
    driver = proc_status()
    rounds = len(probe.collected)
    games_per_round = probe.games[-1] if probe.games else 0.0
    steady_s = probe.done[-1] - probe.done[0] if rounds > 1 else math.nan
    steady_games = sum(probe.games[1:])
    out: dict[str, Any] = {
        "backend": cfg.runtime.backend,
        "agents_per_actor": cfg.runtime.agents_per_actor if cfg.runtime.backend == "ray" else None,
        "batch_size": cfg.training.batch_size,
        "rounds": rounds,
        "games_per_round": games_per_round,
        "wall_s": wall,
        "setup_s": probe.first_submit - start if probe.first_submit else math.nan,
        "train_s": probe.collected[-1] - probe.first_submit if rounds else math.nan,
        "checkpoint_state_s": sum(probe.state_s),
        "games_per_s": steady_games / steady_s if rounds > 1 else math.nan,
        "rounds_per_s": (rounds - 1) / steady_s if rounds > 1 else math.nan,
        "end_to_end_games_per_s": sum(probe.games) / wall,
        # CPU seconds (driver + actors + Ray's processes) per second of the steady state: cores busy
        "cores_busy": (probe.cpu[-1] - probe.cpu[0]) / steady_s if rounds > 1 else math.nan,
        "games_per_cpu_s": steady_games / max(probe.cpu[-1] - probe.cpu[0], 1e-9) if rounds > 1 else math.nan,
        "driver_rss_mb": driver.get("VmRSS", math.nan),
        "driver_peak_rss_mb": driver.get("VmHWM", math.nan),
        "driver_growth_mb": driver.get("VmHWM", math.nan) - before,  # peak over what it held before
        "run_dir": str(result.run_dir),
        "status": result.status,
    }
    if probe.actor_memory:
        out["actors"] = probe.actor_memory["processes"]
        out["actors_rss_mb"] = probe.actor_memory["rss_mb"]
        out["actors_peak_rss_mb"] = probe.actor_memory["hwm_mb"]
        out["actors_pss_mb"] = probe.actor_memory["pss_mb"]
    out["_probe"] = probe
    return out


def state_bytes_per_agent(run_dir: str) -> dict[str, float]:
    """Mean bytes of parameters and of optimiser state per agent, from the final checkpoint."""
    import torch

    from neurocomm.platform.rundir import RunDir

    agents = RunDir(Path(run_dir)).load_checkpoint()["agents"]

    def tensor_bytes(obj: Any) -> int:
        if torch.is_tensor(obj):
            return obj.numel() * obj.element_size()
        if isinstance(obj, dict):
            return sum(tensor_bytes(v) for v in obj.values())
        if isinstance(obj, list | tuple):
            return sum(tensor_bytes(v) for v in obj)
        return 0

    params = [tensor_bytes(a["model"]) for a in agents.values()]
    optim = [tensor_bytes(a["optimizer"]) for a in agents.values()]
    return {"param_bytes": sum(params) / len(params), "optimizer_bytes": sum(optim) / len(optim)}


def ray_system_pids() -> list[int]:
    """This session's Ray system processes (raylet, GCS, ...), when Ray exposes them; else []."""
    try:
        import ray

        node = ray._private.worker._global_node  # noqa: SLF001 - read-only look at the pids
        return [int(info.process.pid) for infos in node.all_processes.values() for info in infos]
    except Exception:  # noqa: BLE001 - a private API: leave the figure out if it moved
        return []


def ray_system_memory() -> dict[str, float]:
    pids = ray_system_pids()
    return memory_of(pids) if pids else {}
