"""Building what a shard hosts from the config: the scenario, the learning rule and the agents
(each with its own weights from the seed, and its own optimiser); moving tensors between devices."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from neurocomm.platform import registry, seeding
from neurocomm.platform.config import AgentSpec, RunConfig
from neurocomm.platform.interfaces import ChannelSpec
from neurocomm.platform.typed import from_mapping


@dataclass
class AgentSlot:
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    spec: AgentSpec
    rule_state: dict[str, Any] = field(default_factory=dict)
    generation: int = 0  # how many times this node's agent was replaced by a newcomer


def build_scenario(cfg: RunConfig) -> Any:
    cls = registry.resolve("scenarios", cfg.scenario.name)
    return cls(from_mapping(cls.Params, dict(cfg.scenario.params), "scenario.params"))


def build_rule(cfg: RunConfig) -> Any:
    cls = registry.resolve("rules", cfg.training.rule)
    return cls(from_mapping(cls.Params, dict(cfg.training.rule_params), "training.rule_params"))


def pick_device(cfg: RunConfig) -> torch.device:
    """A GPU when the agents asked for one and this process sees one; else the CPU."""
    if cfg.runtime.agent_resources.num_gpus > 0 and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def map_leaves(value: Any, leaf: Callable[[Any], Any], kinds: type | tuple[type, ...] = torch.Tensor) -> Any:
    """``value`` with ``leaf`` applied to every instance of ``kinds`` in it (also inside tuples,
    lists, dicts and dataclasses' fields)."""
    if isinstance(value, kinds):
        return leaf(value)
    if isinstance(value, tuple | list):
        return type(value)(map_leaves(v, leaf, kinds) for v in value)
    if isinstance(value, dict):
        return {k: map_leaves(v, leaf, kinds) for k, v in value.items()}
    if hasattr(value, "__dataclass_fields__") and not isinstance(value, type):
        return type(value)(**{k: map_leaves(getattr(value, k), leaf, kinds)
                              for k in value.__dataclass_fields__})
    return value


def moved(value: Any, device: torch.device | str, copy: bool = False) -> Any:
    """Tensors (also inside tuples, lists, dicts and dataclasses' fields) on ``device``;
    ``copy`` gives each its own storage."""
    if copy:
        return map_leaves(value, lambda t: t.detach().to(device, copy=True))
    return map_leaves(value, lambda t: t.to(device))


def outgoing(value: Any) -> Any:
    """A message or feedback as it leaves the shard: on the CPU, in storage of its own.

    A slice of a batched tensor is a view, and pickling a view ships the whole underlying
    storage: without the copy, every edge's message would carry every other edge's too."""
    return moved(value, "cpu", copy=True)


def _gen_key(generation: int) -> tuple[int, ...]:
    # generation 0 keeps the original key, so runs without turnover are unchanged
    return (generation,) if generation else ()


def build_agent(cfg: RunConfig, agent_id: int, scenario: Any, channel: ChannelSpec,
                generation: int = 0, device: torch.device | None = None) -> AgentSlot:
    """Agent ``agent_id`` with its own weights and optimiser, from the seed (a newcomer
    replacing it after turnover is generation 1, 2, ...)."""
    spec = cfg.population.spec_for(agent_id)
    cls = registry.resolve("models", spec.model)
    params = from_mapping(cls.Params, dict(spec.params), "population.agent.params")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seeding.int_seed(cfg.seed, seeding.AGENT, agent_id, *_gen_key(generation)))
        model = cls(params, game=scenario.spec, channel=channel)
    if device is not None:
        model.to(device)
    optimizer = make_optimizer(cfg.training.optimizer, model, spec.lr)
    return AgentSlot(model, optimizer, spec, generation=generation)


def _fusable(params: list[torch.Tensor]) -> bool:
    return bool(params) and all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)


def make_optimizer(kind: str, model: torch.nn.Module, lr: float) -> torch.optim.Optimizer:
    """One agent's optimiser (``training.optimizer``: adam or sgd).

    Adam runs fused: one kernel over all of the agent's tensors. At these sizes the default
    per-tensor loop costs as much as the arithmetic (~0.65 ms against ~0.3 ms a step for a
    quickstart agent); the update is Adam's own, equal to the loop's within float rounding.
    """
    params = list(model.parameters())
    if kind == "adam":
        return torch.optim.Adam(params, lr=lr, fused=_fusable(params) or None)
    return torch.optim.SGD(params, lr=lr)


def load_optimizer_state(optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """``optimizer.load_state_dict(state)``, keeping this optimiser's implementation and
    learning rate.

    Saved parameter groups carry the implementation flags of the optimiser that wrote them
    (``fused``, ``foreach``), and loading them would switch implementations: a checkpoint from
    before Adam ran fused would resume on the per-tensor loop. They also carry the learning rate
    the run had when it saved, and the config is what says the learning rate: a run resumed with
    ``resume --force`` after its ``lr`` was edited continues with the new one (nothing changes
    the rate during a run, so an unedited resume loads the same value)."""
    flags = {k: optimizer.defaults[k] for k in ("fused", "foreach") if k in optimizer.defaults}
    groups = [{**saved, **flags, "lr": now["lr"]}
              for saved, now in zip(state["param_groups"], optimizer.param_groups, strict=True)]
    # before loading, so that torch places the state (Adam's step) as this implementation wants
    optimizer.load_state_dict({**state, "param_groups": groups})
