"""Run a config: build the topology and the population, play the rounds, write the logs."""

from __future__ import annotations

import contextlib
import math
import shutil
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

from neurocomm.platform import faults, partial_reset, seeding
from neurocomm.platform.backends import ShardFailure, make_backend
from neurocomm.platform.building import build_agent, build_scenario
from neurocomm.platform.config import RunConfig
from neurocomm.platform.errors import ConfigError, RunDirError
from neurocomm.platform.estimate import check_graph, check_population
from neurocomm.platform.games import Edge
from neurocomm.platform.interfaces import Backend, ChannelSpec
from neurocomm.platform.metrics import MetricsRow
from neurocomm.platform.resume import (
    check_config,
    drop_parts_after,
    newest_intact,
    run_hashes,
    set_aside,
    stop_disk_full,
)
from neurocomm.platform.run_control import Progress, RoundCallback, StopAt, StopFlag
from neurocomm.platform.run_result import RunResult, final_listener_success
from neurocomm.platform.rundir import (
    MESSAGES_SCHEMA,
    METRICS_SCHEMA,
    ChunkedTable,
    RunDir,
    is_disk_full,
)
from neurocomm.platform.runlock import RunLock
from neurocomm.platform.shard import ShardReport
from neurocomm.platform.sinks import Trackers
from neurocomm.platform.standalone import is_standalone, run_standalone
from neurocomm.platform.topology import Topology, build_topology


def prepare(cfg: RunConfig) -> Topology:
    """Every check that needs the built graph; raises ConfigError before anything is written."""
    if is_standalone(cfg):
        raise ConfigError(f"{cfg.scenario.name} simulates its own population, with no agents to "
                          "place on a graph; play it with `neurocomm run` or neurocomm.run",
                          path="scenario.name")
    if cfg.topology.file is None:
        # sizes first: a population that cannot fit is refused before its graph is built
        size = check_graph(cfg.topology.generator or "", dict(cfg.topology.params))
        if size.nodes >= 1:
            check_population(cfg, int(size.nodes), int(2 * size.edges / size.nodes))
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
    if turnover.modules:
        _check_resettable(cfg, n)
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
    degrees = dict(topology.graph.degree())
    check_population(cfg, n, max(degrees.values(), default=0))  # before any agent is built
    return topology


def _check_resettable(cfg: RunConfig, n: int) -> None:
    """Every agent's model has the modules a partial turnover resets (a turnover on a Ray actor
    is not waited for, so an error there would pass unseen)."""
    scenario = build_scenario(cfg)
    channel = ChannelSpec(cfg.population.vocab_size, cfg.population.max_len)
    specs = {(s.model, repr(s.params)): i for i, s in ((i, cfg.population.spec_for(i)) for i in range(n))}
    for node in sorted(specs.values()):
        model = build_agent(cfg, node, scenario, channel).model
        try:
            partial_reset.module_prefixes(model, cfg.population.turnover.modules)
        except ValueError as err:
            raise ConfigError(str(err), path="population.turnover.modules") from None


def round_edges(cfg: RunConfig, topology: Topology, round_: int) -> list[Edge]:
    """The directed edges that play at ``round_``: all, or a weighted sample without replacement;
    partitioned training adds every agent's self-play edge (i, i)."""
    edges, weights = topology.talk_edges(round_)
    k = cfg.training.edges_per_round
    if k is not None and k < len(edges):
        rng = seeding.rng(cfg.seed, seeding.SCHEDULE, round_)
        picked = rng.choice(len(edges), size=k, replace=False, p=weights / weights.sum())
        edges = sorted(edges[i] for i in picked)
    if cfg.training.partitioned:
        edges = sorted({*edges, *((i, i) for i in range(topology.n))})
    return edges


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


def metric_rows(round_: int, report: ShardReport, elapsed_s: float) -> list[dict[str, Any]]:
    """The round's rows of metrics.parquet, one per directed edge (platform/metrics.py)."""
    return [MetricsRow(round_, speaker, listener, stats, elapsed_s).as_dict()
            for (speaker, listener), stats in sorted(report.edge_stats.items())]


def checkpoint_payload(
    run_id: str, config_hash: str, rounds_done: int, agents: dict[int, Any], parts: tuple[int, int],
    elapsed_s: float,
) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "rounds_done": rounds_done,
        "agents": agents,
        "config_hash": config_hash,
        "log_parts": {"metrics": parts[0], "messages": parts[1]},
        "elapsed_s": elapsed_s,  # the metrics' clock, which a resumed run continues
    }


