"""Where the shards run: in this process (``local``) or as Ray actors (``ray``).

Both backends play a round through the same phases (see shard.py) and satisfy the ``Backend``
protocol of platform/interfaces.py. The Ray backend submits a whole round, messages and
feedback travelling actor to actor as ObjectRefs, and the driver waits once for the small
per-shard reports.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from neurocomm.platform import games
from neurocomm.platform.building import map_leaves
from neurocomm.platform.config import RunConfig
from neurocomm.platform.games import Edge
from neurocomm.platform.metrics import EdgeStats
from neurocomm.platform.shard import AgentShard, ShardReport


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


def _to_numpy(value: Any) -> Any:
    """Tensors as numpy arrays, for the way between actors: Ray ships an array as raw bytes,
    where a tensor goes through ``torch.save`` (about 3x the cost per message)."""
    return map_leaves(value, lambda t: t.numpy())


def _to_torch(value: Any) -> Any:
    """Back to tensors (the same dtypes and bits). Ray hands arrays over read-only, and torch
    wants memory it may write: those are copied (messages are small)."""
    return map_leaves(value, lambda a: torch.from_numpy(a if a.flags.writeable else a.copy()), np.ndarray)


def _ray_shard_class(base: type) -> type:
    """``base`` as a Ray actor class.

    A method called with ``num_returns=k`` must return k values, and one bare value (not a
    list of one) when k is 1; shards return a list. Messages and feedback cross between actors
    as numpy arrays where the shard takes and gives tensors (see ``_to_numpy``)."""

    def adapt(name: str, split: bool) -> Any:
        method = getattr(base, name)

        def call(self: Any, *args: Any) -> Any:
            out = method(self, *_to_torch(args))
            if not split:  # a ShardReport: numbers and logged games, no tensors
                return out
            out = _to_numpy(out)
            return out[0] if len(out) == 1 else tuple(out)

        call.__name__ = name
        return call

    split = {"produce": True, "listen": True, "eval_produce": True, "eval_listen": False, "learn": False}
    return type(f"Ray{base.__name__}", (base,), {n: adapt(n, k) for n, k in split.items()})


def merge_reports(reports: list[ShardReport]) -> ShardReport:
    stats: dict[Edge, EdgeStats] = defaultdict(EdgeStats)
    messages: list[Any] = []
    for report in reports:
        for edge, values in report.edge_stats.items():
            stats[edge].update(values)
        messages.extend(report.messages)
    return ShardReport(dict(stats), messages)


class LocalBackend:
    """All agents in this process: for debugging, tiny runs and exact reference results."""

    name = "local"

    def __init__(self, cfg: RunConfig, n_agents: int) -> None:
        self.cfg = cfg
        self.layout = [list(range(n_agents))]
        self.shard = AgentShard(cfg, self.layout[0])

    def submit_round(self, round_: int, edges: list[Edge]) -> ShardReport:
        groups = [g for _, g in RoundPlan.build(edges, {a: 0 for a in self.layout[0]}).produce.get(0, [])]
        if not groups:
            return self.shard.learn(round_)
        wires = self.shard.produce(round_, groups)
        tokens = self.shard.eval_produce(round_, groups) if games.evaluating(self.cfg, round_) else None
        feedback = self.shard.listen(round_, groups, *wires)
        reports = [self.shard.eval_listen(round_, groups, *tokens)] if tokens is not None else []
        return merge_reports([self.shard.learn(round_, *feedback), *reports])

    def collect(self, pending: ShardReport) -> ShardReport:
        return pending

    def get_state(self) -> dict[int, Any]:
        return self.shard.get_state()

    def replace_agents(self, generations: dict[int, int]) -> None:
        self.shard.replace_agents(generations)

    def set_state(self, state: dict[int, Any]) -> None:
        self.shard.set_state(state)

    def placement(self) -> list[dict[str, Any]]:
        return [self.shard.where()]

    def dead_shards(self) -> list[int]:
        return []

    def replace(self, shards: list[int]) -> None:
        """A fresh in-process shard (the caller restores its state)."""
        if shards:
            self.shard = AgentShard(self.cfg, self.layout[0])

    def close(self) -> None:
        pass


class ShardFailure(RuntimeError):
    """One or more shard actors died (process killed, node lost); the run can recover."""

    def __init__(self, shards: list[int], cause: BaseException) -> None:
        self.shards = shards
        self.cause = cause
        super().__init__(f"shards {shards} failed: {cause!r}")


def _is_actor_failure(err: BaseException) -> bool:
    from ray import exceptions as rex

    lost = (rex.RayActorError, rex.WorkerCrashedError, rex.NodeDiedError, rex.ObjectLostError,
            rex.LocalRayletDiedError)
    if isinstance(err, rex.RayTaskError):
        cause = getattr(err, "cause", None)
        return isinstance(cause, lost) or isinstance(err.as_instanceof_cause(), lost)
    return isinstance(err, lost)


def plan_resources(
    cfg: RunConfig, layout: list[list[int]], cluster: dict[str, float]
) -> list[dict[str, float]]:
    """Resources per shard actor; ConfigError when the population cannot fit the cluster."""
    from neurocomm.platform.errors import ConfigError

    res = cfg.runtime.agent_resources
    n_agents = sum(len(s) for s in layout)
    cpus = float(cluster.get("CPU", 0.0))
    gpus = float(cluster.get("GPU", 0.0))
    if res.num_cpus is None:
        # Ray's CPU count only gates scheduling; share what there is so every shard starts.
        usable = 0.95 * cpus * cfg.runtime.cpu_share
        share = max(0.01, min(1.0, int(100 * usable / max(len(layout), 1)) / 100))
        per_shard_cpu = [share] * len(layout)
    else:
        per_shard_cpu = [res.num_cpus * len(s) for s in layout]
    need_cpu = sum(per_shard_cpu)
    need_gpu = res.num_gpus * n_agents
    problems = []
    if need_cpu > cpus + 1e-9:
        problems.append(f"{need_cpu:g} CPUs ({n_agents} agents x {res.num_cpus:g}); the cluster has {cpus:g}")
    if need_gpu > gpus + 1e-9:
        problems.append(f"{need_gpu:g} GPUs ({n_agents} agents x {res.num_gpus:g}); the cluster has {gpus:g}")
    if res.memory_mb:
        mem_mb = float(cluster.get("memory", 0.0)) / 2**20
        need_mb = res.memory_mb * n_agents
        if need_mb > mem_mb:
            problems.append(f"{need_mb:.0f} MB of memory but the cluster has {mem_mb:.0f} MB")
    if cfg.runtime.address is not None and cluster.get("memory"):
        # joined a cluster: its memory, with one round's activations at their smallest
        from neurocomm.platform.estimate import check_population, fmt_bytes

        have = float(cluster["memory"])
        check_population(cfg, n_agents, 1, memory=int(have / 0.8),
                         where=f"the cluster has {fmt_bytes(have)} of memory")
    if problems:
        raise ConfigError(
            "the population does not fit the cluster: needs " + "; ".join(problems)
            + " (lower the per-agent resources, raise runtime.agents_per_actor, or add nodes)",
            path="runtime.agent_resources",
        )
    return [
        {"num_cpus": c, "num_gpus": res.num_gpus * len(s), "memory_mb": (res.memory_mb or 0) * len(s)}
        for c, s in zip(per_shard_cpu, layout)
    ]


class RayBackend:
    """Shards as Ray actors (``runtime.agents_per_actor`` agents each), managed as a group.

    The manager checks health after a failed round, replaces dead actors, and lets the runner
    restore every shard from the last checkpoint (a restarted actor reruns its constructor and
    has lost its state, and the others have moved on).
    """

    name = "ray"

    def __init__(self, cfg: RunConfig, n_agents: int) -> None:
        from neurocomm.platform.raysession import ensure_ray

        rt = cfg.runtime
        self.ray = ensure_ray(rt.address, object_store_mb=rt.object_store_mb)
        if rt.address is None:
            from neurocomm.platform.watchdog import guard_session

            guard_session(self.ray)  # its processes die with this driver, even on SIGKILL
        self.cfg = cfg
        self.layout = shard_layout(n_agents, rt.agents_per_actor)
        self.shard_of = {a: s for s, agents in enumerate(self.layout) for a in agents}
        self.resources = plan_resources(cfg, self.layout, self.ray.cluster_resources())
        self._actor_cls = self.ray.remote(_ray_shard_class(AgentShard))
        self._placement_group = self._make_placement_group()
        self.actors = [self._start(i) for i in range(len(self.layout))]
        self.restarts = 0
        self.ray.get([a.ping.remote() for a in self.actors])

    def _make_placement_group(self) -> Any:
        strategy = {"spread": "SPREAD", "pack": "PACK"}.get(self.cfg.runtime.placement)
        if strategy is None:
            return None
        from ray.util.placement_group import placement_group

        bundles = []
        for r in self.resources:
            bundle = {"CPU": r["num_cpus"]}
            if r["num_gpus"]:
                bundle["GPU"] = r["num_gpus"]
            bundles.append(bundle)
        pg = placement_group(bundles, strategy=strategy)
        self.ray.get(pg.ready(), timeout=120)
        return pg

    def _options(self, index: int) -> dict[str, Any]:
        r = self.resources[index]
        opts: dict[str, Any] = {"num_cpus": r["num_cpus"], "num_gpus": r["num_gpus"], "max_restarts": 0}
        if r["memory_mb"]:
            opts["memory"] = int(r["memory_mb"] * 2**20)
        if self._placement_group is not None:
            from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

            opts["scheduling_strategy"] = PlacementGroupSchedulingStrategy(
                placement_group=self._placement_group, placement_group_bundle_index=index
            )
        return opts

    def _start(self, index: int) -> Any:
        return self._actor_cls.options(**self._options(index)).remote(self.cfg, self.layout[index])

    def _send(self, method: str, round_: int, plan: RoundPlan) -> dict[tuple[int, int], Any]:
        """Each speaker shard's ``method`` (produce, eval_produce) → one ref per (src, dst)."""
        out: dict[tuple[int, int], Any] = {}
        for src, dests in plan.produce.items():
            refs = getattr(self.actors[src], method).options(num_returns=len(dests)).remote(
                round_, [g for _, g in dests]
            )
            for (dst, _), ref in zip(dests, _as_tuple(refs, len(dests))):
                out[(src, dst)] = ref
        return out

    def submit_round(self, round_: int, edges: list[Edge]) -> list[Any]:
        # An actor runs one caller's calls in the order they were submitted: the evaluation
        # calls see the weights of this round, before ``learn`` steps the optimisers.
        plan = RoundPlan.build(edges, self.shard_of)
        wires = self._send("produce", round_, plan)
        tokens = self._send("eval_produce", round_, plan) if games.evaluating(self.cfg, round_) else None
        feedback: dict[int, list[Any]] = defaultdict(list)
        for dst, srcs in plan.listen.items():
            refs = self.actors[dst].listen.options(num_returns=len(srcs)).remote(
                round_, [g for _, g in srcs], *[wires[(src, dst)] for src, _ in srcs]
            )
            for (src, _), ref in zip(srcs, _as_tuple(refs, len(srcs))):
                feedback[src].append(ref)
        evaluated = [] if tokens is None else [
            self.actors[dst].eval_listen.remote(round_, [g for _, g in srcs],
                                                *[tokens[(src, dst)] for src, _ in srcs])
            for dst, srcs in plan.listen.items()
        ]
        return [self.actors[s].learn.remote(round_, *feedback.get(s, [])) for s in plan.active] + evaluated

    def _get(self, refs: list[Any]) -> list[Any]:
        """``ray.get`` that turns a dead actor or node into a ShardFailure the run recovers from."""
        try:
            return self.ray.get(refs)
        except Exception as err:
            if _is_actor_failure(err):
                raise ShardFailure(self.dead_shards(), err) from err
            raise

    def collect(self, pending: list[Any]) -> ShardReport:
        return merge_reports(self._get(pending))

    def dead_shards(self, timeout: float = 30.0) -> list[int]:
        """Health check: the shards whose actor does not answer a ping."""
        refs = [a.ping.remote() for a in self.actors]
        ready, _ = self.ray.wait(refs, num_returns=len(refs), timeout=timeout)
        dead = {i for i, ref in enumerate(refs) if ref not in ready}
        for i, ref in enumerate(refs):
            if i in dead:
                continue
            try:  # ready, but maybe with the actor's death as its value
                self.ray.get(ref, timeout=0)
            except Exception:  # noqa: BLE001 - any failure to answer means the actor is gone
                dead.add(i)
        return sorted(dead)

    def replace(self, shards: list[int]) -> None:
        """Start fresh actors for ``shards`` (the caller restores their state)."""
        for i in shards:
            with contextlib.suppress(Exception):  # it is already gone
                self.ray.kill(self.actors[i])
            self.actors[i] = self._start(i)
            self.restarts += 1
        self._get([self.actors[i].ping.remote() for i in shards])

    def replace_agents(self, generations: dict[int, int]) -> None:
        """Turnover; queued before the next round's calls, so no wait is needed."""
        by_shard: dict[int, dict[int, int]] = defaultdict(dict)
        for agent_id, gen in generations.items():
            by_shard[self.shard_of[agent_id]][agent_id] = gen
        for shard, gens in by_shard.items():
            self.actors[shard].replace_agents.remote(gens)

    def get_state(self) -> dict[int, Any]:
        state: dict[int, Any] = {}
        for part in self._get([a.get_state.remote() for a in self.actors]):
            state.update(part)
        return state

    def set_state(self, state: dict[int, Any]) -> None:
        self._get([
            a.set_state.remote({i: state[i] for i in agents})
            for a, agents in zip(self.actors, self.layout)
        ])

    def placement(self) -> list[dict[str, Any]]:
        return self._get([a.where.remote() for a in self.actors])

    def close(self) -> None:
        for actor in self.actors:
            with contextlib.suppress(Exception):  # already gone
                self.ray.kill(actor)
        self.actors = []
        if self._placement_group is not None:
            from ray.util.placement_group import remove_placement_group

            remove_placement_group(self._placement_group)
            self._placement_group = None


def make_backend(cfg: RunConfig, n_agents: int) -> LocalBackend | RayBackend:
    if cfg.runtime.backend == "local":
        return LocalBackend(cfg, n_agents)
    return RayBackend(cfg, n_agents)
