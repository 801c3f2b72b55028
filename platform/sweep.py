"""Sweeps: a grid or random sample over config paths, times seeds, each a normal run.

A sweep file (docs/config.md#sweeps)::

    name: lr-sweep
    base: ../quickstart.yaml        # relative to the sweep file
    set: {training.rounds: 200}     # overrides for every run
    grid: {training.rule: [reinforce, gumbel]}
    random: {samples: 4, space: {population.agent.lr: {loguniform: [0.001, 0.01]}}}
    seeds: [0, 1, 2]
    max_concurrent: 2
    dir: runs/sweeps
    engine: sweep                   # or tune: the same runs as Ray Tune trials

Every point is validated before anything runs. Runs land in ``{dir}/{name}/``, indexed by
``sweep.json``; re-launching skips finished runs and resumes stopped ones from their last
checkpoint. ``summary.csv`` holds one row per run; ``neurocomm compare {dir}/{name}`` reads it.

Points run in threads of one process sharing one Ray session (started once, before the pool).
Ctrl-C stops the sweep: running points checkpoint and stop after their current round, points
not started are left for the next launch, and ``summary.csv`` is written. A point that fails
is recorded (``outcome: failed`` and its ``error``) and never stops the others.

``engine: tune`` hands the same grid (seeds a grid dimension; ``random`` as Tune's random
search) to platform/tune.py: each point a Tune trial in its own placement group, run
directories in ``{dir}/{name}/trials/``, Tune's experiment in ``{dir}/{name}/tune/``; a
re-launch continues Tune's experiment. ``summary.csv`` has the same columns either way.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import signal
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from neurocomm.platform.config import (
    RunConfig,
    apply_overrides,
    build_config,
    check_name,
    load_mapping,
)
from neurocomm.platform.errors import ConfigError, RunDirError
from neurocomm.platform.run_control import SweepProgress
from neurocomm.platform.rundir import RunDir, atomic_write_text
from neurocomm.platform.typed import from_mapping

MAX_RUNS = 10_000  # points x seeds in one sweep
# Fault hook for tests and drills: the sweep sends itself SIGINT (a real Ctrl-C) when any of
# its runs is about to play this round.
FAULT_SIGINT_ENV = "NEUROCOMM_FAULT_SWEEP_SIGINT_AT_ROUND"


@dataclass(frozen=True)
class Distribution:
    """One random dimension: exactly one of the fields."""

    choice: tuple[Any, ...] | None = None
    uniform: tuple[float, ...] | None = None
    loguniform: tuple[float, ...] | None = None
    randint: tuple[int, ...] | None = None

    def check(self) -> None:
        given = [k for k in ("choice", "uniform", "loguniform", "randint") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("choice: give exactly one of choice, uniform, loguniform, randint")
        for k in ("uniform", "loguniform", "randint"):
            v = getattr(self, k)
            if v is not None and (len(v) != 2 or not v[0] < v[1]):
                raise ValueError(f"{k}: expected [low, high] with low < high")
        if self.loguniform is not None and self.loguniform[0] <= 0:
            raise ValueError("loguniform: bounds must be > 0")

    def draw(self, rng: np.random.Generator) -> Any:
        if self.choice is not None:
            return self.choice[int(rng.integers(len(self.choice)))]
        if self.uniform is not None:
            return float(rng.uniform(*self.uniform))
        if self.loguniform is not None:
            lo, hi = self.loguniform
            return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
        assert self.randint is not None
        return int(rng.integers(self.randint[0], self.randint[1] + 1))


@dataclass(frozen=True)
class RandomSearch:
    samples: int
    space: dict[str, Distribution]
    seed: int = 0

    def check(self) -> None:
        if not 1 <= self.samples <= MAX_RUNS:
            raise ValueError(f"samples: must be in 1..{MAX_RUNS}")


@dataclass(frozen=True)
class SweepConfig:
    name: str
    base: str
    set: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    random: RandomSearch | None = None
    seeds: tuple[int, ...] = (0,)
    max_concurrent: int = 1
    dir: str = "runs/sweeps"
    on_existing: Literal["skip", "rerun"] = "skip"
    engine: Literal["sweep", "tune"] = "sweep"

    def check(self) -> None:
        check_name(self.name)
        if not self.seeds:
            raise ValueError("seeds: at least one seed")
        if self.max_concurrent < 1:
            raise ValueError("max_concurrent: must be >= 1")
        for key, values in self.grid.items():
            if not values:
                raise ValueError(f"grid: {key} has no values")
        runs = math.prod(len(v) for v in self.grid.values()) * len(self.seeds)
        runs *= self.random.samples if self.random is not None else 1
        if runs > MAX_RUNS:
            raise ValueError(f"grid: the sweep would make {runs} runs (grid x samples x seeds); "
                             f"at most {MAX_RUNS}")


@dataclass(frozen=True)
class SweepPoint:
    index: int
    overrides: dict[str, Any]
    seed: int
    config: RunConfig

    @property
    def key(self) -> str:
        return f"p{self.index:03d}-seed{self.seed}"


def _overrides(values: dict[str, Any]) -> list[str]:
    return [f"{k}={json.dumps(v)}" for k, v in values.items()]


# Fields the sweep sets for every run itself (from seeds:, name: and dir:).
PER_RUN = ("seed", "name", "logging.dir", "logging.progress")


def _with_cli_overrides(sweep: SweepConfig, base: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """``--set PATH=VALUE`` on the command line: applied to the base config after the sweep's
    own ``set:`` and before the grid. A field the grid or the random space varies, or that the
    sweep sets per run, is refused rather than silently overwritten."""
    varied = set(sweep.grid) | set(sweep.random.space if sweep.random else {})
    for item in overrides:
        key = item.partition("=")[0].strip()
        if key in varied:
            raise ConfigError("is varied by the sweep's grid or random space; drop it from --set or "
                              "from the sweep", path=key, source="--set")
        if key in PER_RUN:
            raise ConfigError("is set by the sweep for each run (from its seeds:, name: and dir:); "
                              "change it in the sweep file", path=key, source="--set")
    changed = apply_overrides(base, overrides)
    try:
        build_config(changed, source="--set")
    except ConfigError:
        try:
            build_config(base)
        except ConfigError:
            return changed  # the base alone is no complete config: each point reports its error
        raise
    return changed


def load_sweep(path: str | Path, overrides: Sequence[str] = ()) -> tuple[SweepConfig, list[SweepPoint]]:
    """The sweep and every run it makes, each config validated (ConfigError names the point).
    ``overrides``: ``--set PATH=VALUE`` for every run (see :func:`_with_cli_overrides`)."""
    source = str(path)
    try:
        sweep = from_mapping(SweepConfig, load_mapping(path))
    except ConfigError as err:
        raise err.at(source=source) from None
    base_path = (Path(path).parent / sweep.base).resolve()
    base = load_mapping(base_path)
    try:
        base = apply_overrides(base, _overrides(dict(sweep.set)))
    except ConfigError as err:
        raise err.at(source=source, prefix="set") from None
    if overrides:
        base = _with_cli_overrides(sweep, base, overrides)
    grid_keys = list(sweep.grid)
    grid_points = [dict(zip(grid_keys, combo)) for combo in itertools.product(*sweep.grid.values())]
    if sweep.random is not None:
        rng = np.random.default_rng(sweep.random.seed)
        space = sweep.random.space
        samples = [{k: d.draw(rng) for k, d in space.items()} for _ in range(sweep.random.samples)]
        grid_points = [{**g, **s} for g in grid_points for s in samples]
    points = []
    for index, values in enumerate(grid_points):
        for seed in sweep.seeds:
            overrides = {**values, "seed": seed, "name": f"{sweep.name}-p{index:03d}",
                         "logging.dir": str(Path(sweep.dir) / sweep.name), "logging.progress": False}
            data = apply_overrides(base, _overrides(overrides))
            try:
                cfg = build_config(data, source=f"{source} (point {index}, seed {seed})")
            except ConfigError as err:
                raise err from None
            if sweep.max_concurrent > 1 and cfg.runtime.agent_resources.num_cpus is None:
                cfg = replace(cfg, runtime=replace(cfg.runtime, cpu_share=1.0 / sweep.max_concurrent))
            points.append(SweepPoint(index, values, seed, cfg))
    return sweep, points


class SweepIndex:
    """``sweep.json``: which run directory belongs to which point (thread-safe updates)."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / "sweep.json"
        self.lock = threading.Lock()
        self.entries: dict[str, dict[str, Any]] = (
            json.loads(self.path.read_text()) if self.path.is_file() else {}
        )

    def get(self, key: str) -> dict[str, Any] | None:
        return self.entries.get(key)

    def put(self, key: str, entry: dict[str, Any]) -> None:
        with self.lock:
            self.entries[key] = entry
            atomic_write_text(self.path, json.dumps(self.entries, indent=2, default=str))


