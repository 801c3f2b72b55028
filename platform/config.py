"""The run config: YAML → typed, frozen records, validated once on the driver.

Sections: seed, topology, population, scenario, training, runtime, logging (docs/config.md).
Model, scenario and learning-rule parameters are checked against the ``Params`` dataclass that
each registered class declares, so an unknown key at any depth is an error.

The section records live in platform/config_sections.py and the YAML reader in
platform/config_yaml.py; every public name is importable from here.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from neurocomm.platform import registry
from neurocomm.platform.config_sections import (
    AgentGroup,
    AgentSpec,
    EdgeNoise,
    LoggingConfig,
    NoiseConfig,
    PopulationConfig,
    ResourcesConfig,
    RuntimeConfig,
    ScenarioConfig,
    SinkConfig,
    TopologyChange,
    TopologyConfig,
    TrainingConfig,
    TurnoverConfig,
    check_name,
)
from neurocomm.platform.config_yaml import load_mapping, parse_yaml
from neurocomm.platform.errors import ConfigError
from neurocomm.platform.typed import from_mapping, to_plain

__all__ = [
    "AgentGroup", "AgentSpec", "EdgeNoise", "LoggingConfig", "NoiseConfig", "PopulationConfig",
    "ResourcesConfig", "RunConfig", "RuntimeConfig", "ScenarioConfig", "SinkConfig", "TopologyChange",
    "TopologyConfig", "TrainingConfig", "TurnoverConfig", "apply_overrides", "build_config",
    "check_name", "load_config", "load_mapping", "parse_yaml", "validate_references",
]


@dataclass(frozen=True)
class RunConfig:
    name: str = "run"
    seed: int = 0
    topology: TopologyConfig = field(default_factory=TopologyConfig)
    population: PopulationConfig = field(default_factory=PopulationConfig)
    scenario: ScenarioConfig = field(default_factory=ScenarioConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)

    def check(self) -> None:
        check_name(self.name)
        if self.seed < 0:
            raise ValueError("seed: must be >= 0")
        if self.training.stop_at is not None and self.logging.eval_every == 0:
            raise ConfigError("needs logging.eval_every > 0 (stop_at watches the greedy evaluation)",
                              path="training.stop_at")

    def to_dict(self) -> dict[str, Any]:
        return to_plain(self)

    def digest(self) -> str:
        """A stable hash of the resolved config (saved with the run). The trackers watching a
        run (``logging.sinks``) change nothing it computes, so they are left out: adding one
        makes no new run for a sweep, and run directories from before sinks existed resume."""
        plain = self.to_dict()
        for section, name, default in _LEFT_OUT_OF_DIGEST:
            if default is _ALWAYS or plain[section].get(name) == default:
                plain[section].pop(name, None)
        blob = json.dumps(plain, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


_ALWAYS = object()
# (section, field, default) left out of the digest: always (the trackers change nothing a run
# computes), or when at a default that reproduces 0.1 (fields added since), so that older run
# directories still resume without --force.
_LEFT_OUT_OF_DIGEST: tuple[tuple[str, str, Any], ...] = (
    ("logging", "sinks", _ALWAYS),
    ("training", "stop_at", None),
    ("training", "compile", False),
)


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """``key.path=value`` overrides (value parsed as YAML) applied to a nested mapping."""
    data = json.loads(json.dumps(data, default=str)) if data else {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r} must look like section.field=value", source="--set")
        value = parse_yaml(raw, f"--set {key}") if raw.strip() else None
        parts = key.strip().split(".")
        node = data
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(
                    "cannot set a field inside a non-mapping value",
                    path=".".join(parts[: i + 1]),
                    source="--set",
                )
            node = child
        node[parts[-1]] = value
    return data


def validate_references(cfg: RunConfig) -> None:
    """Checks that need the registries: names resolve, parameters fit their Params."""
    checks = [("models", cfg.population.agent.model, cfg.population.agent.params, "population.agent")]
    for i, group in enumerate(cfg.population.groups):
        model = group.model or cfg.population.agent.model
        merged = {**cfg.population.agent.params, **group.params}
        checks.append(("models", model, merged, f"population.groups[{i}]"))
    checks.append(("scenarios", cfg.scenario.name, cfg.scenario.params, "scenario"))
    checks.append(("rules", cfg.training.rule, cfg.training.rule_params, "training"))
    fitting: list[tuple[Any, str]] = []
    name_field = {"models": "model", "scenarios": "name", "rules": "rule"}
    params_field = {"models": "params", "scenarios": "params", "rules": "rule_params"}
    for group, name, params, path in checks:
        try:
            cls = registry.resolve(group, name)
        except LookupError as err:
            raise ConfigError(str(err), path=f"{path}.{name_field[group]}") from None
        params_cls = getattr(cls, "Params", None)
        if params_cls is None:
            raise ConfigError(
                f"{name!r} does not fit the {group[:-1]} interface: no Params dataclass",
                path=f"{path}.{name_field[group]}",
            )
        built = from_mapping(params_cls, dict(params), f"{path}.{params_field[group]}")
        if group == "models":
            from neurocomm.platform.interfaces import check_model_class

            problem = check_model_class(cls)
            if problem:
                raise ConfigError(problem, path=f"{path}.model")
            if callable(getattr(built, "check_game", None)):
                fitting.append((built, f"{path}.params"))
    _check_games(cfg, fitting)
    if cfg.logging.sinks:
        from neurocomm.platform.sinks import check_sinks

        check_sinks(cfg.logging.sinks)


def _check_games(cfg: RunConfig, fitting: list[tuple[Any, str]]) -> None:
    """Every model that can say whether it plays the scenario's game (``Params.check_game``,
    platform/interfaces.py) is asked, so a mismatch is one config error, not a failing actor."""
    if not fitting:
        return
    cls = registry.resolve("scenarios", cfg.scenario.name)
    spec = getattr(cls(from_mapping(cls.Params, dict(cfg.scenario.params), "scenario.params")), "spec", None)
    if spec is None:
        return
    for params, path in fitting:
        try:
            params.check_game(spec)
        except ValueError as err:
            field, sep, message = str(err).partition(": ")
            raise ConfigError(message if sep else str(err), path=f"{path}.{field}" if sep else path) from None


def build_config(data: Mapping[str, Any], source: str = "<config>") -> RunConfig:
    try:
        cfg = from_mapping(RunConfig, data)
        validate_references(cfg)
    except ConfigError as err:
        raise err.at(source=source) from None
    return cfg


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> RunConfig:
    """The validated config of a YAML file with ``--set`` overrides applied."""
    data = apply_overrides(load_mapping(path), overrides)
    return build_config(data, source=str(path))
