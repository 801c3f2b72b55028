"""Run a config: build the topology and the population, play the rounds, write the logs."""

from __future__ import annotations

import math
import signal
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from neurocomm.platform import seeding
from neurocomm.platform.backends import ShardFailure, make_backend
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
    turnover = cfg.population.turnover
    bad = [a for a in turnover.agents if not 0 <= a < n]
    if bad:
        raise ConfigError(f"agents {bad} are outside 0..{n - 1}", path="population.turnover.agents")
    for i, noisy in enumerate(cfg.topology.noise.edges):
        if not all(0 <= v < n for v in noisy.edge):
            raise ConfigError(f"edge {list(noisy.edge)} names a node outside 0..{n - 1}",
                              path=f"topology.noise.edges[{i}].edge")
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


def turnover_agents(cfg: RunConfig, n_agents: int, round_: int) -> list[int]:
    """Agents replaced by newcomers just before ``round_`` is played."""
    t = cfg.population.turnover
    chosen: set[int] = set()
    if t.every and round_ > 0 and round_ % t.every == 0 and t.fraction > 0:
        k = max(1, int(round(t.fraction * n_agents)))
        rng = seeding.rng(cfg.seed, seeding.TURNOVER, round_)
        chosen.update(int(a) for a in rng.choice(n_agents, size=min(k, n_agents), replace=False))
    if round_ in t.at_rounds:
        chosen.update(t.agents)
    return sorted(chosen)