def _existing(entry: dict[str, Any] | None, folder: Path, point: SweepPoint) -> tuple[RunDir | None, str]:
    """What is on disk for ``point``: ``finished``, ``resume`` (a checkpoint to continue from),
    or ``new``. A run the index lost (the sweep was killed before recording it) is found by its
    config hash."""
    candidates = []
    if entry and entry.get("run_dir") and Path(entry["run_dir"]).is_dir() \
            and _same_config(RunDir(Path(entry["run_dir"])), point.config):
        candidates.append(Path(entry["run_dir"]))
    digest = point.config.digest()
    for status_file in sorted(folder.glob("*/run.json")):
        try:
            if json.loads(status_file.read_text()).get("config_hash") == digest:
                candidates.append(status_file.parent)
        except (OSError, ValueError, AttributeError):
            continue
    resumable = None
    for path in candidates:
        run_dir = RunDir(path)
        try:
            status = run_dir.status().get("status", "")
            checkpoints = run_dir.checkpoints()
        except Exception:  # noqa: BLE001 - an unreadable run is not reused
            continue
        if status == "finished":
            return run_dir, "finished"
        if checkpoints and resumable is None:
            resumable = run_dir
    return (resumable, "resume") if resumable is not None else (None, "new")


def _same_config(run_dir: RunDir, cfg: RunConfig) -> bool:
    """Whether the run was made from ``cfg`` (where it ran aside): a point relaunched with
    other values (its sweep file or ``--set`` edited) is a new run, not the old one skipped."""
    try:
        theirs = run_dir.config()
    except (ConfigError, RunDirError, OSError):
        return False

    def where_aside(c: RunConfig) -> str:
        return replace(c, runtime=replace(c.runtime, address=None)).digest()

    return where_aside(theirs) == where_aside(cfg)


