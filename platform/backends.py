"""Where the shards run: in this process (``local``) or as Ray actors (``ray``).

Both backends play a round through the same three phases (see shard.py). The Ray backend
submits a whole round, messages and feedback travelling actor to actor as ObjectRefs, and the
driver waits once for the small per-shard reports.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from neurocomm.platform.config import RunConfig
from neurocomm.platform.shard import AgentShard, Edge, ShardReport


def shard_layout(n_agents: int, per_shard: int) -> list[list[int]]:
    """Contiguous blocks of agent ids, so neighbours on ring-like graphs share a shard."""
    return [list(range(i, min(i + per_shard, n_agents))) for i in range(0, n_agents, per_shard)]


@dataclass
class RoundPlan:
    """Which shard sends what to which, for one round's edges."""

    produce: dict[int, list[tuple[int, list[Edge]]]]  # speaker shard → [(listener shard, edges)]
    listen: dict[int, list[tuple[int, list[Edge]]]]  # listener shard → [(speaker shard, edges)]
    active: list[int]  # shards that take part (they all step their optimisers)

    @classmethod
    def build(cls, edges: list[Edge], shard_of: dict[int, int]) -> RoundPlan:
        by_pair: dict[tuple[int, int], list[Edge]] = defaultdict(list)
        for edge in sorted(edges):
            by_pair[(shard_of[edge[0]], shard_of[edge[1]])].append(edge)
        produce: dict[int, list[tuple[int, list[Edge]]]] = defaultdict(list)
        listen: dict[int, list[tuple[int, list[Edge]]]] = defaultdict(list)
        for (src, dst), group in sorted(by_pair.items()):
            produce[src].append((dst, group))
            listen[dst].append((src, group))
        active = sorted(set(produce) | set(listen))
        return cls(dict(produce), dict(listen), active)


def _as_tuple(value: Any, n: int) -> tuple[Any, ...]:
    return (value,) if n == 1 else tuple(value)


def merge_reports(reports: list[ShardReport]) -> ShardReport:
    stats: dict[Edge, dict[str, float]] = defaultdict(dict)
    messages: list[dict[str, Any]] = []
    for report in reports:
        for edge, values in report.edge_stats.items():
            stats[edge].update(values)
        messages.extend(report.messages)
    return ShardReport(dict(stats), messages)


class LocalBackend:
    """All agents in this process: for debugging, tiny runs and exact reference results."""

    name = "local"

    def __init__(self, cfg: RunConfig, n_agents: int) -> None:
        self.layout = [list(range(n_agents))]
        self.shard = AgentShard(cfg, self.layout[0])

    def submit_round(self, round_: int, edges: list[Edge]) -> ShardReport:
        plan = RoundPlan.build(edges, {a: 0 for a in self.layout[0]})
        groups = [g for _, g in plan.produce.get(0, [])]
        wires = self.shard.produce(round_, groups) if groups else None
        feedback = self.shard.listen(round_, groups, wires) if groups else None
        return self.shard.learn(round_, *([feedback] if groups else []))

    def collect(self, pending: ShardReport) -> ShardReport:
        return pending

    def get_state(self) -> dict[int, Any]:
        return self.shard.get_state()

    def set_state(self, state: dict[int, Any]) -> None:
        self.shard.set_state(state)

    def placement(self) -> list[dict[str, Any]]:
        return [self.shard.where()]

    def close(self) -> None:
        pass


class RayBackend:
    """Shards as Ray actors (``runtime.agents_per_actor`` agents each)."""

    name = "ray"

    def __init__(self, cfg: RunConfig, n_agents: int) -> None:
        from neurocomm.platform.raysession import ensure_ray

        rt = cfg.runtime
        self.ray = ensure_ray(rt.address, object_store_mb=rt.object_store_mb)
        self.cfg = cfg
        self.layout = shard_layout(n_agents, rt.agents_per_actor)
        self.shard_of = {a: s for s, agents in enumerate(self.layout) for a in agents}
        self._actor_cls = self.ray.remote(AgentShard)
        self.actors = [self._start(i) for i in range(len(self.layout))]
        self.ray.get([a.ping.remote() for a in self.actors])

    def _options(self, index: int) -> dict[str, Any]:
        res = self.cfg.runtime.agent_resources
        per = len(self.layout[index])
        opts: dict[str, Any] = {
            "num_cpus": res.num_cpus * per,
            "num_gpus": res.num_gpus * per,
            "max_restarts": 0,
        }
        if res.memory_mb:
            opts["memory"] = res.memory_mb * per * 1024 * 1024
        if self.cfg.runtime.placement == "spread":
            opts["scheduling_strategy"] = "SPREAD"
        return opts

    def _start(self, index: int) -> Any:
        return self._actor_cls.options(**self._options(index)).remote(self.cfg, self.layout[index])

    def submit_round(self, round_: int, edges: list[Edge]) -> list[Any]:
        plan = RoundPlan.build(edges, self.shard_of)
        wires: dict[tuple[int, int], Any] = {}
        for src, dests in plan.produce.items():
            refs = self.actors[src].produce.options(num_returns=len(dests)).remote(
                round_, [g for _, g in dests]
            )
            for (dst, _), ref in zip(dests, _as_tuple(refs, len(dests))):
                wires[(src, dst)] = ref
        feedback: dict[int, list[Any]] = defaultdict(list)
        for dst, srcs in plan.listen.items():
            refs = self.actors[dst].listen.options(num_returns=len(srcs)).remote(
                round_, [g for _, g in srcs], *[wires[(src, dst)] for src, _ in srcs]
            )
            for (src, _), ref in zip(srcs, _as_tuple(refs, len(srcs))):
                feedback[src].append(ref)
        return [self.actors[s].learn.remote(round_, *feedback.get(s, [])) for s in plan.active]

    def collect(self, pending: list[Any]) -> ShardReport:
        return merge_reports(self.ray.get(pending))

    def get_state(self) -> dict[int, Any]:
        state: dict[int, Any] = {}
        for part in self.ray.get([a.get_state.remote() for a in self.actors]):
            state.update(part)
        return state

    def set_state(self, state: dict[int, Any]) -> None:
        self.ray.get([
            a.set_state.remote({i: state[i] for i in agents})
            for a, agents in zip(self.actors, self.layout)
        ])

    def placement(self) -> list[dict[str, Any]]:
        return self.ray.get([a.where.remote() for a in self.actors])

    def close(self) -> None:
        for actor in self.actors:
            self.ray.kill(actor)
        self.actors = []
        time.sleep(0)


def make_backend(cfg: RunConfig, n_agents: int) -> LocalBackend | RayBackend:
    if cfg.runtime.backend == "local":
        return LocalBackend(cfg, n_agents)
    return RayBackend(cfg, n_agents)
