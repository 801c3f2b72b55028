"""Ray Tune searches: grid, random or Optuna search with ASHA or PBT, each trial a normal run.

A search file (docs/tune.md)::

    name: lr-asha
    base: ../quickstart.yaml            # relative to the search file
    set: {training.rounds: 60}          # overrides for every trial
    metric: eval_success                # any metrics.parquet column, mean over edges
    mode: max
    grid: {training.rule: [gumbel, reinforce]}
    space: {population.agent.lr: {loguniform: [0.001, 0.01]}}
    search: {algorithm: random, samples: 4, seed: 0}
    scheduler: {name: asha, grace_period: 20, reduction_factor: 2}
    max_concurrent: 2
    dir: runs/tune

Each trial plays the config through ``runner.run`` and reports the round's metrics to Tune
from the runner's per-round callback, so a scheduler can stop it early (the run then ends
``interrupted`` with a checkpoint). Its run directory lands in ``{dir}/{name}/trials/{trial}/``;
Tune's own experiment (what ``tune.Tuner.restore`` and ``ResultGrid`` read) in
``{dir}/{name}/tune/``. A trial's agents are Ray actors placed in the trial's placement group
(``tune.PlacementGroupFactory``: one bundle for the trial's driver, one per shard actor).
"""

from __future__ import annotations

import json
import queue
import shutil
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from neurocomm.platform.config import RunConfig, apply_overrides, build_config, load_mapping
from neurocomm.platform.errors import ConfigError
from neurocomm.platform.rundir import METRICS_SCHEMA, RunDir, atomic_write_text
from neurocomm.platform.sweep import Distribution
from neurocomm.platform.typed import from_mapping

# Metric columns a trial can be ranked on (every metrics.parquet column that is a measurement).
METRICS = tuple(n for n in METRICS_SCHEMA.names if n not in ("round", "speaker", "listener", "games"))


@dataclass(frozen=True)
class SearchAlgorithm:
    algorithm: Literal["grid", "random", "optuna"] = "random"
    samples: int = 1  # random/optuna: trials drawn (random: per grid point)
    seed: int = 0

    def check(self) -> None:
        if self.samples < 1:
            raise ValueError("samples: must be >= 1")


@dataclass(frozen=True)
class Scheduler:
    name: Literal["fifo", "asha", "pbt"] = "fifo"
    grace_period: int = 10  # asha: rounds every trial plays before it can be stopped
    reduction_factor: int = 2  # asha: keep the best 1/reduction_factor at each rung
    perturbation_interval: int = 20  # pbt: rounds between exploit/explore (a checkpoint each)
    quantile_fraction: float = 0.25  # pbt: bottom fraction that copies the top fraction

    def check(self) -> None:
        if self.grace_period < 1:
            raise ValueError("grace_period: must be >= 1")
        if self.reduction_factor < 2:
            raise ValueError("reduction_factor: must be >= 2")
        if self.perturbation_interval < 1:
            raise ValueError("perturbation_interval: must be >= 1")
        if not 0 < self.quantile_fraction <= 0.5:
            raise ValueError("quantile_fraction: must be in (0, 0.5]")


@dataclass(frozen=True)
class SearchConfig:
    name: str
    base: str
    metric: str = "eval_success"
    mode: Literal["max", "min"] = "max"
    set: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    space: dict[str, Distribution] = field(default_factory=dict)
    search: SearchAlgorithm = field(default_factory=SearchAlgorithm)
    scheduler: Scheduler = field(default_factory=Scheduler)
    max_concurrent: int = 1
    trial_cpus: float = 0.05  # the trial's driver bundle: it mostly waits for its actors
    dir: str = "runs/tune"

    def check(self) -> None:
        if self.metric not in METRICS:
            raise ValueError(f"metric: {self.metric!r} is not logged; one of {', '.join(METRICS)}")
        if self.max_concurrent < 1:
            raise ValueError("max_concurrent: must be >= 1")
        if self.trial_cpus <= 0:
            raise ValueError("trial_cpus: must be > 0")
        for key, values in self.grid.items():
            if not values:
                raise ConfigError("no values", path=f"grid.{key}")
        for key, dist in self.space.items():
            try:
                dist.check()
            except ValueError as err:
                raise ConfigError(str(err).partition(": ")[2] or str(err), path=f"space.{key}") from None
        both = sorted(set(self.grid) & set(self.space))
        if both:
            raise ConfigError("searched in both grid and space", path=f"space.{both[0]}")
        algo = self.search.algorithm
        if algo == "grid" and (self.space or not self.grid):
            raise ConfigError("grid search takes grid values only (no space)", path="search.algorithm")
        if algo == "optuna" and self.grid:
            raise ConfigError("optuna samples from space only; move grid values to space "
                              "as {choice: [...]}", path="search.algorithm")
        if self.scheduler.name == "pbt" and not self.space:
            raise ConfigError("pbt mutates the space's parameters; give a space", path="scheduler.name")


