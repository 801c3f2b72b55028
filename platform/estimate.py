"""How much a config asks for, estimated before anything is built, and refused when it cannot fit.

Two steps, both on the driver and both cheap:

* :func:`check_graph` reads the graph's size off the generator's parameters (nodes, edges and
  the steps its construction takes) without building it, so ``complete_graph`` with n = 1e9 is
  an error in microseconds instead of 14 GB later.
* :func:`check_population` builds each distinct agent model on PyTorch's ``meta`` device
  (shapes without storage) to count parameters, and adds gradients, optimiser state and a
  bound on one round's activations, per agent and per actor.

The figures are deliberately generous upper bounds (docs/config.md#resource-estimate): they
exist to refuse the absurd in a second with the numbers in the message, not to plan capacity.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from neurocomm.platform.errors import ConfigError

MB = 2**20
GB = 2**30
# networkx keeps dicts of dicts: measured ~140 B per edge for a bare complete graph, more with
# attributes; the build holds up to three copies (generator, undirected view, relabelled copy)
BYTES_PER_NODE = 600
BYTES_PER_EDGE = 400
GRAPH_COPIES = 3
MAX_GRAPH_STEPS = 5e7  # Python-level steps a generator may take (~ a minute of work)
ACTOR_BYTES = 300 * MB  # one Ray worker process with torch imported
DRIVER_BYTES = 500 * MB
STANDALONE_BYTES_PER_AGENT = 1024  # the naming game's per-agent inventory, generously
USABLE_FRACTION = 0.8  # of this machine's memory


@dataclass(frozen=True)
class GraphSize:
    """Upper bounds for a generator's graph: nodes, undirected edges, construction steps."""

    nodes: float
    edges: float
    steps: float

    @property
    def bytes(self) -> float:
        return GRAPH_COPIES * (BYTES_PER_NODE * self.nodes + BYTES_PER_EDGE * self.edges)