class _Interrupt:
    """The sweep's Ctrl-C: the first asks every run to stop after its round, a second one
    interrupts the driver."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self._previous: Any = None
        fault = os.environ.get(FAULT_SIGINT_ENV, "")
        self.fault_round = int(fault) if fault.strip().isdigit() else None
        self._fault_fired = False

    def __enter__(self) -> _Interrupt:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.event.is_set():
            raise KeyboardInterrupt
        self.event.set()

    def __exit__(self, *exc: Any) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)

    def should_stop(self, round_: int) -> bool:
        """Asked by each run before it plays ``round_``."""
        if self.fault_round is not None and round_ >= self.fault_round and not self._fault_fired:
            self._fault_fired = True
            os.kill(os.getpid(), signal.SIGINT)
            self.event.wait(10)  # the handler runs in the main thread
        return self.event.is_set()


def _start_ray(points: list[SweepPoint]) -> None:
    """One Ray session for the whole sweep, started before any thread needs it."""
    ray_points = [p for p in points if p.config.runtime.backend == "ray"]
    if ray_points:
        from neurocomm.platform.raysession import ensure_ray

        rt = ray_points[0].config.runtime
        ensure_ray(rt.address, object_store_mb=rt.object_store_mb)


def run_sweep(path: str | Path, echo: Any = print, overrides: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Run (or continue) every point of the sweep; returns the summary rows (outcomes:
    finished, skipped, failed, interrupted, not run). ``overrides``: ``--set`` for every run."""
    from neurocomm.platform.runner import prepare, run
    from neurocomm.platform.topology import Topology

    sweep, points = load_sweep(path, overrides)
    topologies = {p.key: prepare(p.config) for p in points}  # every graph checked up front
    if sweep.engine == "tune":
        return _run_with_tune(sweep, points, path, echo, overrides)
    folder = Path(sweep.dir) / sweep.name
    folder.mkdir(parents=True, exist_ok=True)
    index = SweepIndex(folder)
    echo(f"sweep {sweep.name}: {len(points)} runs in {folder} ({sweep.max_concurrent} at a time)")
    _start_ray(points)

    def one(point: SweepPoint, interrupt: _Interrupt) -> dict[str, Any]:
        if interrupt.event.is_set():
            return _row(point, None, "not run")
        run_dir, state = _existing(index.get(point.key), folder, point)
        if state == "finished" and sweep.on_existing == "skip":
            echo(f"  {point.key}: already finished, skipped")
            return _row(point, run_dir, "skipped")
        try:
            if state == "resume":
                echo(f"  {point.key}: resuming {run_dir.path.name}")
                result = run(point.config, topology=Topology.load(run_dir.path / "topology.json"),
                             resume=run_dir, stop=interrupt.should_stop)
            else:
                result = run(point.config, topology=topologies[point.key], stop=interrupt.should_stop)
        except Exception as err:  # noqa: BLE001 - one failing point never stops the others
            error = " ".join(f"{type(err).__name__}: {err}".split())[:500]
            entry = {**(index.get(point.key) or {}), "overrides": point.overrides,
                     "seed": point.seed, "status": "failed", "error": error}
            index.put(point.key, entry)
            echo(f"  {point.key}: failed: {error}")
            failed_dir = entry.get("run_dir")
            row = _row(point, RunDir(Path(failed_dir)) if failed_dir else None, "failed")
            return {**row, "error": error}
        index.put(point.key, {"run_dir": str(result.run_dir), "overrides": point.overrides,
                              "seed": point.seed, "status": result.status})
        echo(f"  {point.key}: {result.status}, mean success {result.mean_success:.3f}")
        return _row(point, RunDir(result.run_dir), result.status)

    rows: list[dict[str, Any] | None] = [None] * len(points)
    with (_Interrupt() as interrupt, ThreadPoolExecutor(max_workers=sweep.max_concurrent) as pool,
          SweepProgress(len(points)) as progress):
        futures = {pool.submit(one, p, interrupt): i for i, p in enumerate(points)}
        for future in futures:
            future.add_done_callback(progress.one_done)
        try:
            wait(futures)
        finally:
            # also on a second Ctrl-C: what is known is summarised before the driver exits
            interrupt.event.set()
            for future, i in futures.items():
                if future.done() and not future.cancelled() and future.exception() is None:
                    rows[i] = future.result()
            done = [r if r is not None else _row(points[i], None, "not run")
                    for i, r in enumerate(rows)]
            _write_summary(folder, done)
    return done