def load_search(path: str | Path) -> tuple[SearchConfig, dict[str, Any]]:
    """The search and its base config (``set`` applied); every value the search can give a
    trial is checked against the config schema here, before Ray starts."""
    source = str(path)
    try:
        search = from_mapping(SearchConfig, load_mapping(path))
    except ConfigError as err:
        raise err.at(source=source) from None
    base = load_mapping((Path(path).parent / search.base).resolve())
    try:
        base = apply_overrides(base, [f"{k}={json.dumps(v)}" for k, v in search.set.items()])
    except ConfigError as err:
        raise err.at(source=source, prefix="set") from None
    probes: list[tuple[str, dict[str, Any]]] = [("base", {})]
    for key, values in search.grid.items():
        probes += [(f"grid.{key}", {key: v}) for v in values]
    for key, dist in search.space.items():
        probes += [(f"space.{key}", {key: v}) for v in _extremes(dist)]
    for where, values in probes:
        try:
            trial_config(base, values, search, "probe")
        except ConfigError as err:
            raise ConfigError(f"{err.path or 'value'}: {err.message}", path=where, source=source) from None
    return search, base


def _extremes(dist: Distribution) -> list[Any]:
    if dist.choice is not None:
        return list(dist.choice)
    bounds = dist.uniform or dist.loguniform or dist.randint
    assert bounds is not None
    return list(bounds)


def trial_config(base: dict[str, Any], values: dict[str, Any], search: SearchConfig, trial: str,
                 folder: Path | None = None) -> RunConfig:
    """One trial's run config: the base, the trial's values, its name and its folder."""
    fixed: dict[str, Any] = {"name": f"{search.name}-{trial}", "logging.progress": False}
    if folder is not None:
        fixed["logging.dir"] = str(folder)
    if search.scheduler.name == "pbt":
        fixed["logging.checkpoint_every"] = search.scheduler.perturbation_interval
    data = apply_overrides(base, [f"{k}={json.dumps(v)}" for k, v in {**values, **fixed}.items()])
    cfg = build_config(data, source=f"trial {trial}")
    if search.max_concurrent > 1 and cfg.runtime.agent_resources.num_cpus is None:
        cfg = replace(cfg, runtime=replace(cfg.runtime, cpu_share=1.0 / search.max_concurrent))
    return cfg


def bundles(cfg: RunConfig, cluster: dict[str, float], trial_cpus: float) -> list[dict[str, float]]:
    """The trial's placement-group bundles: its driver, then one per shard actor (ray backend)
    or the whole run in the driver's bundle (local backend)."""
    from neurocomm.platform.backends import plan_resources, shard_layout
    from neurocomm.platform.runner import prepare

    n = prepare(cfg).n
    if cfg.runtime.backend == "local":
        share = cfg.runtime.agent_resources.num_cpus
        cpus = share * n if share is not None else 0.95 * cluster.get("CPU", 1.0) * cfg.runtime.cpu_share
        return [{"CPU": max(trial_cpus, round(cpus, 2))}]
    out = [{"CPU": trial_cpus}]
    for r in plan_resources(cfg, shard_layout(n, cfg.runtime.agents_per_actor), cluster):
        bundle = {"CPU": r["num_cpus"]}
        if r["num_gpus"]:
            bundle["GPU"] = r["num_gpus"]
        out.append(bundle)
    return out


def _param_space(search: SearchConfig) -> dict[str, Any]:
    from ray import tune

    space: dict[str, Any] = {k: tune.grid_search(list(v)) for k, v in search.grid.items()}
    for key, d in search.space.items():
        if d.choice is not None:
            space[key] = tune.choice(list(d.choice))
        elif d.uniform is not None:
            space[key] = tune.uniform(*d.uniform)
        elif d.loguniform is not None:
            space[key] = tune.loguniform(*d.loguniform)
        else:
            assert d.randint is not None
            space[key] = tune.randint(d.randint[0], d.randint[1] + 1)  # ours includes the top
    return space


def _scheduler(search: SearchConfig, rounds: int) -> Any:
    from ray.tune.schedulers import AsyncHyperBandScheduler, FIFOScheduler, PopulationBasedTraining

    s = search.scheduler
    if s.name == "asha":
        # max_t past the last round: a trial that plays every round ends by itself, finished
        return AsyncHyperBandScheduler(time_attr="round", max_t=rounds + 1, grace_period=s.grace_period,
                                       reduction_factor=s.reduction_factor)
    if s.name == "pbt":
        return PopulationBasedTraining(time_attr="round", perturbation_interval=s.perturbation_interval,
                                       hyperparam_mutations=_param_space(replace(search, grid={})),
                                       quantile_fraction=s.quantile_fraction)
    return FIFOScheduler()