def _count(value: Any) -> float | None:
    """A node count given as an integer or as a container of nodes."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        try:
            return float(value)
        except OverflowError:
            return math.inf
    if isinstance(value, list | tuple | range | set | dict):
        return float(len(value))
    return None


def _power(base: float, exponent: float) -> float:
    """base ** exponent without building a huge integer (inf past 2**62)."""
    if base <= 1:
        return max(base, 0.0)
    return math.inf if exponent * math.log2(base) > 62 else float(base) ** exponent


def _dense(n: float) -> GraphSize:
    return GraphSize(n, n * (n - 1) / 2, n * n / 2)


def _sparse(n: float, edges: float) -> GraphSize:
    return GraphSize(n, edges, n + edges)


def _sbm(p: dict[str, Any]) -> GraphSize:
    sizes = [float(s) for s in p.get("sizes", []) if isinstance(s, int | float)]
    n = sum(sizes)
    flat = [x for row in p.get("p", []) if isinstance(row, list | tuple) for x in row]
    prob = max([float(x) for x in flat if isinstance(x, int | float)] or [1.0])
    edges = prob * n * n / 2
    return GraphSize(n, edges, n * n / 2 if p.get("sparse") is False else n + edges)


def _grid(dim: Any) -> GraphSize:
    counts = [_count(d) or 1.0 for d in (dim if isinstance(dim, list | tuple) else [dim])]
    n = math.prod(counts)
    return _sparse(n, n * len(counts))


def _n(p: dict[str, Any], name: str = "n") -> float:
    return _count(p.get(name)) or 0.0


# Sizes by generator, from its keyword parameters (what topology.params holds).
_SIZES: dict[str, Callable[[dict[str, Any]], GraphSize]] = {
    "complete_graph": lambda p: _dense(_n(p)),
    "turan_graph": lambda p: _dense(_n(p)),
    "cycle_graph": lambda p: _sparse(_n(p), _n(p)),
    "path_graph": lambda p: _sparse(_n(p), _n(p)),
    "star_graph": lambda p: _sparse(_n(p) + 1, _n(p)),
    "wheel_graph": lambda p: _sparse(_n(p), 2 * _n(p)),
    "empty_graph": lambda p: _sparse(_n(p), 0),
    "ladder_graph": lambda p: _sparse(2 * _n(p), 3 * _n(p)),
    "circular_ladder_graph": lambda p: _sparse(2 * _n(p), 3 * _n(p)),
    "complete_bipartite_graph": lambda p: GraphSize(
        _n(p, "n1") + _n(p, "n2"), _n(p, "n1") * _n(p, "n2"), _n(p, "n1") * _n(p, "n2")),
    "barbell_graph": lambda p: GraphSize(
        2 * _n(p, "m1") + _n(p, "m2"), _n(p, "m1") ** 2 + _n(p, "m2"), _n(p, "m1") ** 2),
    "lollipop_graph": lambda p: GraphSize(
        _n(p, "m") + _n(p), _n(p, "m") ** 2 / 2 + _n(p), _n(p, "m") ** 2),
    "watts_strogatz_graph": lambda p: _sparse(_n(p), _n(p) * _n(p, "k") / 2),
    "newman_watts_strogatz_graph": lambda p: _sparse(_n(p), _n(p) * _n(p, "k")),
    "connected_watts_strogatz_graph": lambda p: GraphSize(
        _n(p), _n(p) * _n(p, "k") / 2, (_n(p, "tries") or 100) * _n(p) * (1 + _n(p, "k"))),
    "barabasi_albert_graph": lambda p: _sparse(_n(p), _n(p) * _n(p, "m")),
    "dual_barabasi_albert_graph": lambda p: _sparse(_n(p), _n(p) * max(_n(p, "m1"), _n(p, "m2"))),
    "extended_barabasi_albert_graph": lambda p: _sparse(_n(p), 2 * _n(p) * _n(p, "m")),
    "powerlaw_cluster_graph": lambda p: _sparse(_n(p), _n(p) * _n(p, "m")),
    "erdos_renyi_graph": lambda p: GraphSize(_n(p), float(p.get("p", 1)) * _n(p) ** 2 / 2, _n(p) ** 2),
    "gnp_random_graph": lambda p: GraphSize(_n(p), float(p.get("p", 1)) * _n(p) ** 2 / 2, _n(p) ** 2),
    "binomial_graph": lambda p: GraphSize(_n(p), float(p.get("p", 1)) * _n(p) ** 2 / 2, _n(p) ** 2),
    "fast_gnp_random_graph": lambda p: _sparse(_n(p), float(p.get("p", 1)) * _n(p) ** 2 / 2),
    "gnm_random_graph": lambda p: _sparse(_n(p), _n(p, "m")),
    "dense_gnm_random_graph": lambda p: GraphSize(_n(p), _n(p, "m"), _n(p) ** 2 / 2),
    "random_regular_graph": lambda p: _sparse(_n(p), _n(p) * _n(p, "d") / 2),
    "stochastic_block_model": _sbm,
    "grid_2d_graph": lambda p: _sparse(_n(p, "m") * _n(p), 2 * _n(p, "m") * _n(p)),
    "grid_graph": lambda p: _grid(p.get("dim", [])),
    "hypercube_graph": lambda p: _sparse(_power(2, _n(p)), _n(p) * _power(2, _n(p)) / 2),
    "balanced_tree": lambda p: _sparse(_power(max(_n(p, "r"), 2), _n(p, "h") + 1),
                                       _power(max(_n(p, "r"), 2), _n(p, "h") + 1)),
    "full_rary_tree": lambda p: _sparse(_n(p), _n(p)),
    "random_geometric_graph": lambda p: GraphSize(_n(p), _n(p) ** 2 / 2, _n(p) ** 2 / 2),
}


def _fallback(params: dict[str, Any]) -> GraphSize:
    """Unknown generator: every integer (or container length) may be a node count, and any pair
    of nodes may be an edge."""
    counts: list[float] = []

    def walk(value: Any) -> None:
        c = _count(value)
        if c is not None:
            counts.append(c)
        if isinstance(value, list | tuple):
            for v in value:
                walk(v)

    for value in params.values():
        walk(value)
    n = max(counts, default=0.0)
    return _dense(n)


def graph_size(generator: str, params: dict[str, Any]) -> GraphSize:
    try:
        return _SIZES.get(generator, _fallback)(params)
    except (TypeError, ValueError, OverflowError):
        # parameters the generator itself will reject; bound them the generic way
        return _fallback(params)


def machine_memory() -> int:
    """Bytes of memory this process may use: physical memory, or a container's limit if lower."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for limit_file in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(limit_file).read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            total = min(total, int(text))
    return int(total)


def fmt_bytes(n: float) -> str:
    """``~3.2 GB``: an estimate, or the fact that it does not even fit in 64 bits."""
    if not math.isfinite(n) or n >= 2**63:
        return "more than 2^63 bytes"
    return f"~{n / GB:.3g} GB" if n >= GB else f"~{n / MB:.0f} MB"


def _fmt_count(x: float) -> str:
    return f"{x:.3g}" if math.isfinite(x) and x < 2**62 else "more than 2^62"