def run(cfg: RunConfig, *, topology: Topology | None = None, resume: RunDir | None = None,
        echo: Any = None, config_hash: str | None = None, force: bool = False,
        stop: Callable[[int], bool] | None = None, lock: RunLock | None = None,
        on_round: RoundCallback | None = None) -> RunResult:
    """Play ``cfg`` to the end (or to Ctrl-C); everything lands in a new run directory
    (or, with ``resume``, continues the given one from its newest intact checkpoint).

    The run directory is locked for the whole run (platform/runlock.py): resuming a run that
    another process is still writing is refused. ``config_hash`` is the hash of the run's own
    config when ``cfg`` differs from it only in where it runs (``runtime.address``); a config
    that differs from the run's is refused unless ``force``. ``lock``: the run directory's
    lock when the caller took it already (``resume`` takes it before reading the directory).
    ``stop(round)`` is asked before each round; True stops the run there, as Ctrl-C does.
    ``on_round`` sees every round's metric rows (see RoundCallback).

    A standalone scenario (the naming game) simulates its own population instead: its run is
    played by platform/standalone.py, each of its records seen by ``on_round`` as a round.
    """
    if is_standalone(cfg):
        if resume is not None:
            raise RunDirError(f"{resume.path}: a {cfg.scenario.name} run keeps no checkpoints and "
                              "cannot be resumed; run its config again")
        return run_standalone(cfg, echo=echo, stop=stop, on_round=on_round)
    topology = topology or prepare(cfg)
    say = echo or (lambda msg: None)
    t0 = time.monotonic()
    try:
        faults.check()
    except ValueError as err:
        raise RunDirError(str(err)) from None
    if lock is None and resume is not None:
        lock = RunLock(resume.path).acquire()
    try:
        run_hash = check_config(resume, config_hash or cfg.digest(), force) if resume else cfg.digest()
        # Actors first: a population the cluster cannot hold is refused before anything is written.
        backend = make_backend(cfg, topology.n)
        created: RunDir | None = None
        try:
            run_dir = resume or RunDir.create(cfg)
            created = None if resume else run_dir
            lock = lock or RunLock(run_dir.path).acquire()
            if resume is None:
                topology.save(run_dir.path / "topology.json")
            trackers = Trackers.open(cfg, run_dir, resuming=resume is not None)  # logging.sinks
        except BaseException:
            backend.close()
            if created is not None:
                # a run that never played a round (a sink that cannot open, say) leaves no run
                # directory behind that would list as a run still "running"
                if lock is not None:
                    lock.release()
                    lock = None
                shutil.rmtree(created.path, ignore_errors=True)
            raise
        say(f"run directory: {run_dir.path}")
        with trackers:
            return trackers.finish(_run_locked(cfg, topology, run_dir, backend, run_hash, t0,
                                               resuming=resume is not None, stop=stop,
                                               on_round=trackers.chain(on_round)))
    finally:
        if lock is not None:
            lock.release()


def _run_locked(cfg: RunConfig, topology: Topology, run_dir: RunDir, backend: Backend, run_hash: str,
                t0: float, *, resuming: bool, stop: Callable[[int], bool] | None = None,
                on_round: RoundCallback | None = None) -> RunResult:
    loop: _RoundLoop | None = None
    try:
        loop = _RoundLoop(cfg, topology, run_dir, backend, run_hash, t0, on_round)
        if resuming:
            run_dir.remove_temporaries()
            try:
                loop.restore()
            except RunDirError:
                loop = None  # refused before anything changed: the run keeps its status
                raise
            loop.origin -= loop.restored_elapsed  # elapsed_s counts on from the checkpoint
        run_dir.event("resumed" if resuming else "started", backend=backend.name,
                      start_round=loop.done, n_agents=topology.n)
        if not resuming:
            loop.checkpoint(0)  # the initial weights: analysis over time, and recovery
        for place in backend.placement():
            run_dir.event("placement", **place)
        run_dir.update_status(status="running", backend=backend.name, n_agents=topology.n,
                              reason=None)
        status = loop.play(stop)
    except BaseException as err:
        backend.close()
        if is_disk_full(err):
            raise stop_disk_full(run_dir, loop.done if loop else 0, err) from None
        if loop is None:
            raise
        with contextlib.suppress(OSError):
            run_dir.update_status(status="crashed")
            run_dir.event("crashed", error=repr(err))
        raise
    wall = time.monotonic() - t0
    backend.close()
    done = loop.done
    final = final_listener_success(run_dir, done) or loop.last_success
    why = {"reason": loop.stop_at.reason} if loop.stop_at.reached else {}
    run_dir.update_status(status=status, rounds_done=done, wall_time=wall, finished=time.time(), **why)
    run_dir.event(status, rounds_done=done, wall_time=round(wall, 3), **why)
    return RunResult(run_dir.path, done, wall, final, status, reason=loop.stop_at.reason)


