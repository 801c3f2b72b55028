"""Run a config: build the topology and the population, play the rounds, write the logs."""

from __future__ import annotations

import math
import signal
import sys
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from neurocomm.platform import seeding
from neurocomm.platform.backends import make_backend
from neurocomm.platform.config import RunConfig
from neurocomm.platform.errors import ConfigError
from neurocomm.platform.rundir import MESSAGES_SCHEMA, METRICS_SCHEMA, ChunkedTable, RunDir
from neurocomm.platform.shard import Edge, ShardReport
from neurocomm.platform.topology import Topology, build_topology


def prepare(cfg: RunConfig) -> Topology:
    """Every check that needs the built graph; raises ConfigError before anything is written."""
    topology = build_topology(cfg.topology, cfg.seed)
    n = topology.n
    if cfg.population.size is not None and cfg.population.size != n:
        raise ConfigError(
            f"population.size is {cfg.population.size} but the graph has {n} nodes; make them agree",
            path="population.size",
        )
    for i, group in enumerate(cfg.population.groups):
        bad = [v for v in group.nodes if not 0 <= v < n]
        if bad:
            raise ConfigError(f"nodes {bad} are outside 0..{n - 1}", path=f"population.groups[{i}].nodes")
    edges, _ = topology.talk_edges(0)
    if cfg.training.edges_per_round is not None and cfg.training.edges_per_round > len(edges):
        raise ConfigError(
            f"{cfg.training.edges_per_round} is more than the graph's {len(edges)} directed edges",
            path="training.edges_per_round",
        )
    return topology


def round_edges(cfg: RunConfig, topology: Topology, round_: int) -> list[Edge]:
    """The directed edges that play at ``round_``: all, or a weighted sample without replacement."""
    edges, weights = topology.talk_edges(round_)
    k = cfg.training.edges_per_round
    if k is None or k >= len(edges):
        return edges
    rng = seeding.rng(cfg.seed, seeding.SCHEDULE, round_)
    picked = rng.choice(len(edges), size=k, replace=False, p=weights / weights.sum())
    return sorted(edges[i] for i in picked)


def metric_rows(round_: int, report: ShardReport) -> list[dict[str, Any]]:
    rows = []
    for (s, l), v in sorted(report.edge_stats.items()):
        rows.append(
            {
                "round": round_, "speaker": s, "listener": l, "games": int(v.get("games", 0)),
                "success": v.get("success", math.nan),
                "listener_loss": v.get("listener_loss", math.nan),
                "speaker_loss": v.get("speaker_loss", math.nan),
                "entropy": v.get("entropy", math.nan),
                "msg_length": v.get("msg_length", math.nan),
                "eval_success": v.get("eval_success", math.nan),
            }
        )
    return rows


