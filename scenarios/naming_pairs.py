"""Who talks to whom in the naming game: the interaction stream and its conflict-free levels.

The stream is fixed by uniforms alone. Interaction ``k`` uses one row ``u[k] = (u0, u1, u2)``
of ``rng.random((count, 3))``; because numpy's ``Generator.random`` spends one 64-bit draw per
double, drawing the stream in chunks gives the same rows as drawing it at once, so the engine's
internal chunking never changes a run. ``u0`` and ``u1`` pick the pair (:meth:`Adjacency.pairs`),
``u2`` picks the speaker's word: position ``floor(u2 * inventory_size)`` of its inventory, kept
in insertion order.

:func:`levels` walks a chunk as a sequence of levels: sets of interactions with no agent in
common, each level after all the earlier interactions of its agents. Levels played one after
another, each as array work, give exactly the sequential result.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import networkx as nx
import numpy as np
from scipy.sparse import csr_array
from scipy.sparse.csgraph import connected_components

Order = Literal["direct", "reverse", "edge"]
ORDERS: tuple[Order, ...] = ("direct", "reverse", "edge")


def _index(u: np.ndarray, size: np.ndarray | int) -> np.ndarray:
    """floor(u * size), clipped below ``size`` (a guard against rounding up at u close to 1)."""
    return np.minimum((u * size).astype(np.int64), np.asarray(size, dtype=np.int64) - 1)


@dataclass(frozen=True, eq=False)
class Adjacency:
    """An undirected graph on agents 0..n-1 as CSR arrays; ``indptr is None`` is the complete graph.

    Neighbour lists are sorted. The complete graph needs no arrays, so it scales to sizes whose
    networkx graph would not fit in memory (n = 10,000 is 5e7 edges).
    """

    n: int
    indptr: np.ndarray | None = None
    indices: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.n < 2:
            raise ValueError("n: the naming game needs at least 2 agents")
        if (self.indptr is None) != (self.indices is None):
            raise ValueError("indptr: give both indptr and indices, or neither (complete graph)")
        if self.indptr is not None:
            degree = np.diff(self.indptr)
            if len(degree) != self.n:
                raise ValueError(f"indptr: expected {self.n + 1} entries, got {len(self.indptr)}")
            if (degree == 0).any():
                raise ValueError(f"nodes {np.flatnonzero(degree == 0)[:10].tolist()} have no neighbour")

    @classmethod
    def complete(cls, n: int) -> Adjacency:
        return cls(n)

    @classmethod
    def from_graph(cls, graph: nx.Graph) -> Adjacency:
        """Nodes must be 0..n-1 and the graph undirected; self-loops are ignored."""
        if graph.is_directed():
            raise ValueError("graph: the naming game needs an undirected graph")
        n = graph.number_of_nodes()
        if set(graph.nodes) != set(range(n)):
            raise ValueError("graph: nodes must be 0..n-1 (relabel with nx.convert_node_labels_to_integers)")
        loops = nx.number_of_selfloops(graph)
        if graph.number_of_edges() - loops == n * (n - 1) // 2:
            return cls.complete(n)
        uv = np.fromiter((x for e in graph.edges() for x in e), dtype=np.int64).reshape(-1, 2)
        uv = uv[uv[:, 0] != uv[:, 1]]
        src = np.concatenate([uv[:, 0], uv[:, 1]])
        dst = np.concatenate([uv[:, 1], uv[:, 0]])
        order = np.lexsort((dst, src))
        indptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(src, minlength=n), out=indptr[1:])
        return cls(n, indptr, dst[order])

    @property
    def is_complete(self) -> bool:
        return self.indptr is None

    def is_connected(self) -> bool:
        if self.indptr is None:
            return True
        data = np.ones(len(self.indices), dtype=np.int8)
        matrix = csr_array((data, self.indices, self.indptr), shape=(self.n, self.n))
        return connected_components(matrix, directed=False, return_labels=False) == 1

    def neighbour(self, node: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Neighbour number ``floor(u * degree)`` (sorted lists) of each ``node``."""
        if self.indptr is None:
            j = _index(u, self.n - 1)
            return j + (j >= node)
        start = self.indptr[node]
        return self.indices[start + _index(u, self.indptr[node + 1] - start)]

    def pairs(self, order: Order, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(speakers, hearers) for uniforms ``u`` of shape (count, >= 2).

        direct: speaker ``floor(u0 n)``, hearer its neighbour by ``u1``. reverse: the same with
        the roles swapped. edge: directed edge number ``floor(u0 * 2|E|)`` in CSR order (every
        undirected edge listed both ways, so direction is uniform too); ``u1`` is unused.
        """
        u0, u1 = u[:, 0], u[:, 1]
        if order == "edge":
            if self.indptr is None:
                q = _index(u0, self.n * (self.n - 1))
                speaker, j = np.divmod(q, self.n - 1)
                return speaker, j + (j >= speaker)
            q = _index(u0, len(self.indices))
            return np.searchsorted(self.indptr, q, side="right") - 1, self.indices[q]
        if order not in ORDERS:
            raise ValueError(f"order: expected one of {', '.join(ORDERS)}, got {order!r}")
        first = _index(u0, self.n)
        second = self.neighbour(first, u1)
        return (first, second) if order == "direct" else (second, first)


def links(speaker: np.ndarray, hearer: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(previous, next), each (count, 2): for every interaction, the index of the previous and
    of the next interaction of its speaker (column 0) and of its hearer (column 1) within these
    arrays, or -1 where there is none."""
    m = len(speaker)
    agents = np.empty(2 * m, dtype=np.int64)
    agents[0::2], agents[1::2] = speaker, hearer
    order = np.argsort(agents, kind="stable")
    same = agents[order[1:]] == agents[order[:-1]]
    before, after = order[:-1][same], order[1:][same]
    prev = np.full(2 * m, -1, dtype=np.int64)
    nxt = np.full(2 * m, -1, dtype=np.int64)
    prev[after], nxt[before] = before // 2, after // 2
    return prev.reshape(m, 2), nxt.reshape(m, 2)


def levels(prev: np.ndarray, nxt: np.ndarray) -> Iterator[np.ndarray]:
    """The interactions level by level, each level's indices sorted.

    Level 0 holds the interactions with no predecessor; an interaction joins level l + 1 once
    its last predecessor is in level l. Only successors of the current level are examined,
    so the whole walk is O(count).
    """
    m = len(prev)
    done = np.zeros(m + 1, dtype=bool)
    done[m] = True  # "no predecessor" points here
    prev = np.where(prev < 0, m, prev)
    current = np.flatnonzero((prev == m).all(axis=1))
    while current.size:
        yield current
        done[current] = True
        candidates = np.sort(nxt[current].ravel())  # -1s first; an interaction shows up twice
        keep = candidates >= 0  # when both its predecessors are in this level
        keep[1:] &= candidates[1:] != candidates[:-1]
        candidates = candidates[keep]
        current = candidates[done[prev[candidates]].all(axis=1)]
