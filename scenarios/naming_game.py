"""The minimal naming game (Steels 1995; Baronchelli et al. 2006), as a vectorised engine.

Each interaction picks a speaker and a hearer that are neighbours on the graph. A speaker with
an empty inventory invents a fresh word (integer ids 0, 1, 2, ... in order of invention), else
it utters one of its words uniformly at random. If the hearer knows the word, both drop every
other word (success); otherwise the hearer adds it (failure). The run stops at consensus (every
agent holds the same single word) or after ``max_interactions``.

The engine is exact: the interaction stream (see :mod:`neurocomm.scenarios.naming_pairs`) is
drawn in chunks, each chunk is split into levels of interactions with no agent in common, and
each level is played as numpy array work; the result equals playing the stream one interaction
at a time. Inventories are rows of an (agents, capacity) int32 array in insertion order, with a
count per agent; capacity doubles when a row fills. An agent invents only before its first
interaction (inventories never empty again), so at most N words are ever invented, and which
interactions invent is known from the stream alone: fresh ids follow the stream's order whatever
order the levels run in. N_w(t) and the success of every interaction are exact per interaction;
N_d is counted at each record (a scan of the inventories).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import networkx as nx
import numpy as np
import pyarrow as pa

from neurocomm.scenarios.naming_pairs import ORDERS, Adjacency, levels, links

# Interactions drawn and played per chunk: max(N, 1024). Chunks also end at every record.
# Bigger chunks amortise the per-chunk work (drawing, the sort in ``links``) over more
# interactions; each level still costs a fixed number of numpy calls.
_CHUNK_MIN = 1024


@dataclass(frozen=True)
class NamingGameParams:
    # direct: random speaker, then a random neighbour hears (Baronchelli's default);
    # reverse: random hearer, then a random neighbour speaks; edge: a uniform random edge,
    # random direction.
    order: Literal["direct", "reverse", "edge"] = "direct"
    max_interactions: int | None = None  # None: play until consensus (the graph must be connected)
    record_every: int | None = None  # None: every N interactions (one sweep)

    def __post_init__(self) -> None:
        if self.order not in ORDERS:
            raise ValueError(f"order: expected one of {', '.join(ORDERS)}, got {self.order!r}")
        if self.max_interactions is not None and self.max_interactions < 1:
            raise ValueError("max_interactions: must be >= 1 or null (until consensus)")
        if self.record_every is not None and self.record_every < 1:
            raise ValueError("record_every: must be >= 1 or null (every N interactions)")


@dataclass
class NamingGameResult:
    converged: bool
    t_conv: int | None  # interactions played when consensus was reached
    max_words: int  # peak of N_w(t), the total number of words
    t_max_words: int  # first t at which the peak was reached
    records: list[dict[str, Any]] = field(default_factory=list)
    wall_time: float = 0.0  # seconds


class Inventories:
    """Every agent's words in insertion order, played one chunk of interactions at a time.

    ``play_chunk`` takes any (speaker, hearer, u_word) sequence, so a test can inject its own.
    """

    def __init__(self, n: int, capacity: int = 8) -> None:
        self.words = np.zeros((n, capacity), dtype=np.int32)
        self.size = np.zeros(n, dtype=np.int64)
        self.n_words = 0
        self.n_invented = 0

    def n_distinct(self) -> int:
        """Words known to at least one agent: a gather of all N_w words, so once per record."""
        n, capacity = self.words.shape
        ends = np.cumsum(self.size)
        row_start = np.arange(n) * capacity - (ends - self.size)  # flat index minus rank
        flat = np.repeat(row_start, self.size) + np.arange(int(ends[-1]))
        return int(np.count_nonzero(np.bincount(self.words.ravel()[flat], minlength=1)))

    def words_of(self, agent: int) -> list[int]:
        return self.words[agent, : self.size[agent]].tolist()

    def _grow(self, needed: int) -> None:
        capacity = self.words.shape[1]
        while capacity < needed:
            capacity *= 2
        grown = np.zeros((self.words.shape[0], capacity), dtype=np.int32)
        grown[:, : self.words.shape[1]] = self.words
        self.words = grown

    def play_chunk(
        self, speaker: np.ndarray, hearer: np.ndarray, u_word: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Play a chunk; → (change of N_w, success) per interaction, in the chunk's order."""
        prev, nxt = links(speaker, hearer)
        invents = (prev[:, 0] < 0) & (self.size[speaker] == 0)
        fresh = np.full(len(speaker), -1, dtype=np.int64)
        fresh[invents] = self.n_invented + np.arange(int(invents.sum()))
        self.n_invented += int(invents.sum())
        delta, success = np.empty(len(speaker), dtype=np.int64), np.empty(len(speaker), dtype=bool)
        inventing = fresh if invents.any() else None
        for level in levels(prev, nxt):
            new = inventing[level] if inventing is not None else None
            delta[level], success[level] = self._play(speaker[level], hearer[level], u_word[level], new)
        self.n_words += int(delta.sum())
        return delta, success

    def _play(
        self, s: np.ndarray, h: np.ndarray, u: np.ndarray, new: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """One level: no agent appears twice, so every update below is a plain scatter.

        ``new`` holds the fresh word id of each interaction whose speaker invents, else -1;
        None when nobody in the chunk invents.
        """
        words, size = self.words, self.size
        s_size = size[s]
        word = words[s, (u * s_size).astype(np.int64)]  # column 0 (ignored) for empty speakers
        invents: np.ndarray | int = 0
        if new is not None:
            invents = new >= 0
            word[invents] = new[invents]
            words[s[invents], 0] = new[invents]
            size[s[invents]] = 1
            s_size[invents] = 1
        h_size = size[h]
        width = int(h_size.max())
        known = ((words[h, :width] == word[:, None]) & (np.arange(width) < h_size[:, None])).any(1)
        delta = np.where(known, 2 - s_size - h_size, 1 + invents)
        success, failure = np.flatnonzero(known), np.flatnonzero(~known)
        if success.size:  # both keep only the word
            kw = word[success]
            words[s[success], 0] = kw
            words[h[success], 0] = kw
            size[s[success]] = 1
            size[h[success]] = 1
        if failure.size:  # the hearer learns the word
            fh, at = h[failure], h_size[failure]
            if int(at.max()) >= words.shape[1]:
                self._grow(int(at.max()) + 1)
                words = self.words
            words[fh, at] = word[failure]
            size[fh] = at + 1
        return delta, known


class NamingGame:
    Params = NamingGameParams
    # the platform runs it through simulate_population, not the neural round loop
    standalone = True

    def __init__(self, params: NamingGameParams | None = None) -> None:
        self.params = params or NamingGameParams()

    @staticmethod
    def record_schema() -> pa.Schema:
        return pa.schema(
            [
                ("t", pa.int64()),
                ("n_words", pa.int64()),
                ("n_distinct", pa.int64()),
                ("success_rate", pa.float64()),
            ]
        )

    def simulate_population(
        self, n_agents: int, edges: np.ndarray | None, rng: np.random.Generator,
        on_record: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """The platform's standalone entry point: ``edges`` (E, 2) undirected pairs, or None
        for the complete graph (never materialised); returns the outcome as plain values."""
        if edges is None:
            adjacency = Adjacency.complete(n_agents)
        else:
            graph = nx.Graph()
            graph.add_nodes_from(range(n_agents))
            graph.add_edges_from(map(tuple, np.asarray(edges).tolist()))
            adjacency = Adjacency.from_graph(graph)
        result = self.run(adjacency, rng, on_record=on_record)
        return {"converged": result.converged, "t_conv": result.t_conv,
                "max_words": result.max_words, "t_max_words": result.t_max_words,
                "wall_time": result.wall_time}

    def simulate(
        self,
        graph: nx.Graph,
        rng: np.random.Generator,
        *,
        max_interactions: int | None = None,
        on_record: Callable[[dict[str, Any]], None] | None = None,
    ) -> NamingGameResult:
        """Play on ``graph`` (undirected, nodes 0..N-1) until consensus or the interaction cap.

        ``max_interactions`` overrides the params' cap. ``on_record`` gets
        ``{"t", "n_words", "n_distinct", "success_rate"}`` every ``record_every`` interactions
        (success rate over those interactions) and once more where the run stops.
        """
        return self.run(Adjacency.from_graph(graph), rng, max_interactions=max_interactions,
                        on_record=on_record)

    def run(
        self,
        adjacency: Adjacency,
        rng: np.random.Generator,
        *,
        max_interactions: int | None = None,
        on_record: Callable[[dict[str, Any]], None] | None = None,
    ) -> NamingGameResult:
        """:meth:`simulate` on an :class:`Adjacency` (``Adjacency.complete(n)`` for big n)."""
        start_time = time.perf_counter()
        n = adjacency.n
        limit = max_interactions if max_interactions is not None else self.params.max_interactions
        if limit is None and not adjacency.is_connected():
            raise ValueError("graph: disconnected, so consensus is impossible; set max_interactions")
        every = self.params.record_every or n
        chunk = max(n, _CHUNK_MIN)
        state = Inventories(n)
        result = NamingGameResult(converged=False, t_conv=None, max_words=0, t_max_words=0)
        t, last_record, successes = 0, 0, 0

        def record(at: int) -> None:
            nonlocal last_record, successes
            row = {"t": at, "n_words": state.n_words, "n_distinct": state.n_distinct(),
                   "success_rate": successes / (at - last_record)}
            result.records.append(row)
            if on_record is not None:
                on_record(row)
            last_record, successes = at, 0

        while limit is None or t < limit:
            stop = min((t // every + 1) * every, t + chunk, limit if limit is not None else t + chunk)
            u = rng.random((stop - t, 3))
            speaker, hearer = adjacency.pairs(self.params.order, u)
            delta, success = state.play_chunk(speaker, hearer, u[:, 2])
            n_words = state.n_words - int(delta.sum()) + np.cumsum(delta)
            peak = int(np.argmax(n_words))
            if n_words[peak] > result.max_words:
                result.max_words, result.t_max_words = int(n_words[peak]), t + peak + 1
            if state.n_words == n and state.n_distinct() == 1:
                # consensus is absorbing: it began right after the last interaction that changed
                # an inventory (every failure does; a success does unless both held one word)
                end = int(np.flatnonzero(delta)[-1]) + 1 if delta.any() else 0
                successes += int(success[:end].sum())
                result.converged, result.t_conv = True, t + end
                if t + end > last_record:
                    record(t + end)
                break
            successes += int(success.sum())
            t = stop
            if t % every == 0 or t == limit:
                record(t)
        result.wall_time = time.perf_counter() - start_time
        return result

