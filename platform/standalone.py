"""Scenarios that are not played by neural agents (``standalone = True``, e.g. the naming game).

The platform hands them the graph as arrays (``None`` for a complete graph, which is never
built: 10,000 agents would be 5e7 edges) and writes the records they emit as metrics parts.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from neurocomm.platform import registry, seeding
from neurocomm.platform.config import RunConfig
from neurocomm.platform.errors import ConfigError
from neurocomm.platform.estimate import check_standalone
from neurocomm.platform.interfaces import is_standalone_scenario
from neurocomm.platform.run_control import RoundCallback
from neurocomm.platform.run_result import RunResult
from neurocomm.platform.rundir import ChunkedTable, RunDir, atomic_write_text
from neurocomm.platform.topology import build_topology

RECORDS_PER_PART = 5000


def is_standalone(cfg: RunConfig) -> bool:
    return is_standalone_scenario(registry.resolve("scenarios", cfg.scenario.name))


def standalone_graph(cfg: RunConfig) -> tuple[int, np.ndarray | None, Any]:
    """(agents, undirected edge array or None for complete, the Topology or None)."""
    topo = cfg.topology
    if topo.generator == "complete_graph" and topo.file is None and not topo.schedule:
        n = topo.params.get("n")
        if not isinstance(n, int) or isinstance(n, bool) or n < 2:
            raise ConfigError("complete_graph needs an integer n >= 2", path="topology.params.n")
        check_standalone(n)
        size = cfg.population.size
        if size is not None and size != n:
            raise ConfigError(f"population.size is {size} but the graph has {n} nodes",
                              path="population.size")
        return n, None, None
    topology = build_topology(topo, cfg.seed)
    edges = np.array(sorted(topology.graph.to_undirected().edges()), dtype=np.int64)
    return topology.n, edges, topology


class _Stopped(Exception):
    """Raised from the record hook when a callback or ``stop`` asks the simulation to end."""


def run_standalone(cfg: RunConfig, echo: Any = None, *, stop: Callable[[int], bool] | None = None,
                   on_round: RoundCallback | None = None) -> RunResult:
    """Simulate the population; each record the scenario emits is one metrics row, and one
    "round" for ``on_round(records so far, [record])`` and ``stop(records so far)``: either
    asking to stop ends the simulation there, with status ``interrupted``."""
    from neurocomm.platform.building import build_scenario

    say = echo or (lambda msg: None)
    if cfg.logging.sinks:
        raise ConfigError(f"the {cfg.scenario.name} scenario is simulated in one go, without rounds for "
                          "a tracker to follow; remove logging.sinks", path="logging.sinks")
    scenario = build_scenario(cfg)
    n, edges, topology = standalone_graph(cfg)
    run_dir = RunDir.create(cfg)
    if topology is not None:
        topology.save(run_dir.path / "topology.json")
    else:
        atomic_write_text(run_dir.path / "topology.json",
                          json.dumps({"generator": "complete_graph", "n": n}))
    say(f"run directory: {run_dir.path}")
    table = ChunkedTable(run_dir.metrics_dir, scenario.record_schema())
    records = 0

    def on_record(row: dict[str, Any]) -> None:
        nonlocal records
        table.extend([row])
        if len(table.rows) >= RECORDS_PER_PART:
            table.flush()
        records += 1
        wants_stop = bool(on_round(records, [row])) if on_round is not None else False
        if wants_stop or (stop is not None and stop(records)):
            raise _Stopped

    run_dir.event("started", backend="local", n_agents=n, scenario=cfg.scenario.name)
    run_dir.update_status(status="running", backend="local", n_agents=n, standalone=True)
    t0 = time.monotonic()
    status, outcome = "finished", {}
    try:
        outcome = scenario.simulate_population(n, edges, seeding.rng(cfg.seed, seeding.GAMES), on_record)
    except _Stopped:
        status = "interrupted"
    except BaseException as err:
        table.flush()
        run_dir.update_status(status="crashed")
        run_dir.event("crashed", error=repr(err))
        raise
    table.flush()
    wall = time.monotonic() - t0
    run_dir.update_status(status=status, rounds_done=records, wall_time=wall, finished=time.time(),
                          outcome=outcome)
    run_dir.event(status, outcome=outcome)
    return RunResult(run_dir.path, records, wall, {}, status, outcome)
