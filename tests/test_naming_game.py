"""The naming game engine: consensus, exactness against a sequential reference, reproducibility."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import pyarrow as pa
import pytest

from neurocomm.scenarios.naming_game import (
    Inventories,
    NamingGame,
    NamingGameParams,
    NamingGameResult,
)
from neurocomm.scenarios.naming_pairs import ORDERS, Adjacency

REPO = Path(__file__).resolve().parent.parent

GRAPHS = {
    "complete": lambda: nx.complete_graph(24),
    "ring": lambda: nx.cycle_graph(16),
    "smallworld": lambda: nx.connected_watts_strogatz_graph(40, 4, 0.1, seed=3),
}


def reference_pair(graph: nx.Graph, order: str, u: np.ndarray) -> tuple[int, int]:
    """The documented stream, written out plainly: one row (u0, u1, u2) per interaction."""
    n = graph.number_of_nodes()
    if order == "edge":
        directed = sorted([(a, b) for a, b in graph.edges] + [(b, a) for a, b in graph.edges])
        return directed[int(u[0] * len(directed))]
    first = int(u[0] * n)
    neighbours = sorted(graph[first])
    second = neighbours[int(u[1] * len(neighbours))]
    return (first, second) if order == "direct" else (second, first)


class Reference:
    """The naming game one interaction at a time, with Python lists."""

    def __init__(self, n: int) -> None:
        self.inventory: list[list[int]] = [[] for _ in range(n)]
        self.next_word = 0

    def play(self, s: int, h: int, u_word: float) -> tuple[int, bool]:
        """→ (change of the total word count, success)."""
        speaker, hearer = self.inventory[s], self.inventory[h]
        invented = not speaker
        if invented:
            speaker.append(self.next_word)
            self.next_word += 1
        word = speaker[int(u_word * len(speaker))]
        if word in hearer:
            delta = 2 - len(speaker) - len(hearer)
            self.inventory[s], self.inventory[h] = [word], [word]
            return delta, True
        hearer.append(word)
        return 1 + invented, False

    def n_words(self) -> int:
        return sum(len(i) for i in self.inventory)

    def n_distinct(self) -> int:
        return len({w for i in self.inventory for w in i})


def reference_run(
    graph: nx.Graph, order: str, seed: int, limit: int, every: int
) -> tuple[int | None, int, int, list[dict[str, Any]]]:
    """(t_conv, max_words, t_max_words, records) replaying the stream row by row."""
    n = graph.number_of_nodes()
    rng = np.random.default_rng(seed)
    ref = Reference(n)
    records: list[dict[str, Any]] = []
    n_words = peak = t_peak = successes = last = 0
    for t in range(1, limit + 1):
        u = rng.random(3)
        s, h = reference_pair(graph, order, u)
        delta, ok = ref.play(s, h, u[2])
        n_words += delta
        successes += ok
        if n_words > peak:
            peak, t_peak = n_words, t
        done = n_words == n and ref.n_distinct() == 1
        if t % every == 0 or done or t == limit:
            records.append({"t": t, "n_words": n_words, "n_distinct": ref.n_distinct(),
                            "success_rate": successes / (t - last)})
            last, successes = t, 0
        if done:
            return t, peak, t_peak, records
    return None, peak, t_peak, records


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("family", GRAPHS)
def test_reaches_consensus(family: str, order: str) -> None:
    graph = GRAPHS[family]()
    seen: list[dict[str, Any]] = []
    result = NamingGame(NamingGameParams(order=order)).simulate(
        graph, np.random.default_rng(1), on_record=seen.append
    )
    n = graph.number_of_nodes()
    assert result.converged and result.t_conv is not None
    assert result.records == seen
    last = result.records[-1]
    assert (last["t"], last["n_words"], last["n_distinct"]) == (result.t_conv, n, 1)
    assert all(r["t"] % n == 0 for r in result.records[:-1])
    assert result.max_words >= n and 0 < result.t_max_words <= result.t_conv


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("family", GRAPHS)
@pytest.mark.parametrize("every", [None, 7])
def test_matches_sequential_reference(family: str, order: str, every: int | None) -> None:
    graph = GRAPHS[family]()
    limit = 30_000
    for seed in range(2):
        game = NamingGame(NamingGameParams(order=order, record_every=every))
        got = game.simulate(graph, np.random.default_rng(seed), max_interactions=limit)
        want = reference_run(graph, order, seed, limit, every or graph.number_of_nodes())
        assert (got.t_conv, got.max_words, got.t_max_words, got.records) == want


def test_matches_reference_when_capped_and_every_interaction() -> None:
    graph = nx.connected_watts_strogatz_graph(60, 4, 0.2, seed=0)
    got = NamingGame(NamingGameParams(record_every=1, max_interactions=1500)).simulate(
        graph, np.random.default_rng(5)
    )
    want = reference_run(graph, "direct", 5, 1500, 1)
    assert not got.converged and got.t_conv is None
    assert (got.t_conv, got.max_words, got.t_max_words, got.records) == want
    assert [r["t"] for r in got.records] == list(range(1, 1501))


def test_injected_sequences_match_reference() -> None:
    """Adversarial streams (a few agents, long dependency chains) against the reference."""
    rng = np.random.default_rng(0)
    for n, m in [(2, 300), (3, 500), (5, 2000), (50, 3000)]:
        speaker = rng.integers(0, n, m)
        hearer = (speaker + rng.integers(1, n, m)) % n
        u_word = rng.random(m)
        engine, ref = Inventories(n), Reference(n)
        got_delta, got_ok = [], []
        for chunk in np.array_split(np.arange(m), 4):
            delta, ok = engine.play_chunk(speaker[chunk], hearer[chunk], u_word[chunk])
            got_delta += delta.tolist()
            got_ok += ok.tolist()
        want = [ref.play(int(s), int(h), float(u)) for s, h, u in zip(speaker, hearer, u_word)]
        assert got_delta == [d for d, _ in want] and got_ok == [ok for _, ok in want]
        assert [engine.words_of(a) for a in range(n)] == ref.inventory
        assert engine.n_words == ref.n_words() and engine.n_distinct() == ref.n_distinct()


def test_invented_words_are_fresh() -> None:
    engine = Inventories(10)
    leaves = np.arange(1, 10)
    engine.play_chunk(leaves, np.zeros(9, dtype=np.int64), np.zeros(9))  # every leaf invents
    assert engine.words_of(0) == list(range(9))  # the centre heard nine different words
    assert [engine.words_of(a) for a in leaves] == [[w] for w in range(9)]
    # a speaker that already has a word never invents again
    engine.play_chunk(np.array([1, 2]), np.array([3, 4]), np.array([0.0, 0.0]))
    assert engine.n_invented == 9 and engine.n_distinct() == 9


def test_pairs_are_edges_and_orders_differ() -> None:
    graph = nx.connected_watts_strogatz_graph(30, 4, 0.3, seed=2)
    u = np.random.default_rng(0).random((2000, 3))
    for adjacency in (Adjacency.from_graph(graph), Adjacency.complete(30)):
        for order in ORDERS:
            speaker, hearer = adjacency.pairs(order, u)
            if adjacency.is_complete:
                assert (speaker != hearer).all()
            else:
                assert all(graph.has_edge(int(s), int(h)) for s, h in zip(speaker, hearer))
                want = [reference_pair(graph, order, row) for row in u[:200]]
                assert list(zip(speaker[:200].tolist(), hearer[:200].tolist())) == want
    complete = Adjacency.from_graph(nx.complete_graph(30))
    assert complete.is_complete
    s, h = complete.pairs("edge", u)
    assert list(zip(s[:50], h[:50])) == [reference_pair(nx.complete_graph(30), "edge", r) for r in u[:50]]


def test_peak_word_count_grows_with_n() -> None:
    game = NamingGame()
    peaks = []
    for n in (16, 64, 256):
        peaks.append(np.mean([game.run(Adjacency.complete(n), np.random.default_rng(s)).max_words
                              for s in range(4)]))
    assert peaks[0] < peaks[1] < peaks[2]
    assert peaks[2] > 256  # well above one word per agent


def test_same_seed_same_result() -> None:
    graph = nx.connected_watts_strogatz_graph(100, 6, 0.1, seed=0)
    game = NamingGame(NamingGameParams(order="edge"))
    a = game.simulate(graph, np.random.default_rng(42))
    b = game.simulate(graph, np.random.default_rng(42))
    c = game.simulate(graph, np.random.default_rng(43))
    strip = lambda r: (r.converged, r.t_conv, r.max_words, r.t_max_words, r.records)  # noqa: E731
    assert strip(a) == strip(b)
    assert strip(a) != strip(c)


def test_records_fit_schema() -> None:
    result = NamingGame().simulate(nx.complete_graph(20), np.random.default_rng(0))
    assert isinstance(result, NamingGameResult) and result.wall_time > 0
    table = pa.Table.from_pylist(result.records, schema=NamingGame.record_schema())
    assert table.schema.names == ["t", "n_words", "n_distinct", "success_rate"]
    assert table.num_rows == len(result.records)
    rates = table.column("success_rate").to_pylist()
    assert all(0.0 <= r <= 1.0 for r in rates)


def test_disconnected_graph_needs_a_cap() -> None:
    graph = nx.disjoint_union(nx.complete_graph(5), nx.complete_graph(5))
    with pytest.raises(ValueError, match="disconnected"):
        NamingGame().simulate(graph, np.random.default_rng(0))
    result = NamingGame().simulate(graph, np.random.default_rng(0), max_interactions=500)
    assert not result.converged and result.records[-1]["t"] == 500
    assert result.records[-1]["n_distinct"] >= 2


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"order": "sideways"}, "order"), ({"max_interactions": 0}, "max_interactions"),
     ({"record_every": 0}, "record_every")],
)
def test_params_are_checked(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=f"^{field}: "):
        NamingGameParams(**kwargs)


def test_shipped_config_validates() -> None:
    from neurocomm.platform import registry
    from neurocomm.platform.config import load_config

    assert registry.resolve("scenarios", "naming-game") is NamingGame  # the entry point
    cfg = load_config(REPO / "configs" / "naming_game.yaml")
    assert cfg.scenario.name == "naming-game"
    assert cfg.scenario.params == {"order": "direct"}