def _run_with_tune(sweep: SweepConfig, points: list[SweepPoint], path: str | Path,
                   echo: Any, overrides: Sequence[str] = ()) -> list[dict[str, Any]]:
    """The sweep's runs (``points``, already validated) as Ray Tune trials (platform/tune.py),
    every one played to its end (Tune's FIFO scheduler); ``overrides`` (``--set``) apply to
    every trial, as in a plain sweep."""
    from neurocomm.platform import tune

    tune.require_tune()
    search = tune.SearchConfig(
        name=sweep.name, base=sweep.base, set=dict(sweep.set),
        grid={**sweep.grid, "seed": sweep.seeds},
        space=dict(sweep.random.space) if sweep.random else {},
        search=tune.SearchAlgorithm("random" if sweep.random else "grid",
                                    sweep.random.samples if sweep.random else 1,
                                    sweep.random.seed if sweep.random else 0),
        max_concurrent=sweep.max_concurrent, dir=sweep.dir)
    search.check()
    base = apply_overrides(load_mapping((Path(path).parent / sweep.base).resolve()),
                           _overrides(dict(sweep.set)))
    if overrides:
        base = _with_cli_overrides(sweep, base, overrides)
    results = tune.fit(search, base, address=points[0].config.runtime.address, echo=echo)
    rows: list[dict[str, Any]] = []
    conditions: list[dict[str, Any]] = []
    for result in results:
        values = dict(result.config)
        seed = values.pop("seed")
        if values not in conditions:
            conditions.append(values)
        found = (result.metrics or {}).get("run_dir")
        run_dir = RunDir(Path(found)) if found else None
        error = "" if result.error is None else " ".join(f"{type(result.error).__name__}: "
                                                         f"{result.error}".split())[:500]
        outcome = "failed" if error or run_dir is None else str(run_dir.status().get("status", "failed"))
        name = run_dir.config().name if run_dir else sweep.name
        row = _summary_row(conditions.index(values), seed, name, values, run_dir, outcome)
        echo(f"  {name}: {outcome}" + (f": {error}" if error else ""))
        rows.append({**row, "error": error})
    rows.sort(key=lambda r: (r["point"], r["seed"]))
    _write_summary(Path(sweep.dir) / sweep.name, rows)
    return rows


def _row(point: SweepPoint, run_dir: RunDir | None, outcome: str) -> dict[str, Any]:
    return _summary_row(point.index, point.seed, point.config.name, point.overrides, run_dir, outcome)


def _summary_row(index: int, seed: int, name: str, overrides: dict[str, Any], run_dir: RunDir | None,
                 outcome: str) -> dict[str, Any]:
    status = run_dir.status() if run_dir else {}
    row: dict[str, Any] = {"point": index, "seed": seed, "name": name,
                           "outcome": outcome, "error": "",
                           "run_dir": str(run_dir.path) if run_dir else "",
                           "rounds_done": status.get("rounds_done"),
                           "wall_time": status.get("wall_time")}
    row.update({f"set:{k}": v for k, v in overrides.items()})
    row["final_eval_success"] = _final_eval_success(run_dir) if run_dir else math.nan
    return row


def _final_eval_success(run_dir: RunDir) -> float:
    """The documented headline (docs/analysis.md), as summary.json and compare compute it."""
    import pandas as pd

    from neurocomm.platform.analysis.communication import final_eval_success

    if not any(run_dir.metrics_dir.glob("part-*.parquet")):
        return math.nan
    return final_eval_success(pd.read_parquet(run_dir.metrics_dir))


def _write_summary(folder: Path, rows: list[dict[str, Any]]) -> None:
    import pandas as pd

    table = pd.DataFrame(rows)
    atomic_write_text(folder / "summary.csv", table.to_csv(index=False))
