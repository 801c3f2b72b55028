"""The interaction graph: any networkx generator by name, or a graph file.

Nodes are relabelled 0..N-1 (the original label is kept as the node attribute ``label``);
agent ``i`` lives on node ``i``. Undirected graphs talk both ways along every edge. Edge weights
(attribute ``topology.weight``, default 1) set how often a pair is sampled when
``training.edges_per_round`` is given.
"""

from __future__ import annotations

import inspect
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np

from neurocomm.platform.config import TopologyConfig
from neurocomm.platform.errors import ConfigError
from neurocomm.platform.estimate import (
    BYTES_PER_EDGE,
    GRAPH_COPIES,
    USABLE_FRACTION,
    check_graph,
    fmt_bytes,
    machine_memory,
)

Edge = tuple[int, int]


def _generator(name: str) -> Any:
    fn = getattr(nx, name, None)
    module = getattr(fn, "__module__", "") or ""
    if not callable(fn) or not module.startswith("networkx.generators"):
        raise ConfigError(
            f"{name!r} is not a networkx graph generator; use one from networkx.generators, "
            "e.g. complete_graph, cycle_graph, watts_strogatz_graph, barabasi_albert_graph, "
            "erdos_renyi_graph, stochastic_block_model, grid_2d_graph, random_regular_graph",
            path="topology.generator",
        )
    return fn


def _accepts(fn: Any, name: str) -> bool:
    target = inspect.unwrap(fn)
    try:
        return name in inspect.signature(target).parameters
    except (TypeError, ValueError):
        return False


def _read_file(cfg: TopologyConfig) -> nx.Graph:
    path = Path(cfg.file or "")
    if not path.is_file():
        raise ConfigError(f"graph file {str(path)!r} not found", path="topology.file")
    size = path.stat().st_size
    # every edge takes at least 4 bytes of file ("1 2\n"), and a few hundred bytes once read
    need = GRAPH_COPIES * BYTES_PER_EDGE * size / 4
    if need > USABLE_FRACTION * machine_memory():
        raise ConfigError(f"graph file {str(path)!r} ({fmt_bytes(size)}) may need up to "
                          f"{fmt_bytes(need)} to read; {fmt_bytes(machine_memory())} on this machine",
                          path="topology.file")
    fmt = cfg.format
    if fmt == "auto":
        fmt = "graphml" if path.suffix.lower() in (".graphml", ".xml") else "edgelist"
    create = nx.DiGraph if cfg.directed else nx.Graph
    try:
        if fmt == "graphml":
            graph = nx.read_graphml(path)
        else:
            lines = path.read_text().splitlines()
            rows = [ln.split() for ln in lines if ln.strip() and not ln.startswith("#")]
            graph = create()
            for i, row in enumerate(rows):
                if len(row) not in (2, 3):
                    raise ValueError(f"line {i + 1}: expected 'u v' or 'u v weight'")
                attrs = {cfg.weight: float(row[2])} if len(row) == 3 else {}
                graph.add_edge(row[0], row[1], **attrs)
    except Exception as err:  # noqa: BLE001 - any failure to parse a user's file is a config error
        # (malformed XML raises ParseError, a bad attribute type KeyError, ...)
        reason = " ".join(str(err).split()) or type(err).__name__
        raise ConfigError(f"cannot read graph file {str(path)!r}: {type(err).__name__}: {reason}",
                          path="topology.file") from None
    return graph


_PROBABILITY_PARAMS = ("p", "q", "prob", "probability", "p_in", "p_out")


def _check_probabilities(params: dict[str, Any]) -> None:
    """Generators silently clip a probability above 1; a config that says 1.5 is a mistake."""
    for name in _PROBABILITY_PARAMS:
        if name not in params:
            continue
        values = np.asarray(params[name], dtype=object).ravel()
        for v in values:
            if not isinstance(v, int | float) or isinstance(v, bool) or not 0.0 <= v <= 1.0:
                raise ConfigError(
                    f"{v!r} is not a probability; allowed: numbers in [0, 1]",
                    path=f"topology.params.{name}",
                )


