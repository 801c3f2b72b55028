"""Studies: a published claim, the runs that test it, and the rule that says whether it held.

A study file (configs/studies/NAME.yaml, docs/studies.md) names a base config, the factors and
conditions to compare, the seeds, the measures, the claims (statement, reference, published
numbers, the effect to estimate, the verdict rule) and its scales (``quick``, ``full``, and a
``tiny`` smoke scale). It is read into frozen records and validated once: every condition's
run config is built, every measure resolves, every claim refers to factors and levels that
exist. Errors are one line with the file and the field path.

Each condition is run as a sweep (platform/sweep.py) into ``{dir}/{NAME}__{SCALE}/{CONDITION}/``
so a relaunch skips finished runs and resumes stopped ones. Standalone scenarios (the naming
game) have no round loop; their points are run one by one with the same index (``sweep.json``).
"""

from __future__ import annotations

import itertools
import json
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from neurocomm.platform.analysis import measures as measure_registry
from neurocomm.platform.config import load_mapping
from neurocomm.platform.errors import ConfigError
from neurocomm.platform.typed import from_mapping

SMOKE_SCALE = "tiny"  # the one scale allowed fewer than MIN_SEEDS seeds (tests, trying a study out)
MIN_SEEDS = 5
# columns of the report tables, so not available as factor names
RESERVED_COLUMNS = ("condition", "seed", "run_dir", "measure", "n", "runs", "seeds", "mean", "ci_low",
                    "ci_high")


@dataclass(frozen=True)
class Factor:
    """What a factor's values change: one config ``key`` (the value is used as is), or named
    ``levels``, each a mapping of overrides."""

    key: str | None = None
    levels: dict[str, dict[str, Any]] = field(default_factory=dict)

    def check(self) -> None:
        if (self.key is None) == (not self.levels):
            raise ValueError("key: give exactly one of key, levels")


@dataclass(frozen=True)
class ConditionGrid:
    """Every combination of the listed factor values; ``set`` adds overrides to each."""

    grid: dict[str, tuple[Any, ...]]
    set: dict[str, Any] = field(default_factory=dict)

    def check(self) -> None:
        for name, values in self.grid.items():
            if not values:
                raise ValueError(f"grid: factor {name} has no values")


@dataclass(frozen=True)
class Effect:
    """What is estimated from the runs of the conditions matching ``where``.

    contrast: mean(measure | factor = levels[1]) - mean(measure | factor = levels[0]);
    slope: least-squares slope of the measure on the numeric factor (of log measure on log
    factor with ``log``, of the measure on log factor with ``log_factor``);
    correlation: across runs, the measure against the measure ``against``;
    mean: the mean of the measure (tested against 0).
    """

    kind: Literal["contrast", "slope", "correlation", "mean"]
    factor: str | None = None
    levels: tuple[Any, ...] = ()
    log: bool = False
    log_factor: bool = False
    against: str | None = None
    method: Literal["spearman", "pearson"] = "spearman"
    test: Literal["permutation", "welch"] = "permutation"
    where: dict[str, Any] = field(default_factory=dict)

    def check(self) -> None:
        if self.kind in ("contrast", "slope") and self.factor is None:
            raise ValueError(f"factor: a {self.kind} needs the factor it varies")
        if self.kind == "contrast" and len(self.levels) != 2:
            raise ValueError("levels: a contrast compares two levels [from, to]")
        if self.log and self.log_factor:
            raise ValueError("log_factor: log already takes the log of the factor (log-log)")
        if self.kind == "correlation" and self.against is None:
            raise ValueError("against: a correlation needs the other measure")


@dataclass(frozen=True)
class VerdictRule:
    """direction: reproduced when the CI excludes 0 on the ``expect`` side and p < alpha; not
    reproduced when the CI excludes every effect of at least ``margin`` in that direction.
    equivalence: reproduced when the CI lies within target ± margin; not reproduced when it
    lies outside that band. Otherwise inconclusive."""

    rule: Literal["direction", "equivalence"]
    expect: Literal["increase", "decrease"] | None = None
    alpha: float = 0.05
    margin: float = 0.0
    target: float | None = None

    def check(self) -> None:
        if self.rule == "direction" and self.expect is None:
            raise ValueError("expect: a direction rule needs expect: increase or decrease")
        if self.rule == "equivalence" and (self.target is None or not self.margin > 0):
            raise ValueError("target: an equivalence rule needs a target and a margin > 0")
        if not 0 < self.alpha < 1:
            raise ValueError("alpha: must be in (0, 1)")
        if self.margin < 0:
            raise ValueError("margin: must be >= 0")


