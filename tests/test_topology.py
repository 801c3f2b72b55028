"""Topologies: every listed generator builds, seeded; files; direction; weights; schedules."""

from __future__ import annotations

from pathlib import Path

import networkx as nx
import pytest

from neurocomm.platform.config import TopologyChange, TopologyConfig
from neurocomm.platform.errors import ConfigError
from neurocomm.platform.topology import Topology, build_graph, build_topology

GENERATORS = {
    "complete_graph": {"n": 5},
    "cycle_graph": {"n": 6},
    "path_graph": {"n": 4},
    "star_graph": {"n": 4},
    "watts_strogatz_graph": {"n": 10, "k": 4, "p": 0.2},
    "connected_watts_strogatz_graph": {"n": 10, "k": 4, "p": 0.2},
    "barabasi_albert_graph": {"n": 10, "m": 2},
    "erdos_renyi_graph": {"n": 10, "p": 0.6},
    "stochastic_block_model": {"sizes": [4, 4], "p": [[0.9, 0.05], [0.05, 0.9]]},
    "grid_2d_graph": {"m": 3, "n": 3},
    "random_regular_graph": {"d": 3, "n": 8},
    "karate_club_graph": {},
}


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_generator_builds_and_is_seeded(name: str) -> None:
    cfg = TopologyConfig(generator=name, params=GENERATORS[name])
    a, b = build_graph(cfg, seed=3), build_graph(cfg, seed=3)
    assert sorted(a.nodes) == list(range(a.number_of_nodes()))
    assert sorted(a.edges) == sorted(b.edges)
    assert all("label" in a.nodes[v] for v in a.nodes)


def test_seed_changes_random_graphs() -> None:
    cfg = TopologyConfig(generator="erdos_renyi_graph", params={"n": 12, "p": 0.5})
    assert sorted(build_graph(cfg, 1).edges) != sorted(build_graph(cfg, 2).edges)


def test_undirected_talks_both_ways_and_directed_one_way() -> None:
    topo = build_topology(TopologyConfig(generator="path_graph", params={"n": 3}), 0)
    edges, weights = topo.talk_edges()
    assert edges == [(0, 1), (1, 0), (1, 2), (2, 1)] and list(weights) == [1.0] * 4
    directed = build_topology(
        TopologyConfig(generator="cycle_graph", params={"n": 3, "create_using": None}), 0
    )
    assert len(directed.talk_edges()[0]) == 6
    gn = TopologyConfig(generator="gn_graph", params={"n": 5}, directed=True)
    d = build_topology(gn, 0)
    assert len(d.talk_edges()[0]) == d.graph.number_of_edges() == 4


def test_directed_flag_on_undirected_graph_is_an_error() -> None:
    with pytest.raises(ConfigError, match="undirected"):
        build_graph(TopologyConfig(generator="cycle_graph", params={"n": 3}, directed=True), 0)


def test_graph_files_and_weights(tmp_path: Path) -> None:
    edgelist = tmp_path / "g.edgelist"
    edgelist.write_text("# a weighted triangle\na b 2.0\nb c 1\nc a 0.5\n")
    topo = build_topology(TopologyConfig(generator=None, file=str(edgelist)), 0)
    edges, weights = topo.talk_edges()
    assert len(edges) == 6 and sorted(set(weights)) == [0.5, 1.0, 2.0]
    g = nx.karate_club_graph()
    nx.write_graphml(g, tmp_path / "k.graphml")
    topo = build_topology(TopologyConfig(generator=None, file=str(tmp_path / "k.graphml")), 0)
    assert topo.n == 34
    bad = tmp_path / "neg.edgelist"
    bad.write_text("0 1 -1\n")
    with pytest.raises(ConfigError, match="weights must be > 0"):
        build_graph(TopologyConfig(generator=None, file=str(bad)), 0)
    with pytest.raises(ConfigError, match="not found"):
        build_graph(TopologyConfig(generator=None, file=str(tmp_path / "nope.txt")), 0)


def test_schedule_and_round_trip(tmp_path: Path) -> None:
    cfg = TopologyConfig(
        generator="path_graph", params={"n": 4},
        schedule=(TopologyChange(at_round=5, add_edges=((0, 3),), remove_edges=((1, 2),)),),
    )
    topo = build_topology(cfg, 0)
    assert (0, 3) not in topo.talk_edges(4)[0] and (1, 2) in topo.talk_edges(4)[0]
    assert (0, 3) in topo.talk_edges(5)[0] and (1, 2) not in topo.talk_edges(5)[0]
    topo.save(tmp_path / "t.json")
    again = Topology.load(tmp_path / "t.json")
    assert again.talk_edges(7)[0] == topo.talk_edges(7)[0]
    assert again.graph.nodes[0]["label"] == "0"


def test_save_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A write that fails (a full disk) leaves the previous graph file whole, and no temporary."""
    from neurocomm.platform import faults

    path = tmp_path / "t.json"
    build_topology(TopologyConfig(generator="path_graph", params={"n": 4}), 0).save(path)
    before = path.read_bytes()
    monkeypatch.setenv("NEUROCOMM_FAULT", "enospc:1")
    faults.reset()
    try:
        with pytest.raises(OSError):
            build_topology(TopologyConfig(generator="path_graph", params={"n": 6}), 0).save(path)
    finally:
        faults.reset()
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["t.json"]