def build_graph(cfg: TopologyConfig, seed: int) -> nx.Graph:
    """The graph the config describes, nodes relabelled 0..N-1, validated."""
    if cfg.file is not None:
        graph = _read_file(cfg)
    else:
        fn = _generator(cfg.generator or "")
        kwargs = dict(cfg.params)
        _check_probabilities(kwargs)
        check_graph(cfg.generator or "", kwargs)  # before anything is allocated
        if _accepts(fn, "seed") and "seed" not in kwargs:
            kwargs["seed"] = seed
        try:
            graph = fn(**kwargs)
        except (TypeError, ValueError, nx.NetworkXException, IndexError, KeyError) as err:
            raise ConfigError(
                f"{cfg.generator}({_fmt(kwargs)}) failed: {err}", path="topology.params"
            ) from None
        if not isinstance(graph, nx.Graph):
            raise ConfigError(f"{cfg.generator} did not return a graph", path="topology.generator")
    if graph.is_multigraph():
        graph = nx.DiGraph(graph) if graph.is_directed() else nx.Graph(graph)
    if cfg.directed and not graph.is_directed():
        raise ConfigError(
            "the graph is undirected; set topology.directed: false, or ask the generator for a "
            "directed graph (e.g. params.directed: true)",
            path="topology.directed",
        )
    if not cfg.directed and graph.is_directed():
        graph = graph.to_undirected()
    graph.remove_edges_from(list(nx.selfloop_edges(graph)))
    order = sorted(graph.nodes, key=lambda n: (str(type(n)), n) if not isinstance(n, tuple) else ("t", n))
    mapping = {node: i for i, node in enumerate(order)}
    relabelled = nx.relabel_nodes(graph, mapping, copy=True)
    for node, i in mapping.items():
        relabelled.nodes[i]["label"] = str(node)
    for u, v, data in relabelled.edges(data=True):
        w = data.get(cfg.weight, 1.0)
        if isinstance(w, bool) or not isinstance(w, int | float) or not 0 < w < math.inf:
            raise ConfigError(
                f"edge ({u}, {v}) has weight {w!r}; weights must be > 0 and finite",
                path="topology.weight",
            )
        data["weight"] = float(w)
    if relabelled.number_of_nodes() < 2:
        raise ConfigError("the graph needs at least 2 nodes", path="topology")
    isolated = sorted(nx.isolates(relabelled))
    if isolated:
        raise ConfigError(
            f"isolated nodes {isolated[:10]} have no partner; every agent needs at least one edge",
            path="topology",
        )
    return relabelled


def _fmt(kwargs: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in kwargs.items())


@dataclass
class Topology:
    """Who talks to whom, and how often, at each round."""

    graph: nx.Graph
    changes: list[tuple[int, list[Edge], list[Edge]]] = field(default_factory=list)

    @property
    def n(self) -> int:
        return self.graph.number_of_nodes()

    @property
    def directed(self) -> bool:
        return self.graph.is_directed()

    def graph_at(self, round_: int) -> nx.Graph:
        """The graph in force at ``round_`` (schedule applied)."""
        graph = self.graph
        for at, add, remove in self.changes:
            if round_ >= at:
                graph = graph.copy()
                graph.remove_edges_from(remove)
                graph.add_edges_from(add, weight=1.0)
        return graph

    def talk_edges(self, round_: int = 0) -> tuple[list[Edge], np.ndarray]:
        """Sorted directed (speaker, listener) pairs and their weights."""
        graph = self.graph_at(round_)
        pairs: dict[Edge, float] = {}
        for u, v, data in graph.edges(data=True):
            pairs[(u, v)] = data.get("weight", 1.0)
            if not graph.is_directed():
                pairs[(v, u)] = data.get("weight", 1.0)
        edges = sorted(pairs)
        return edges, np.array([pairs[e] for e in edges], dtype=np.float64)

    def save(self, path: Path) -> None:
        data = nx.node_link_data(self.graph, edges="edges")
        data["schedule"] = [
            {"at_round": at, "add_edges": add, "remove_edges": rem} for at, add, rem in self.changes
        ]
        # A run directory's graph is read back on resume: a crash mid-write must leave the old
        # file or the new one, never half of one.
        from neurocomm.platform.rundir import atomic_write_text

        atomic_write_text(path, json.dumps(data, default=str))

    @classmethod
    def load(cls, path: Path) -> Topology:
        data = json.loads(path.read_text())
        schedule = data.pop("schedule", [])
        graph = nx.node_link_graph(data, edges="edges")
        changes = [
            (c["at_round"], [tuple(e) for e in c["add_edges"]], [tuple(e) for e in c["remove_edges"]])
            for c in schedule
        ]
        return cls(graph, changes)


def build_topology(cfg: TopologyConfig, seed: int) -> Topology:
    graph = build_graph(cfg, seed)
    n = graph.number_of_nodes()
    changes = []
    for i, change in enumerate(cfg.schedule):
        for name in ("add_edges", "remove_edges"):
            for e in getattr(change, name):
                if not all(0 <= x < n for x in e):
                    raise ConfigError(
                        f"edge {list(e)} names a node outside 0..{n - 1}",
                        path=f"topology.schedule[{i}].{name}",
                    )
        changes.append((change.at_round, [tuple(e) for e in change.add_edges],
                        [tuple(e) for e in change.remove_edges]))
    topology = Topology(graph, sorted(changes, key=lambda c: c[0]))
    _check_schedule(topology, cfg)
    return topology


def _check_schedule(topology: Topology, cfg: TopologyConfig) -> None:
    """Every graph the schedule makes keeps the promises of the first: no self-loops (the
    changes refuse them) and no agent left without a partner."""
    for at, _, _ in topology.changes:
        graph = topology.graph_at(at)
        isolated = sorted(nx.isolates(graph))
        if isolated:
            i = next(k for k, c in enumerate(cfg.schedule) if c.at_round == at)
            raise ConfigError(
                f"from round {at} on, nodes {isolated[:10]} have no partner; every agent needs "
                "at least one edge at every round",
                path=f"topology.schedule[{i}].remove_edges",
            )