class _RoundLoop:
    """Submits rounds (up to two in flight), writes their rows, checkpoints, recovers."""

    def __init__(self, cfg: RunConfig, topology: Topology, run_dir: RunDir, backend: Backend,
                 config_hash: str, origin: float, on_round: RoundCallback | None = None) -> None:
        self.cfg, self.topology, self.run_dir, self.backend = cfg, topology, run_dir, backend
        self.config_hash = config_hash
        self.on_round = on_round
        self.origin = origin  # time.monotonic() at which elapsed_s is 0
        self.restored_elapsed = 0.0
        self.stop_at = StopAt(cfg)
        # The run id recorded at creation, so a renamed run directory still resumes.
        self.run_id = str(run_dir.status().get("run_id", run_dir.path.name))
        self.metrics = ChunkedTable(run_dir.metrics_dir, METRICS_SCHEMA)
        self.messages = ChunkedTable(run_dir.messages_dir, MESSAGES_SCHEMA)
        self.done = 0
        self.last_checkpoint = -1
        self.last_success: dict[int, float] = {}
        self.recoveries = 0
        self.generations = {i: 0 for i in range(topology.n)}

    def needs_state(self, rounds_done: int) -> bool:
        every = self.cfg.logging.checkpoint_every
        return bool(every and rounds_done % every == 0) or rounds_done == self.cfg.training.rounds

    def checkpoint(self, done: int) -> None:
        self.metrics.flush()
        self.messages.flush()
        state = self.backend.get_state()
        parts = (self.metrics.part, self.messages.part)
        payload = checkpoint_payload(self.run_id, self.config_hash, done, state, parts,
                                     time.monotonic() - self.origin)
        self.run_dir.save_checkpoint(done, payload)
        self.run_dir.update_status(rounds_done=done)
        self.run_dir.event("checkpoint", rounds_done=done)
        self.last_checkpoint = done

    def restore(self) -> None:
        """Back to the newest intact checkpoint: agents' state, log chunks, round counter.
        Damaged checkpoints on the way are set aside, each with a ``checkpoint_skipped`` event."""
        status = self.run_dir.status()
        status["config_history"] = sorted(run_hashes(status) | {self.config_hash})
        restart = newest_intact(self.run_dir, status)
        for skipped in restart.skipped:
            set_aside(self.run_dir.checkpoints_dir / skipped["checkpoint"])
            self.run_dir.event("checkpoint_skipped", **skipped, using=restart.path.name)
        ckpt = restart.payload
        self.restored_elapsed = float(ckpt.get("elapsed_s", 0.0))
        parts = restart.parts
        drop_parts_after(self.run_dir, parts)
        self.metrics = ChunkedTable(self.run_dir.metrics_dir, METRICS_SCHEMA, parts[0])
        self.messages = ChunkedTable(self.run_dir.messages_dir, MESSAGES_SCHEMA, parts[1])
        self.backend.set_state(ckpt["agents"])
        self.generations = {int(i): int(a.get("generation", 0)) for i, a in ckpt["agents"].items()}
        self.done = self.last_checkpoint = restart.round
        self.run_dir.update_status(rounds_done=self.done)  # the logs now end there

    def play(self, stop: Callable[[int], bool] | None = None) -> str:
        total = self.cfg.training.rounds
        with StopFlag(stop) as flag, Progress(total, self.cfg.logging.progress) as progress:
            while True:
                try:
                    self._play_until_done_or_stopped(flag, progress)
                    break
                except ShardFailure as failure:
                    self._recover(failure)
        return "finished" if self.done >= total or self.stop_at.reached else "interrupted"

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
        turnover = self.cfg.population.turnover
        self.run_dir.event("turnover", round=round_, agents=leaving,
                           generations=[self.generations[a] for a in leaving],
                           modules=list(turnover.modules) or "all",
                           imitation_steps=turnover.imitation_steps)

    def _play_until_done_or_stopped(self, flag: StopFlag, progress: Progress) -> None:
        cfg, total, chunk = self.cfg, self.cfg.training.rounds, self.cfg.logging.chunk_rounds
        pending: deque[tuple[int, Any]] = deque()
        r = self.done
        while True:
            # Keep up to two rounds in flight, but never run past a round whose end must be
            # checkpointed: the agents' state is read between rounds.
            while (r < total and not flag.check(r) and len(pending) < 2
                   and not (pending and (self.needs_state(pending[-1][0] + 1)
                                         or self.stop_at.watches(pending[-1][0])))
                   and not (pending and faults.wants_quiet_round(r))):
                faults.before_round(r, self.backend)
                if flag.stop:  # an injected interrupt
                    break
                self._turnover(r)
                pending.append((r, self.backend.submit_round(r, round_edges(cfg, self.topology, r))))
                r += 1
            if not pending:
                if flag.stop and self.last_checkpoint != self.done:
                    self.checkpoint(self.done)  # stopped between rounds
                return
            round_, handle = pending.popleft()
            report = self.backend.collect(handle)
            rows = metric_rows(round_, report, time.monotonic() - self.origin)
            self.metrics.extend(rows)
            self.messages.extend([game.as_dict() for game in report.messages])
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
            if self.stop_at.check(round_, rows):
                flag.stop = True  # no round is in flight behind it (see StopAt.watches)
            if self.needs_state(self.done) or (flag.stop and not pending):
                self.checkpoint(self.done)
            if self.on_round is not None and self.on_round(self.done, rows) and not flag.stop:
                flag.stop = True
                if not pending and not self.needs_state(self.done):
                    self.checkpoint(self.done)