def _budget(memory: int | None) -> tuple[float, str]:
    total = memory if memory is not None else machine_memory()
    return USABLE_FRACTION * total, f"{fmt_bytes(total)} on this machine"


def check_graph(generator: str, params: dict[str, Any], memory: int | None = None) -> GraphSize:
    """The generator's size bounds; ConfigError when building it could not fit or finish."""
    bad = [k for k, v in params.items() if isinstance(v, float) and not math.isfinite(v)]
    if bad:
        raise ConfigError(f"{params[bad[0]]!r} is not a finite number", path=f"topology.params.{bad[0]}")
    size = graph_size(generator, params)
    budget, have = _budget(memory)
    what = (f"{generator} would have ~{_fmt_count(size.nodes)} nodes and "
            f"~{_fmt_count(size.edges)} edges")
    if size.bytes > budget:
        raise ConfigError(f"{what}, needing {fmt_bytes(size.bytes)} to build; {have}",
                          path="topology.params")
    if size.steps > MAX_GRAPH_STEPS:
        hint = "; fast_gnp_random_graph builds sparse random graphs in O(n + edges)" if (
            generator in ("erdos_renyi_graph", "gnp_random_graph", "binomial_graph")) else ""
        raise ConfigError(f"{what}, taking ~{_fmt_count(size.steps)} steps to build "
                          f"(at most {MAX_GRAPH_STEPS:.0e}){hint}", path="topology.params")
    return size


def check_standalone(n_agents: float, memory: int | None = None) -> None:
    budget, have = _budget(memory)
    need = n_agents * STANDALONE_BYTES_PER_AGENT + DRIVER_BYTES
    if need > budget:
        raise ConfigError(f"{_fmt_count(n_agents)} agents need {fmt_bytes(need)}; {have}",
                          path="topology.params.n")


@dataclass(frozen=True)
class AgentEstimate:
    """One kind of agent: where it is configured, its size, and its memory per round."""

    path: str  # the config path of its spec, e.g. population.groups[1]
    parameters: float
    hidden_size: float
    bytes: float  # weights, gradients, optimiser state and one round's activations
    activation_bytes: float
    culprit: str = ""  # the config path whose value makes this agent big


@dataclass(frozen=True)
class PopulationEstimate:
    n_agents: int
    n_actors: int
    per_actor_bytes: float
    total_bytes: float
    largest: AgentEstimate

    def line(self) -> str:
        a = self.largest
        return (f"{fmt_bytes(self.total_bytes)} for {self.n_agents} agents in {self.n_actors} "
                f"processes (largest agent: {_fmt_count(a.parameters)} parameters, "
                f"{fmt_bytes(a.bytes)} with gradients, optimiser state and "
                f"{fmt_bytes(a.activation_bytes)} of activations; "
                f"{fmt_bytes(self.per_actor_bytes)} per process)")


def _meta_model(cls: Any, params: Any, game: Any, channel: Any) -> tuple[float, float] | None:
    """(parameters, hidden size) of a model built without storage; inf when even its shapes
    overflow; None when the model cannot be built on the meta device (then it is not estimated)."""
    import torch

    try:
        with torch.device("meta"):
            model = cls(params, game=game, channel=channel)
    except RuntimeError as err:
        if "overflow" in str(err) or "too large" in str(err):
            return math.inf, math.inf
        return None
    except Exception:  # noqa: BLE001 - a plug-in that needs real storage to build
        return None
    tensors = [*model.parameters(), *model.buffers()]
    count = float(sum(t.numel() for t in tensors))
    return count, float(getattr(model, "hidden_size", 0) or 0)


def _specs(cfg: Any) -> Iterable[tuple[str, Any]]:
    """(config path, AgentSpec) for the default spec and each group (agents share a spec)."""
    pop = cfg.population
    yield "population.agent", pop.agent
    for i, group in enumerate(pop.groups):
        yield f"population.groups[{i}]", pop.spec_for(group.nodes[0])