@dataclass(frozen=True)
class Claim:
    id: str
    statement: str
    reference: str
    published: str
    measure: str
    effect: Effect
    verdict: VerdictRule

    def check(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_\-]+", self.id):
            raise ValueError("id: letters, digits, '_' and '-' only")


@dataclass(frozen=True)
class Scale:
    """How a scale changes the study: more overrides, other seeds, other conditions."""

    description: str = ""
    set: dict[str, Any] = field(default_factory=dict)
    seeds: tuple[int, ...] | None = None
    conditions: tuple[ConditionGrid, ...] | None = None
    max_concurrent: int = 1

    def check(self) -> None:
        if self.max_concurrent < 1:
            raise ValueError("max_concurrent: must be >= 1")


@dataclass(frozen=True)
class StudyConfig:
    name: str
    description: str
    base: str
    factors: dict[str, Factor]
    conditions: tuple[ConditionGrid, ...]
    claims: tuple[Claim, ...]
    scales: dict[str, Scale]
    set: dict[str, Any] = field(default_factory=dict)
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    measures: tuple[str, ...] = ()
    over_time: tuple[str, ...] = ()
    distance: Literal["edit", "hamming"] = "edit"
    dir: str = "studies"

    def check(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_\-]+", self.name):
            raise ValueError("name: letters, digits, '_' and '-' only")
        for required in ("quick", "full"):
            if required not in self.scales:
                raise ValueError(f"scales: a {required!r} scale is required")
        if not self.claims:
            raise ValueError("claims: at least one claim")
        for name in self.factors:
            if name in RESERVED_COLUMNS:
                raise ValueError(f"factors: {name!r} is a column of the report; reserved: "
                                 f"{', '.join(RESERVED_COLUMNS)}")
        ids = [c.id for c in self.claims]
        if len(set(ids)) != len(ids):
            raise ValueError("claims: two claims share an id")


@dataclass(frozen=True)
class Condition:
    """One cell of the study: a value for every factor, and the overrides that make it."""

    values: dict[str, Any]
    overrides: dict[str, Any]

    @property
    def id(self) -> str:
        text = "__".join(f"{k}-{v}" for k, v in self.values.items())
        return re.sub(r"[^A-Za-z0-9_.\-]", "_", text)


@dataclass(frozen=True)
class Study:
    """A validated study at one scale."""

    config: StudyConfig
    path: Path
    scale: str
    conditions: tuple[Condition, ...]
    seeds: tuple[int, ...]
    set: dict[str, Any]
    max_concurrent: int

    @property
    def folder_name(self) -> str:
        return f"{self.config.name}__{self.scale}"

    @property
    def base_path(self) -> Path:
        return (self.path.parent / self.config.base).resolve()


def resolve_study_path(name_or_path: str) -> Path:
    """A path to a study file, or NAME for configs/studies/NAME.yaml (here, or in the source tree)."""
    given = Path(name_or_path)
    if given.suffix in (".yaml", ".yml") or given.is_file():
        return given
    for root in (Path.cwd(), Path(__file__).resolve().parent.parent):
        candidate = root / "configs" / "studies" / f"{name_or_path}.yaml"
        if candidate.is_file():
            return candidate
    raise ConfigError(f"no study {name_or_path!r}: not a file and no configs/studies/{name_or_path}.yaml",
                      source=name_or_path)