def _search_algorithm(search: SearchConfig) -> Any:
    if search.search.algorithm != "optuna":
        from ray.tune.search.basic_variant import BasicVariantGenerator

        # Tune's variant generator (grid points x random samples), seeded: the same trials again
        return BasicVariantGenerator(random_state=search.search.seed)
    from ray.tune.search.optuna import OptunaSearch

    return OptunaSearch(seed=search.search.seed)


def round_metrics(rows: list[dict[str, Any]]) -> dict[str, float]:
    """A round's metrics as Tune sees them: each column's mean over the edges that played
    (columns not measured this round are left out)."""
    out = {}
    for m in METRICS:
        values = np.asarray([r[m] for r in rows], dtype=float)
        if np.isfinite(values).any():
            out[m] = float(np.nanmean(values))
    return out


def current_run_dir(folder: Path) -> RunDir:
    """The trial's newest run directory (a PBT trial has one per exploit)."""
    runs = [p.parent for p in folder.glob("*/run.json")]
    return RunDir(max(runs, key=lambda p: RunDir(p).status().get("started", 0.0)))


def fork_run(source: Path, round_done: int, cfg: RunConfig, folder: Path) -> RunDir:
    """A new run directory for ``cfg`` that starts where ``source`` was after ``round_done``
    rounds: its topology, its logs and checkpoints up to then (PBT's exploit)."""
    run_dir = RunDir.create(cfg, folder)
    shutil.copy2(source / "topology.json", run_dir.path / "topology.json")
    for sub in ("metrics.parquet", "messages"):
        if (source / sub).is_dir():
            shutil.copytree(source / sub, run_dir.path / sub, dirs_exist_ok=True)
    donor = RunDir(source)
    run_id = str(run_dir.status().get("run_id", run_dir.path.name))
    for r, _ in donor.checkpoints():
        if r <= round_done:
            # Re-saved as this run's own (run id, config hash, checksum): resume checks them.
            payload = donor.load_checkpoint(r)
            payload.update(run_id=run_id, config_hash=cfg.digest())
            _set_learning_rates(payload, cfg)
            run_dir.save_checkpoint(r, payload)
    run_dir.event("forked", source=str(source), round=round_done)
    return run_dir


def _set_learning_rates(payload: dict[str, Any], cfg: RunConfig) -> None:
    """The optimiser state carries the donor's learning rate; the fork explores its own."""
    for agent_id, state in payload["agents"].items():
        for group in state["optimizer"]["param_groups"]:
            group["lr"] = cfg.population.spec_for(int(agent_id)).lr


_FINISHED = object()


def trial_class() -> type:
    """The Tune trainable (built on first use, so that Ray Tune stays an optional extra)."""
    from ray import tune

    class NeurocommTrial(tune.Trainable):
        """One trial: ``runner.run`` in a thread, one Tune step per reported round.

        The runner's per-round callback hands the round's metrics to ``step`` and waits for
        the next ``step``; when a scheduler stops the trial, ``cleanup`` tells the callback to
        stop the run and waits until the run has ended cleanly (``interrupted``, checkpointed),
        before Tune takes the trial's actor away.
        """

        def setup(self, config: dict[str, Any], search: SearchConfig, base: dict[str, Any],
                  root: str) -> None:
            self.search = search
            self.folder = Path(root) / "trials" / self.trial_id
            cfg = trial_config(base, config, search, self.trial_id, self.folder)
            # the trial's placement group (runtime.placement is its strategy) places the actors
            self.cfg = replace(cfg, runtime=replace(cfg.runtime, placement="default"))
            self.fork: dict[str, Any] | None = None
            self.results: queue.Queue[Any] = queue.Queue()
            self.go_on = threading.Semaphore(0)
            self.stopping = threading.Event()
            self.thread: threading.Thread | None = None
            self.last: dict[str, Any] = {}

        def _play(self) -> None:
            from neurocomm.platform.runner import run
            from neurocomm.platform.topology import Topology

            try:
                if self.fork is None:
                    run(self.cfg, on_round=self._on_round)
                elif Path(self.fork["run_dir"]).parent == self.folder:
                    # Tune paused this trial and brings it back: carry on in its own run directory
                    own = RunDir(Path(self.fork["run_dir"]))
                    run(self.cfg, topology=Topology.load(own.path / "topology.json"), resume=own,
                        on_round=self._on_round)
                else:
                    run_dir = fork_run(Path(self.fork["run_dir"]), int(self.fork["round"]),
                                       self.cfg, self.folder)
                    run(self.cfg, topology=Topology.load(run_dir.path / "topology.json"),
                        resume=run_dir, on_round=self._on_round)
                self.results.put(_FINISHED)
            except BaseException as err:  # noqa: BLE001 - handed to step, which raises it
                self.results.put(err)

        def _on_round(self, done: int, rows: list[dict[str, Any]]) -> bool:
            metrics = round_metrics(rows)
            if self.search.metric not in metrics or self.stopping.is_set():
                return self.stopping.is_set()  # not measured this round (eval: every eval_every)
            # done=True on the last round ends the trial there, without an empty extra step
            self.results.put({"round": done, "run_dir": str(current_run_dir(self.folder).path),
                              **metrics, "done": done >= self.cfg.training.rounds})
            self.go_on.acquire()  # until Tune asks for the next step, or stops the trial
            return self.stopping.is_set()

        def step(self) -> dict[str, Any]:
            if self.thread is None:
                self.thread = threading.Thread(target=self._play, name="neurocomm-run", daemon=True)
                self.thread.start()
            else:
                self.go_on.release()
            item = self.results.get()
            if isinstance(item, BaseException):
                raise item
            if item is _FINISHED:
                return {**self.last, "done": True}
            self.last = item
            return item

        def save_checkpoint(self, checkpoint_dir: str) -> None:
            run_dir = current_run_dir(self.folder)
            saved = [r for r, _ in run_dir.checkpoints() if r <= self.last.get("round", 0)]
            fork = {"run_dir": str(run_dir.path), "round": max(saved, default=0)}
            Path(checkpoint_dir, "fork.json").write_text(json.dumps(fork))

        def load_checkpoint(self, checkpoint: str | dict[str, Any] | None) -> None:
            # PBT's exploit: the next step forks the donor's run directory at that checkpoint
            if isinstance(checkpoint, str):
                checkpoint = json.loads(Path(checkpoint, "fork.json").read_text())
            self.fork = checkpoint

        def cleanup(self) -> None:
            self.stopping.set()
            self.go_on.release()
            if self.thread is not None:
                self.thread.join(timeout=600)

    return NeurocommTrial