def estimate_population(cfg: Any, n_agents: int, max_degree: int) -> PopulationEstimate:
    """Memory of the population ``cfg`` describes on a graph of ``n_agents`` nodes."""
    from neurocomm.platform import registry
    from neurocomm.platform.interfaces import ChannelSpec
    from neurocomm.platform.typed import from_mapping

    scenario_cls = registry.resolve("scenarios", cfg.scenario.name)
    scenario = scenario_cls(from_mapping(scenario_cls.Params, dict(cfg.scenario.params),
                                         "scenario.params"))
    game = scenario.spec
    pop, training = cfg.population, cfg.training
    channel = ChannelSpec(pop.vocab_size, pop.max_len)
    # state per parameter: weights + gradient, and Adam's two moments
    per_param = 4.0 * (2 + (2 if training.optimizer == "adam" else 0))
    # one round: the agent speaks on each out-edge and listens on each in-edge, batched
    rows = float(max(training.batch_size, cfg.logging.eval_games)) * 2 * max(max_degree, 1)
    estimates = []
    for path, spec in _specs(cfg):
        cls = registry.resolve("models", spec.model)
        params = from_mapping(cls.Params, dict(spec.params), f"{path}.params")
        built = _meta_model(cls, params, game, channel)
        if built is None:
            continue
        count, hidden = built
        # per row and message step: a few recurrent-state-sized tensors, the logits, and the
        # perceived observation (generous: gates, relaxed symbols, saved for backward)
        width = 8 * hidden + 4 * pop.vocab_size + 4 * game.obs_dim
        activation = 4.0 * rows * (pop.max_len + 1) * width
        # blame the value furthest above an ordinary one
        widths = {f"{path}.params": hidden, "population.vocab_size": float(pop.vocab_size),
                  "scenario.params": float(game.obs_dim)}
        culprit = max(widths, key=lambda k: widths[k])
        if activation > per_param * count:
            factors = {culprit: widths[culprit] / 1e3, "population.max_len": pop.max_len / 32,
                       "training.batch_size": training.batch_size / 1e4,
                       "logging.eval_games": cfg.logging.eval_games / 1e4}
            culprit = max(factors, key=lambda k: factors[k])
        estimates.append(AgentEstimate(path, count, hidden, per_param * count + activation,
                                       activation, culprit))
    if not estimates:
        estimates.append(AgentEstimate("population.agent", 0.0, 0.0, 0.0, 0.0))
    largest = max(estimates, key=lambda e: e.bytes)
    per_agent = largest.bytes
    if cfg.runtime.backend == "ray":
        per_actor_agents = min(cfg.runtime.agents_per_actor, n_agents)
        n_actors = math.ceil(n_agents / per_actor_agents)
        per_actor = ACTOR_BYTES + per_actor_agents * per_agent
    else:
        n_actors, per_actor = 1, n_agents * per_agent
    total = DRIVER_BYTES + n_actors * ACTOR_BYTES * (cfg.runtime.backend == "ray") + n_agents * per_agent
    return PopulationEstimate(n_agents, n_actors, per_actor, total, largest)


def _culprit(cfg: Any, est: PopulationEstimate) -> str:
    """The config path that the largest term of the estimate comes from."""
    a = est.largest
    agents = est.n_agents * (ACTOR_BYTES if cfg.runtime.backend == "ray" else 0)
    if agents >= a.bytes * est.n_agents or not a.culprit:
        return "topology"
    return a.culprit


def check_population(cfg: Any, n_agents: int, max_degree: int, *, memory: int | None = None,
                     where: str | None = None) -> PopulationEstimate:
    """The population's estimate; ConfigError when it cannot fit ``memory`` bytes (default: this
    machine) or when one process could not hold its share."""
    budget, have = _budget(memory)
    if where is not None:
        have = where
    store = cfg.runtime.object_store_mb * MB
    if cfg.runtime.backend == "ray" and cfg.runtime.address is None and store > budget:
        raise ConfigError(f"an object store of {fmt_bytes(store)} cannot fit; {have}",
                          path="runtime.object_store_mb")
    est = estimate_population(cfg, n_agents, max_degree)
    if not (est.total_bytes <= budget and est.per_actor_bytes <= budget):
        raise ConfigError(f"the population needs {est.line()}; {have}", path=_culprit(cfg, est))
    return est


_ALLOCATION_SIGNS = ("can't allocate memory", "out of memory", "DefaultCPUAllocator",
                     "running low on memory", "OutOfMemoryError")


def allocation_failure(err: BaseException) -> str | None:
    """One line saying that building or running failed for lack of memory, or None when ``err``
    is something else (a torch allocation RuntimeError, a MemoryError, or either inside a Ray
    error)."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, MemoryError):
            return "not enough memory (MemoryError); lower the sizes or the population"
        text = str(current)
        for sign in _ALLOCATION_SIGNS:
            at = text.find(sign)
            if at >= 0:
                line_start = text.rfind("\n", 0, at) + 1
                line_end = text.find("\n", at)
                detail = " ".join(text[line_start: line_end if line_end >= 0 else None].split())
                return f"not enough memory: {detail[:300]}"
        current = current.__cause__ or current.__context__ or getattr(current, "cause", None)
    return None
