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

Every point is validated before anything runs. Runs land in ``{dir}/{name}/``, indexed by
``sweep.json``; re-launching skips finished runs and resumes stopped ones from their last
checkpoint. ``summary.csv`` holds one row per run; ``neurocomm compare {dir}/{name}`` reads it.
"""

from __future__ import annotations

import itertools
import json
import math
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from neurocomm.platform.config import RunConfig, apply_overrides, build_config, load_mapping
from neurocomm.platform.errors import ConfigError
from neurocomm.platform.rundir import RunDir, atomic_write_text
from neurocomm.platform.typed import from_mapping


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
        if self.samples < 1:
            raise ValueError("samples: must be >= 1")


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

    def check(self) -> None:
        if not self.seeds:
            raise ValueError("seeds: at least one seed")
        if self.max_concurrent < 1:
            raise ValueError("max_concurrent: must be >= 1")
        for key, values in self.grid.items():
            if not values:
                raise ValueError(f"grid: {key} has no values")


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


def load_sweep(path: str | Path) -> tuple[SweepConfig, list[SweepPoint]]:
    """The sweep and every run it makes, each config validated (ConfigError names the point)."""
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


def _existing(entry: dict[str, Any] | None) -> tuple[RunDir | None, str]:
    if not entry or not Path(entry.get("run_dir", "")).is_dir():
        return None, "new"
    run_dir = RunDir(Path(entry["run_dir"]))
    try:
        status = run_dir.status().get("status", "")
    except Exception:  # noqa: BLE001 - an unreadable run is rerun
        return None, "new"
    if status == "finished":
        return run_dir, "finished"
    return (run_dir, "resume") if run_dir.checkpoints() else (None, "new")


def run_sweep(path: str | Path, echo: Any = print) -> list[dict[str, Any]]:
    """Run (or continue) every point of the sweep; returns the summary rows."""
    from neurocomm.platform.runner import prepare, run
    from neurocomm.platform.topology import Topology

    sweep, points = load_sweep(path)
    topologies = {p.key: prepare(p.config) for p in points}  # every graph checked up front
    folder = Path(sweep.dir) / sweep.name
    folder.mkdir(parents=True, exist_ok=True)
    index = SweepIndex(folder)
    echo(f"sweep {sweep.name}: {len(points)} runs in {folder} ({sweep.max_concurrent} at a time)")

    def one(point: SweepPoint) -> dict[str, Any]:
        run_dir, state = _existing(index.get(point.key))
        if state == "finished" and sweep.on_existing == "skip":
            echo(f"  {point.key}: already finished, skipped")
            return _row(point, run_dir, "skipped")
        if state == "resume":
            echo(f"  {point.key}: resuming {run_dir.path.name}")
            result = run(point.config, topology=Topology.load(run_dir.path / "topology.json"),
                         resume=run_dir)
        else:
            result = run(point.config, topology=topologies[point.key])
        index.put(point.key, {"run_dir": str(result.run_dir), "overrides": point.overrides,
                              "seed": point.seed, "status": result.status})
        echo(f"  {point.key}: {result.status}, mean success {result.mean_success:.3f}")
        return _row(point, RunDir(result.run_dir), result.status)

    with ThreadPoolExecutor(max_workers=sweep.max_concurrent) as pool:
        rows = list(pool.map(one, points))
    _write_summary(folder, rows)
    return rows


def _row(point: SweepPoint, run_dir: RunDir | None, outcome: str) -> dict[str, Any]:
    status = run_dir.status() if run_dir else {}
    row: dict[str, Any] = {"point": point.index, "seed": point.seed, "name": point.config.name,
                           "outcome": outcome, "run_dir": str(run_dir.path) if run_dir else "",
                           "rounds_done": status.get("rounds_done"),
                           "wall_time": status.get("wall_time")}
    row.update({f"set:{k}": v for k, v in point.overrides.items()})
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