def require_tune() -> None:
    """ImportError naming the extra to install when Ray Tune or Optuna is missing."""
    try:
        import optuna  # noqa: F401
        import ray.tune  # noqa: F401
    except ImportError as err:
        raise ImportError(
            f"neurocomm tune needs the tune extra: pip install 'neurocomm[tune]' ({err})"
        ) from err


def run_search(path: str | Path, *, address: str | None = None, echo: Any = print) -> Any:
    """Run (or continue) the search; returns Tune's ResultGrid (its table: ``summary.csv``)."""
    require_tune()
    search, base = load_search(path)
    results = fit(search, base, address=address, echo=echo)
    table = results.get_dataframe()
    atomic_write_text((Path(search.dir) / search.name).resolve() / "summary.csv", table.to_csv(index=False))
    return results


def fit(search: SearchConfig, base: dict[str, Any], *, address: str | None = None,
        echo: Any = print) -> Any:
    """Run (or continue) a checked search over ``base`` through Ray Tune → its ResultGrid
    (``neurocomm tune`` and a sweep with ``engine: tune`` both come here)."""
    require_tune()
    from ray import tune

    from neurocomm.platform.raysession import ensure_ray

    root = (Path(search.dir) / search.name).resolve()
    root.mkdir(parents=True, exist_ok=True)
    ray = ensure_ray(address)
    cluster = ray.cluster_resources()

    def resources(config: dict[str, Any]) -> Any:
        cfg = trial_config(base, config, search, "resources")
        return tune.PlacementGroupFactory(
            bundles(cfg, cluster, search.trial_cpus),
            strategy="SPREAD" if cfg.runtime.placement == "spread" else "PACK",
        )

    rounds = trial_config(base, {}, search, "rounds").training.rounds
    trainable = tune.with_resources(
        tune.with_parameters(trial_class(), search=search, base=base, root=str(root)), resources)
    experiment = root / "tune"
    if tune.Tuner.can_restore(str(experiment)):
        echo(f"search {search.name}: continuing {experiment}")
        tuner = tune.Tuner.restore(str(experiment), trainable, resume_unfinished=True, resume_errored=True)
    else:
        echo(f"search {search.name}: {search.search.algorithm} search, {search.scheduler.name} "
             f"scheduler on {search.metric} ({search.mode}); runs in {root / 'trials'}")
        tuner = tune.Tuner(
            trainable,
            param_space=_param_space(search),
            tune_config=tune.TuneConfig(
                metric=search.metric, mode=search.mode, num_samples=search.search.samples,
                search_alg=_search_algorithm(search), scheduler=_scheduler(search, rounds),
                max_concurrent_trials=search.max_concurrent,
            ),
            run_config=tune.RunConfig(name="tune", storage_path=str(root), verbose=0),
        )
    return tuner.fit()
