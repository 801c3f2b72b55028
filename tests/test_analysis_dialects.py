"""Dialects: language distance, Mantel test, clustering and its agreement with graph communities."""

from __future__ import annotations

import itertools

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neurocomm.platform.analysis.dialects import (
    cluster_languages,
    graph_communities,
    graph_distance_matrix,
    language_distance,
    language_distance_matrix,
    mantel_test,
    normalized_mutual_information,
)

OBJECTS = list(itertools.product(range(3), repeat=2))


def dialect_a(obj: tuple[int, ...]) -> tuple[int, ...]:
    return (1 + obj[0], 1 + obj[1], 0)


def dialect_b(obj: tuple[int, ...]) -> tuple[int, ...]:
    return (5 + obj[1], 5 + obj[0], 0)  # other symbols, other order


def two_community_graph() -> nx.Graph:
    """Two 4-cliques joined by one edge (3-4)."""
    return nx.barbell_graph(4, 0)


def test_one_shared_language_has_zero_distances() -> None:
    lexicons = {i: {o: dialect_a(o) for o in OBJECTS} for i in range(5)}
    d = language_distance_matrix(lexicons)
    assert np.allclose(d, 0)
    assert cluster_languages(d).tolist() == [0] * 5


def test_every_agent_its_own_language_gives_singletons() -> None:
    words = list(itertools.product(range(1, 8), repeat=3))
    rng = np.random.default_rng(0)
    lexicons = {
        i: {o: words[k] for o, k in zip(OBJECTS, rng.choice(len(words), len(OBJECTS)))} for i in range(5)
    }
    labels = cluster_languages(language_distance_matrix(lexicons))
    assert len(set(labels.tolist())) == 5


def test_two_disjoint_dialects_on_two_communities() -> None:
    graph = two_community_graph()
    lexicons = {i: {o: (dialect_a if i < 4 else dialect_b)(o) for o in OBJECTS} for i in graph.nodes}
    d = language_distance_matrix(lexicons)
    assert d[0, 1] == 0 and d[0, 7] == pytest.approx(2 / 3)  # two of three symbols differ
    clusters = cluster_languages(d)
    communities = graph_communities(graph, seed=0)
    assert len(set(clusters.tolist())) == 2
    assert len(set(communities.tolist())) == 2
    assert normalized_mutual_information(clusters, communities) == pytest.approx(1.0)
    result = mantel_test(d, graph_distance_matrix(graph), permutations=999, seed=0)
    assert result.r > 0.5 and result.p_value < 0.05


def test_greedy_communities_and_directed_graphs() -> None:
    graph = nx.DiGraph(two_community_graph())
    labels = graph_communities(graph, method="greedy")
    assert len(set(labels[:4].tolist())) == 1 and labels[0] != labels[7]


def test_mantel_detects_a_planted_correlation_and_not_an_absent_one() -> None:
    rng = np.random.default_rng(1)
    points = rng.normal(size=(15, 2))
    geo = np.linalg.norm(points[:, None] - points[None], axis=-1)
    noise = rng.normal(scale=0.1, size=geo.shape)
    related = geo + (noise + noise.T) / 2
    np.fill_diagonal(related, 0)
    planted = mantel_test(related, geo, permutations=499, seed=0)
    assert planted.r > 0.8 and planted.p_value <= 0.01 and not planted.exact
    other = rng.normal(size=(15, 2))
    unrelated = np.linalg.norm(other[:, None] - other[None], axis=-1)
    absent = mantel_test(unrelated, geo, permutations=499, seed=0)
    assert absent.p_value > 0.05
    again = mantel_test(unrelated, geo, permutations=499, seed=0)
    assert again.p_value == absent.p_value  # seeded


def test_mantel_small_populations_are_exact_and_skip_unreachable_pairs() -> None:
    a = np.array([[0, 1, 2, 3], [1, 0, 1, 2], [2, 1, 0, 1], [3, 2, 1, 0]], dtype=float)
    result = mantel_test(a, a, permutations=999)
    assert result.exact and result.permutations == 24 and result.r == pytest.approx(1.0)
    assert result.p_value == pytest.approx(2 / 24)  # the identity and the reversal
    b = a.copy()
    b[0, 3] = b[3, 0] = np.inf
    assert mantel_test(a, b).pairs == 5


def test_graph_distance_is_in_hops_and_inf_when_unreachable() -> None:
    graph = nx.Graph([(0, 1), (1, 2)])
    graph.add_node(3)
    d = graph_distance_matrix(graph)
    assert d[0, 2] == 2 and np.isinf(d[0, 3])


def test_language_distance_on_no_shared_object_is_nan() -> None:
    assert np.isnan(language_distance({(0,): (1, 0)}, {(1,): (1, 0)}))


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.integers(2, 7))
def test_language_distance_matrix_properties(seed: int, n_agents: int) -> None:
    rng = np.random.default_rng(seed)
    lexicons = {
        i: {o: tuple(int(s) for s in rng.integers(1, 4, size=rng.integers(1, 4))) + (0,) for o in OBJECTS}
        for i in range(n_agents)
    }
    d = language_distance_matrix(lexicons)
    assert np.allclose(d, d.T) and np.allclose(np.diag(d), 0)
    assert ((d >= 0) & (d <= 1)).all()
    labels = cluster_languages(d)
    assert len(labels) == n_agents and labels[0] == 0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 3), min_size=1, max_size=20), st.integers(0, 1000))
def test_nmi_properties(labels: list[int], seed: int) -> None:
    rng = np.random.default_rng(seed)
    other = rng.integers(0, 3, size=len(labels)).tolist()
    v = normalized_mutual_information(labels, other)
    assert 0 <= v <= 1
    assert v == pytest.approx(normalized_mutual_information(other, labels))
    renamed = [{0: 7, 1: 5, 2: 9, 3: 1}[x] for x in labels]
    assert normalized_mutual_information(renamed, other) == pytest.approx(v)
    assert normalized_mutual_information(labels, labels) == pytest.approx(1.0)