class Progress:
    """One line on a terminal: round, rounds/s, mean success."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total, self.start = total, time.monotonic()
        self.enabled = enabled and sys.stderr.isatty()
        self.last = 0.0

    def update(self, done: int, success: float) -> None:
        now = time.monotonic()
        if not self.enabled or (now - self.last < 0.2 and done < self.total):
            return
        self.last = now
        rate = done / max(now - self.start, 1e-9)
        width = 30
        fill = int(width * done / self.total)
        sys.stderr.write(
            f"\r[{'#' * fill}{'.' * (width - fill)}] round {done}/{self.total} "
            f"{rate:.1f} rounds/s success {success:.3f}"
        )
        sys.stderr.flush()
        if done >= self.total:
            sys.stderr.write("\n")


@dataclass
class RunResult:
    run_dir: Path
    rounds: int
    wall_time: float
    final_success: dict[int, float]
    status: str

    @property
    def mean_success(self) -> float:
        return float(np.mean(list(self.final_success.values()))) if self.final_success else math.nan


class _StopFlag:
    """Ctrl-C asks the run to stop after the current round (a second Ctrl-C interrupts)."""

    def __init__(self) -> None:
        self.stop = False
        self._previous: Any = None

    def __enter__(self) -> _StopFlag:
        try:
            self._previous = signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not the main thread
            self._previous = None
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.stop:
            raise KeyboardInterrupt
        self.stop = True
        sys.stderr.write("\nstopping after this round (Ctrl-C again to abort)\n")

    def __exit__(self, *exc: Any) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def checkpoint_payload(cfg: RunConfig, rounds_done: int, agents: dict[int, Any], parts: tuple[int, int]) -> dict[str, Any]:
    return {
        "rounds_done": rounds_done,
        "agents": agents,
        "config_hash": cfg.digest(),
        "log_parts": {"metrics": parts[0], "messages": parts[1]},
    }


def run(cfg: RunConfig, *, topology: Topology | None = None, resume: RunDir | None = None,
        echo: Any = None) -> RunResult:
    """Play ``cfg`` to the end (or to Ctrl-C); everything lands in a new run directory."""
    topology = topology or prepare(cfg)
    say = echo or (lambda msg: None)
    if resume is None:
        run_dir = RunDir.create(cfg)
        topology.save(run_dir.path / "topology.json")
        start_round, parts = 0, (0, 0)
        state = None
    else:
        run_dir = resume
        ckpt = run_dir.load_checkpoint()
        start_round = int(ckpt["rounds_done"])
        parts = (int(ckpt["log_parts"]["metrics"]), int(ckpt["log_parts"]["messages"]))
        state = ckpt["agents"]
        _drop_parts_after(run_dir, parts)
    metrics = ChunkedTable(run_dir.metrics_dir, METRICS_SCHEMA, parts[0])
    messages = ChunkedTable(run_dir.messages_dir, MESSAGES_SCHEMA, parts[1])
    total = cfg.training.rounds
    say(f"run directory: {run_dir.path}")
    t0 = time.monotonic()
    backend = make_backend(cfg, topology.n)
    if state is not None:
        backend.set_state(state)
    run_dir.event("started" if resume is None else "resumed", backend=backend.name,
                  start_round=start_round, n_agents=topology.n)
    for place in backend.placement():
        run_dir.event("placement", **place)
    run_dir.update_status(status="running", backend=backend.name, n_agents=topology.n)
    last_success: dict[int, float] = {}
    status = "finished"
    progress = Progress(total, cfg.logging.progress)
    every_ckpt = cfg.logging.checkpoint_every
    chunk = cfg.logging.chunk_rounds
    done = start_round
    def needs_state(rounds_done: int) -> bool:
        return bool(every_ckpt and rounds_done % every_ckpt == 0) or rounds_done == total

    try:
        with _StopFlag() as flag:
            pending: deque[tuple[int, Any]] = deque()
            r = start_round
            while True:
                # Keep up to two rounds in flight, but never run past a round whose end must
                # be checkpointed: the agents' state is read between rounds.
                while (r < total and not flag.stop and len(pending) < 2
                       and not (pending and needs_state(pending[-1][0] + 1))):
                    pending.append((r, backend.submit_round(r, round_edges(cfg, topology, r))))
                    r += 1
                if not pending:
                    break
                round_, handle = pending.popleft()
                report = backend.collect(handle)
                rows = metric_rows(round_, report)
                metrics.extend(rows)
                messages.extend(report.messages)
                done = round_ + 1
                for row in rows:
                    if not math.isnan(row["success"]):
                        last_success[row["listener"]] = row["success"]
                progress.update(done, float(np.nanmean([x["success"] for x in rows])) if rows else math.nan)
                if done % chunk == 0 or done == total:
                    metrics.flush()
                    messages.flush()
                    run_dir.update_status(rounds_done=done)
                if needs_state(done) or flag.stop and not pending:
                    _checkpoint(cfg, run_dir, backend, done, metrics, messages)
            if done < total:
                status = "interrupted"
    except BaseException as err:
        metrics.flush()
        messages.flush()
        run_dir.update_status(status="crashed", rounds_done=done)
        run_dir.event("crashed", error=repr(err))
        backend.close()
        raise
    wall = time.monotonic() - t0
    backend.close()
    final = _final_success(run_dir, done) or last_success
    run_dir.update_status(status=status, rounds_done=done, wall_time=wall, finished=time.time())
    run_dir.event(status, rounds_done=done, wall_time=round(wall, 3))
    return RunResult(run_dir.path, done, wall, final, status)


def _checkpoint(cfg: RunConfig, run_dir: RunDir, backend: Any, done: int, metrics: ChunkedTable,
                messages: ChunkedTable) -> None:
    metrics.flush()
    messages.flush()
    state = backend.get_state()
    run_dir.save_checkpoint(done, checkpoint_payload(cfg, done, state, (metrics.part, messages.part)))
    run_dir.update_status(rounds_done=done)
    run_dir.event("checkpoint", rounds_done=done)


def _drop_parts_after(run_dir: RunDir, parts: tuple[int, int]) -> None:
    """Remove log chunks written after the checkpoint we resume from (they will be replayed)."""
    for folder, keep in ((run_dir.metrics_dir, parts[0]), (run_dir.messages_dir, parts[1])):
        for p in folder.glob("part-*.parquet"):
            if int(p.stem.split("-")[1]) >= keep:
                p.unlink()


def _final_success(run_dir: RunDir, done: int) -> dict[int, float]:
    """Success per agent as listener: greedy evaluation at the last evaluated round, or else
    the mean training success over the last 10% of rounds."""
    import pandas as pd

    if not any(run_dir.metrics_dir.glob("part-*.parquet")):
        return {}
    df = pd.read_parquet(run_dir.metrics_dir)
    evaluated = df.dropna(subset=["eval_success"])
    if len(evaluated):
        last = evaluated[evaluated["round"] == evaluated["round"].max()]
        return {int(k): float(v) for k, v in last.groupby("listener")["eval_success"].mean().items()}
    tail = df[df["round"] >= done - max(1, done // 10)]
    return {int(k): float(v) for k, v in tail.groupby("listener")["success"].mean().items()}
