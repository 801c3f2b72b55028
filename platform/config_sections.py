"""The sections of a run config as typed, frozen records, each checking its own fields.

Cross-field and cross-section checks that need the registries or the built graph live in
platform/config.py and platform/runner.py (``prepare``); the sizes a config implies are
estimated in platform/estimate.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")


def check_name(name: str, field_name: str = "name") -> None:
    """A name used as a file or folder name: one safe path component, never '.' or '..'."""
    if not SAFE_NAME.fullmatch(name) or name in (".", ".."):
        raise ValueError(
            f"{field_name}: {name!r} is not a safe folder name; allowed: letters, digits, '_', "
            "'.', '-', not starting with '.' or '-'"
        )


@dataclass(frozen=True)
class EdgeNoise:
    edge: tuple[int, ...]
    substitution: float = 0.0
    deletion: float = 0.0

    def check(self) -> None:
        if len(self.edge) != 2:
            raise ValueError("edge: a pair [speaker, listener]")
        _check_probability("substitution", self.substitution)
        _check_probability("deletion", self.deletion)


@dataclass(frozen=True)
class NoiseConfig:
    """Channel noise: a default for every edge, and overrides for chosen directed edges."""

    substitution: float = 0.0
    deletion: float = 0.0
    edges: tuple[EdgeNoise, ...] = ()

    def check(self) -> None:
        _check_probability("substitution", self.substitution)
        _check_probability("deletion", self.deletion)

    def for_edge(self, speaker: int, listener: int) -> tuple[float, float]:
        sub, dele = self.substitution, self.deletion
        for e in self.edges:
            if tuple(e.edge) == (speaker, listener):
                sub, dele = e.substitution, e.deletion
        return sub, dele


def _check_probability(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name}: {value!r} is not a probability; allowed: numbers in [0, 1]")


@dataclass(frozen=True)
class TopologyConfig:
    generator: str | None = "complete_graph"
    params: dict[str, Any] = field(default_factory=dict)
    file: str | None = None
    format: Literal["auto", "edgelist", "graphml"] = "auto"
    directed: bool = False
    weight: str = "weight"
    schedule: tuple[TopologyChange, ...] = ()
    noise: NoiseConfig = field(default_factory=NoiseConfig)

    def check(self) -> None:
        if (self.generator is None) == (self.file is None):
            raise ValueError("generator: give exactly one of topology.generator, topology.file")


@dataclass(frozen=True)
class TopologyChange:
    """From round ``at_round`` on, add and/or remove these edges (language contact)."""

    at_round: int
    add_edges: tuple[tuple[int, ...], ...] = ()
    remove_edges: tuple[tuple[int, ...], ...] = ()

    def check(self) -> None:
        if self.at_round < 0:
            raise ValueError("at_round: must be >= 0")
        for name in ("add_edges", "remove_edges"):
            if any(len(e) != 2 for e in getattr(self, name)):
                raise ValueError(f"{name}: each edge is a pair [u, v]")
        loops = [list(e) for e in self.add_edges if e[0] == e[1]]
        if loops:
            raise ValueError(f"add_edges: {loops[0]} is a self-loop; an agent never talks to itself")


@dataclass(frozen=True)
class AgentSpec:
    """How one agent is built: a registered model name (or import path) and its parameters."""

    model: str = "neuroai-rnn"
    lr: float = 1e-3
    # chance that the agent applies its update in a round (heterogeneous learning speed)
    update_prob: float = 1.0
    params: dict[str, Any] = field(default_factory=dict)

    def check(self) -> None:
        if not self.lr > 0:
            raise ValueError("lr: must be > 0")
        _check_probability("update_prob", self.update_prob)


@dataclass(frozen=True)
class AgentGroup:
    """Agents on ``nodes`` override the default spec (only the keys given)."""

    nodes: tuple[int, ...]
    name: str = ""
    model: str | None = None
    lr: float | None = None
    update_prob: float | None = None
    params: dict[str, Any] = field(default_factory=dict)

    def check(self) -> None:
        if not self.nodes:
            raise ValueError("nodes: at least one node")
        if self.lr is not None and not self.lr > 0:
            raise ValueError("lr: must be > 0")
        if self.update_prob is not None:
            _check_probability("update_prob", self.update_prob)


# The modules of an agent that a partial turnover can reset (platform/partial_reset.py).
AGENT_MODULES = ("perception", "production", "comprehension", "readout")


@dataclass(frozen=True)
class TurnoverConfig:
    """Agents replaced by naive newcomers (fresh weights): every ``every`` rounds a ``fraction``
    of the population chosen at random, and/or the listed ``agents`` at ``at_rounds``.

    ``modules``: reset only these modules (empty: the whole agent). ``imitation_steps``: the
    newcomer first imitates its predecessor's language for that many supervised steps of
    ``imitation_batch`` games (null: the training batch size)."""

    every: int = 0
    fraction: float = 0.0
    at_rounds: tuple[int, ...] = ()
    agents: tuple[int, ...] = ()
    modules: tuple[str, ...] = ()
    imitation_steps: int = 0
    imitation_batch: int | None = None

    def check(self) -> None:
        if self.every < 0:
            raise ValueError("every: must be >= 0 (0 turns it off)")
        _check_probability("fraction", self.fraction)
        if self.at_rounds and not self.agents:
            raise ValueError("agents: which agents to replace at at_rounds")
        unknown = [m for m in self.modules if m not in AGENT_MODULES]
        if unknown:
            raise ValueError(f"modules: unknown module {unknown[0]!r}; allowed: "
                             f"{', '.join(AGENT_MODULES)} (an empty list resets the whole agent)")
        if len(set(self.modules)) != len(self.modules):
            raise ValueError("modules: each module at most once")
        if self.imitation_steps < 0:
            raise ValueError("imitation_steps: must be >= 0 (0 turns imitation off)")
        if self.imitation_batch is not None and self.imitation_batch < 1:
            raise ValueError("imitation_batch: must be >= 1 or null (the training batch size)")


@dataclass(frozen=True)
class PopulationConfig:
    size: int | None = None
    vocab_size: int = 10
    max_len: int = 4
    agent: AgentSpec = field(default_factory=AgentSpec)
    groups: tuple[AgentGroup, ...] = ()
    turnover: TurnoverConfig = field(default_factory=TurnoverConfig)

    def check(self) -> None:
        if self.size is not None and self.size < 1:
            raise ValueError("size: must be >= 1")
        if self.vocab_size < 2:
            raise ValueError("vocab_size: must be >= 2 (symbol 0 is end-of-message)")
        if self.max_len < 1:
            raise ValueError("max_len: must be >= 1")

    def spec_for(self, node: int) -> AgentSpec:
        """The default spec with every group that names ``node`` applied in order."""
        spec = self.agent
        for group in self.groups:
            if node in group.nodes:
                spec = AgentSpec(
                    model=group.model or spec.model,
                    lr=group.lr if group.lr is not None else spec.lr,
                    update_prob=group.update_prob if group.update_prob is not None else spec.update_prob,
                    params={**spec.params, **group.params},
                )
        return spec


@dataclass(frozen=True)
class ScenarioConfig:
    name: str = "referential"
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainingConfig:
    rule: str = "reinforce"
    rule_params: dict[str, Any] = field(default_factory=dict)
    rounds: int = 100
    batch_size: int = 32
    edges_per_round: int | None = None
    optimizer: Literal["adam", "sgd"] = "adam"
    # Michel et al. 2023: every agent also plays itself each round (i -> i, both roles learn);
    # on the edges between agents only the listener learns (docs/mechanisms.md)
    partitioned: bool = False
    # stop once the evaluated mean greedy success over the edges reaches this (null: play every
    # round); needs logging.eval_every > 0, checked in RunConfig.check
    stop_at: float | None = None
    # torch.compile of the agents' forward computation (platform/compiling.py): false, true
    # (the inductor backend) or a torch.compile backend's name; falls back to eager on failure
    compile: bool | str = False

    def check(self) -> None:
        if self.stop_at is not None and not 0 < self.stop_at <= 1:
            raise ValueError("stop_at: must be in (0, 1] or null (play every round)")
        if not isinstance(self.compile, bool):  # a backend name: torch knows which exist
            from neurocomm.platform.compiling import check_setting

            check_setting(self.compile)
        if self.rounds < 1:
            raise ValueError("rounds: must be >= 1")
        if self.batch_size < 1:
            raise ValueError("batch_size: must be >= 1")
        if self.edges_per_round is not None and self.edges_per_round < 1:
            raise ValueError("edges_per_round: must be >= 1 or null (every edge)")


@dataclass(frozen=True)
class ResourcesConfig:
    # null: share the cluster's CPUs among the actors (Ray's count only gates scheduling)
    num_cpus: float | None = None
    num_gpus: float = 0.0
    memory_mb: int | None = None

    def check(self) -> None:
        if self.num_cpus is not None and self.num_cpus < 0:
            raise ValueError("num_cpus: must be >= 0 or null")
        if self.num_gpus < 0:
            raise ValueError("num_gpus: must be >= 0")
        if self.memory_mb is not None and self.memory_mb < 1:
            raise ValueError("memory_mb: must be >= 1 or null (no reservation)")


@dataclass(frozen=True)
class RuntimeConfig:
    backend: Literal["ray", "local"] = "ray"
    address: str | None = None
    agents_per_actor: int = 1
    agent_resources: ResourcesConfig = field(default_factory=ResourcesConfig)
    placement: Literal["default", "spread", "pack"] = "default"
    object_store_mb: int = 256
    max_restarts: int = 3
    # with agent_resources.num_cpus null: the fraction of the cluster's CPUs this run shares
    # among its actors (a sweep running k runs at once gives each 1/k)
    cpu_share: float = 1.0

    def check(self) -> None:
        if self.agents_per_actor < 1:
            raise ValueError("agents_per_actor: must be >= 1")
        if self.address is not None and not (
            self.address == "auto" or re.fullmatch(r"(ray://)?[\w.\-]+:\d+", self.address)
        ):
            raise ValueError("address: null (embedded Ray), 'auto', 'host:port' or 'ray://host:port'")
        if not 0 < self.cpu_share <= 1:
            raise ValueError("cpu_share: must be in (0, 1]")
        if self.object_store_mb < 64:
            raise ValueError("object_store_mb: must be >= 64")
        if self.max_restarts < 0:
            raise ValueError("max_restarts: must be >= 0")


@dataclass(frozen=True)
class SinkConfig:
    """One tracker that sees every round (docs/trackers.md): a registered sink name, whether it
    gets every directed edge's values besides the means, and the sink's own options (checked
    against its ``Params``). In YAML a bare name stands for ``{kind: NAME}``."""

    SHORT_FORM: ClassVar[str] = "kind"
    kind: str
    per_edge: bool = True
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LoggingConfig:
    dir: str = "runs"
    messages_every: int = 10
    messages_per_edge: int = 8
    checkpoint_every: int = 0
    eval_every: int = 10
    eval_games: int = 128
    chunk_rounds: int = 20
    progress: bool = True
    sinks: tuple[SinkConfig, ...] = ()

    def check(self) -> None:
        if self.eval_games < 1:
            raise ValueError("eval_games: must be >= 1")
        for name in ("messages_every", "checkpoint_every", "eval_every"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: must be >= 0 (0 turns it off)")
        if self.messages_per_edge < 0:
            raise ValueError("messages_per_edge: must be >= 0")
        if self.chunk_rounds < 1:
            raise ValueError("chunk_rounds: must be >= 1")