def _conditions(cfg: StudyConfig, grids: tuple[ConditionGrid, ...], where: str) -> tuple[Condition, ...]:
    out: list[Condition] = []
    for gi, grid in enumerate(grids):
        missing = [f for f in cfg.factors if f not in grid.grid]
        extra = [f for f in grid.grid if f not in cfg.factors]
        if missing or extra:
            bad = extra[0] if extra else missing[0]
            what = "is not a factor" if extra else "has no values here (give every factor)"
            raise ConfigError(f"{bad} {what}; factors: {', '.join(cfg.factors)}",
                              path=f"{where}[{gi}].grid.{bad}")
        names = list(cfg.factors)
        for combo in itertools.product(*(grid.grid[n] for n in names)):
            values = dict(zip(names, combo, strict=True))
            overrides: dict[str, Any] = {}
            for name, value in values.items():
                factor = cfg.factors[name]
                if factor.key is not None:
                    overrides[factor.key] = value
                elif str(value) in factor.levels:
                    overrides.update(factor.levels[str(value)])
                else:
                    raise ConfigError(f"{value!r} is not a level of {name}; levels: "
                                      f"{', '.join(factor.levels)}", path=f"{where}[{gi}].grid.{name}")
            overrides.update(grid.set)
            out.append(Condition(values, overrides))
    ids = [c.id for c in out]
    dup = next((i for i in ids if ids.count(i) > 1), None)
    if dup is not None:
        raise ConfigError(f"condition {dup} appears twice", path=where)
    return tuple(out)


def _check_measure(name: str, path: str, curve: bool = False) -> None:
    try:
        m = measure_registry.resolve(name)
    except LookupError as err:
        raise ConfigError(str(err), path=path) from None
    if curve and m.over_time is None:
        raise ConfigError(f"measure {name!r} has no curve over time", path=path)


def _check_claims(cfg: StudyConfig, conditions: tuple[Condition, ...]) -> None:
    for i, claim in enumerate(cfg.claims):
        where = f"claims[{i}]"
        _check_measure(claim.measure, f"{where}.measure")
        effect = claim.effect
        if effect.against is not None:
            _check_measure(effect.against, f"{where}.effect.against")
        for key in [*effect.where, *([effect.factor] if effect.factor else [])]:
            if key not in cfg.factors:
                raise ConfigError(f"{key!r} is not a factor; factors: {', '.join(cfg.factors)}",
                                  path=f"{where}.effect")
        chosen = [c for c in conditions if all(c.values[k] == v for k, v in effect.where.items())]
        if not chosen:
            raise ConfigError("no condition matches where", path=f"{where}.effect.where")
        if effect.kind == "contrast":
            present = {c.values[effect.factor] for c in chosen}
            for j, level in enumerate(effect.levels):
                if level not in present:
                    raise ConfigError(f"no condition has {effect.factor} = {level!r}",
                                      path=f"{where}.effect.levels[{j}]")
        if effect.kind == "slope":
            values = {c.values[effect.factor] for c in chosen}
            if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
                shown = sorted(map(str, values))
                raise ConfigError(f"a slope needs a numeric factor; {effect.factor} has {shown}",
                                  path=f"{where}.effect.factor")
            if len(values) < 2:
                raise ConfigError(f"a slope needs at least two values of {effect.factor}",
                                  path=f"{where}.effect.factor")


def _sweep_mapping(study: Study, condition: Condition, folder: Path,
                   extra: dict[str, Any]) -> dict[str, Any]:
    return {"name": condition.id, "base": str(study.base_path),
            "set": {**study.set, **condition.overrides, **extra}, "seeds": list(study.seeds),
            "max_concurrent": study.max_concurrent, "dir": str(folder)}