def metric_rows(round_: int, report: ShardReport) -> list[dict[str, Any]]:
    rows = []
    for (speaker, listener), v in sorted(report.edge_stats.items()):
        rows.append(
            {
                "round": round_, "speaker": speaker, "listener": listener, "games": int(v.get("games", 0)),
                "success": v.get("success", math.nan),
                "listener_loss": v.get("listener_loss", math.nan),
                "speaker_loss": v.get("speaker_loss", math.nan),
                "entropy": v.get("entropy", math.nan),
                "msg_length": v.get("msg_length", math.nan),
                "eval_success": v.get("eval_success", math.nan),
                "heldout_success": v.get("heldout_success", math.nan),
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


# Called after every round with (rounds done, that round's metric rows, one per directed edge),
# once the rows are logged (buffered for the next Parquet part) and any checkpoint due at that
# round is written; returning True asks the run to stop after this round, as Ctrl-C does (the
# round already in flight is finished; the run ends "interrupted", with a checkpoint). After a
# recovery from lost actors, the rounds since the last checkpoint are played, and seen, again.
RoundCallback = Callable[[int, list[dict[str, Any]]], bool | None]


def checkpoint_payload(
    cfg: RunConfig, rounds_done: int, agents: dict[int, Any], parts: tuple[int, int]
) -> dict[str, Any]:
    return {
        "rounds_done": rounds_done,
        "agents": agents,
        "config_hash": cfg.digest(),
        "log_parts": {"metrics": parts[0], "messages": parts[1]},
    }


def run(cfg: RunConfig, *, topology: Topology | None = None, resume: RunDir | None = None,
        echo: Any = None, on_round: RoundCallback | None = None) -> RunResult:
    """Play ``cfg`` to the end (or to Ctrl-C); everything lands in a new run directory
    (or, with ``resume``, continues the given one from its last checkpoint). ``on_round``
    sees every round's metric rows (see RoundCallback)."""
    topology = topology or prepare(cfg)
    say = echo or (lambda msg: None)
    t0 = time.monotonic()
    # Actors first: a population the cluster cannot hold is refused before anything is written.
    backend = make_backend(cfg, topology.n)
    try:
        run_dir = resume or RunDir.create(cfg)
    except BaseException:
        backend.close()
        raise
    if resume is None:
        topology.save(run_dir.path / "topology.json")
    say(f"run directory: {run_dir.path}")
    try:
        loop = _RoundLoop(cfg, topology, run_dir, backend, on_round)
        if resume is not None:
            loop.restore()
        run_dir.event("started" if resume is None else "resumed", backend=backend.name,
                      start_round=loop.done, n_agents=topology.n)
        if resume is None:
            loop.checkpoint(0)  # the initial weights: analysis over time, and recovery
        for place in backend.placement():
            run_dir.event("placement", **place)
        run_dir.update_status(status="running", backend=backend.name, n_agents=topology.n)
        status = loop.play()
    except BaseException as err:
        run_dir.update_status(status="crashed")
        run_dir.event("crashed", error=repr(err))
        backend.close()
        raise
    wall = time.monotonic() - t0
    backend.close()
    done = loop.done
    final = final_success(run_dir, done) or loop.last_success
    run_dir.update_status(status=status, rounds_done=done, wall_time=wall, finished=time.time())
    run_dir.event(status, rounds_done=done, wall_time=round(wall, 3))
    return RunResult(run_dir.path, done, wall, final, status)


class _RoundLoop:
    """Submits rounds (up to two in flight), writes their rows, checkpoints, recovers."""

    def __init__(self, cfg: RunConfig, topology: Topology, run_dir: RunDir, backend: Any,
                 on_round: RoundCallback | None = None) -> None:
        self.cfg, self.topology, self.run_dir, self.backend = cfg, topology, run_dir, backend
        self.on_round = on_round
        self.metrics = ChunkedTable(run_dir.metrics_dir, METRICS_SCHEMA)
        self.messages = ChunkedTable(run_dir.messages_dir, MESSAGES_SCHEMA)
        self.done = 0
        self.last_success: dict[int, float] = {}
        self.recoveries = 0
        self.generations = {i: 0 for i in range(topology.n)}

    def needs_state(self, rounds_done: int) -> bool:
        every = self.cfg.logging.checkpoint_every
        return bool(every and rounds_done % every == 0) or rounds_done == self.cfg.training.rounds

    def checkpoint(self, done: int) -> None:
        _checkpoint(self.cfg, self.run_dir, self.backend, done, self.metrics, self.messages)

    def restore(self) -> None:
        """Back to the last checkpoint: agents' state, log chunks, round counter."""
        ckpt = self.run_dir.load_checkpoint()
        parts = (int(ckpt["log_parts"]["metrics"]), int(ckpt["log_parts"]["messages"]))
        _drop_parts_after(self.run_dir, parts)
        self.metrics = ChunkedTable(self.run_dir.metrics_dir, METRICS_SCHEMA, parts[0])
        self.messages = ChunkedTable(self.run_dir.messages_dir, MESSAGES_SCHEMA, parts[1])
        self.backend.set_state(ckpt["agents"])
        self.generations = {int(i): int(a.get("generation", 0)) for i, a in ckpt["agents"].items()}
        self.done = int(ckpt["rounds_done"])

    def play(self) -> str:
        total = self.cfg.training.rounds
        progress = Progress(total, self.cfg.logging.progress)
        with _StopFlag() as flag:
            while True:
                try:
                    self._play_until_done_or_stopped(flag, progress)
                    break
                except ShardFailure as failure:
                    self._recover(failure)
        return "finished" if self.done >= total else "interrupted"

    def _recover(self, failure: ShardFailure) -> None:
        """Replace dead shards and restore everyone from the last checkpoint; a failure while
        recovering (another node lost) starts the recovery again, up to max_restarts."""
        while True:
            self.recoveries += 1
            self.run_dir.event("shard_failed", shards=failure.shards, error=repr(failure.cause),
                               recovery=self.recoveries)
            if self.recoveries > self.cfg.runtime.max_restarts:
                raise RuntimeError(
                    f"giving up after {self.cfg.runtime.max_restarts} recoveries "
                    "(runtime.max_restarts)"
                ) from failure
            dead = failure.shards or self.backend.dead_shards()
            try:
                self.backend.replace(dead)
                self.restore()
                for place in self.backend.placement():
                    self.run_dir.event("placement", **place)
            except ShardFailure as again:
                failure = again
                continue
            self.run_dir.event("recovered", shards=dead, from_round=self.done)
            return

    def _turnover(self, round_: int) -> None:
        leaving = turnover_agents(self.cfg, self.topology.n, round_)
        if not leaving:
            return
        for agent_id in leaving:
            self.generations[agent_id] += 1
        self.backend.replace_agents({a: self.generations[a] for a in leaving})
        self.run_dir.event("turnover", round=round_, agents=leaving,
                           generations=[self.generations[a] for a in leaving])

    def _play_until_done_or_stopped(self, flag: _StopFlag, progress: Progress) -> None:
        cfg, total, chunk = self.cfg, self.cfg.training.rounds, self.cfg.logging.chunk_rounds
        pending: deque[tuple[int, Any]] = deque()
        r = self.done
        while True:
            # Keep up to two rounds in flight, but never run past a round whose end must be
            # checkpointed: the agents' state is read between rounds.
            while (r < total and not flag.stop and len(pending) < 2
                   and not (pending and self.needs_state(pending[-1][0] + 1))):
                self._turnover(r)
                pending.append((r, self.backend.submit_round(r, round_edges(cfg, self.topology, r))))
                r += 1
            if not pending:
                return
            round_, handle = pending.popleft()
            report = self.backend.collect(handle)
            rows = metric_rows(round_, report)
            self.metrics.extend(rows)
            self.messages.extend(report.messages)
            self.done = round_ + 1
            for row in rows:
                if not math.isnan(row["success"]):
                    self.last_success[row["listener"]] = row["success"]
            mean = float(np.nanmean([x["success"] for x in rows])) if rows else math.nan
            progress.update(self.done, mean)
            if self.done % chunk == 0 or self.done == total:
                self.metrics.flush()
                self.messages.flush()
                self.run_dir.update_status(rounds_done=self.done)
            if self.needs_state(self.done) or (flag.stop and not pending):
                self.checkpoint(self.done)
            if self.on_round is not None and self.on_round(self.done, rows) and not flag.stop:
                flag.stop = True
                if not pending and not self.needs_state(self.done):
                    self.checkpoint(self.done)


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
        for p in folder.glob(".part-*.tmp"):
            p.unlink()
        for p in folder.glob("part-*.parquet"):
            if int(p.stem.split("-")[1]) >= keep:
                p.unlink()


def final_success(run_dir: RunDir, done: int) -> dict[int, float]:
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