def load_study(path: str | Path, scale: str = "quick") -> Study:
    """The study at ``path`` at ``scale``, with every condition's run config validated."""
    from neurocomm.platform.sweep import load_sweep

    source = str(path)
    try:
        cfg = from_mapping(StudyConfig, load_mapping(path))
        if scale not in cfg.scales:
            raise ConfigError(f"no scale {scale!r}; scales: {', '.join(cfg.scales)}", path="scales")
        chosen = cfg.scales[scale]
        seeds = chosen.seeds if chosen.seeds is not None else cfg.seeds
        if len(set(seeds)) != len(seeds):
            raise ConfigError("seeds repeat", path=f"scales.{scale}.seeds")
        if scale != SMOKE_SCALE and len(seeds) < MIN_SEEDS:
            raise ConfigError(f"{len(seeds)} seeds; a claim needs at least {MIN_SEEDS}",
                              path=f"scales.{scale}.seeds" if chosen.seeds is not None else "seeds")
        grids, where = ((chosen.conditions, f"scales.{scale}.conditions") if chosen.conditions is not None
                        else (cfg.conditions, "conditions"))
        conditions = _conditions(cfg, grids, where)
        for i, name in enumerate(cfg.measures):
            _check_measure(name, f"measures[{i}]")
        for i, name in enumerate(cfg.over_time):
            _check_measure(name, f"over_time[{i}]", curve=True)
        _check_claims(cfg, conditions)
        base = (Path(path).parent / cfg.base).resolve()
        if not base.is_file():
            raise ConfigError(f"base config {base} not found", path="base")
    except ConfigError as err:
        raise err.at(source=source) from None
    study = Study(cfg, Path(path), scale, conditions, tuple(seeds), {**cfg.set, **chosen.set},
                  chosen.max_concurrent)
    with tempfile.TemporaryDirectory() as tmp:  # every run config validated as the sweep builds it
        for condition in conditions:
            sweep_file = Path(tmp) / f"{condition.id}.yaml"
            sweep_file.write_text(yaml.safe_dump(_sweep_mapping(study, condition, Path(tmp), {})))
            try:
                load_sweep(sweep_file)
            except ConfigError as err:
                raise ConfigError(err.message, path=err.path,
                                  source=f"{source} (condition {condition.id})") from None
    return study


def study_folder(study: Study, root: str | Path | None = None) -> Path:
    return Path(root if root is not None else study.config.dir) / study.folder_name


def write_sweeps(study: Study, folder: Path, extra: dict[str, Any] | None = None) -> list[Path]:
    """One sweep file per condition under ``folder/sweeps/`` (the runs go to ``folder/ID/``)."""
    (folder / "sweeps").mkdir(parents=True, exist_ok=True)
    paths = []
    for condition in study.conditions:
        path = folder / "sweeps" / f"{condition.id}.yaml"
        mapping = _sweep_mapping(study, condition, folder, extra or {})
        path.write_text(yaml.safe_dump(mapping, sort_keys=False))
        paths.append(path)
    manifest = {"study": study.config.name, "scale": study.scale, "source": str(study.path.resolve()),
                "seeds": list(study.seeds),
                "conditions": [{"id": c.id, "values": c.values} for c in study.conditions]}
    (folder / "study.json").write_text(json.dumps(manifest, indent=2, default=str) + "\n")
    return paths


def _run_standalone_sweep(sweep_path: Path, echo: Any) -> list[str]:
    """The sweep's points run one by one by the standalone path, indexed like any sweep."""
    from neurocomm.platform.standalone import run_standalone
    from neurocomm.platform.sweep import SweepIndex, load_sweep

    sweep, points = load_sweep(sweep_path)
    index = SweepIndex(Path(sweep.dir) / sweep.name)
    outcomes = []
    for point in points:
        entry = index.get(point.key)
        if entry and entry.get("status") == "finished" and Path(entry["run_dir"]).is_dir():
            echo(f"  {sweep.name} {point.key}: already finished, skipped")
            outcomes.append("skipped")
            continue
        result = run_standalone(point.config)
        index.put(point.key, {"run_dir": str(result.run_dir), "overrides": point.overrides,
                              "seed": point.seed, "status": result.status})
        echo(f"  {sweep.name} {point.key}: {result.status}, "
             + ", ".join(f"{k} {v}" for k, v in result.outcome.items() if k in ("t_conv", "max_words")))
        outcomes.append(result.status)
    return outcomes


def run_study(study: Study, root: str | Path | None = None, address: str | None = None,
              echo: Any = print) -> tuple[Path, list[str]]:
    """Run (or continue) every condition × seed; returns the study folder and each run's outcome."""
    from neurocomm.platform.standalone import is_standalone
    from neurocomm.platform.sweep import load_sweep, run_sweep

    folder = study_folder(study, root)
    extra = {"runtime.backend": "ray", "runtime.address": address} if address else {}
    paths = write_sweeps(study, folder, extra)
    echo(f"study {study.config.name} ({study.scale}): {len(study.conditions)} conditions x "
         f"{len(study.seeds)} seeds in {folder}")
    outcomes: list[str] = []
    for path in paths:
        _, points = load_sweep(path)
        if is_standalone(points[0].config):
            outcomes += _run_standalone_sweep(path, echo)
        else:
            outcomes += [row["outcome"] for row in run_sweep(path, echo=echo)]
    return folder, outcomes
