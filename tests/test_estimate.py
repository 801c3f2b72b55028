"""The resource estimate: graph sizes read off generator parameters bound the real graphs, and
parameter counts from the meta device equal the built models'."""

from __future__ import annotations

from pathlib import Path

import networkx as nx
import pytest

from neurocomm.platform.config import build_config
from neurocomm.platform.errors import ConfigError
from neurocomm.platform.estimate import check_graph, check_population, estimate_population, graph_size
from neurocomm.platform.interfaces import ChannelSpec
from neurocomm.platform.shard import build_agent, build_scenario
from tests.conftest import tiny_config

GRAPHS = [
    ("complete_graph", {"n": 30}),
    ("cycle_graph", {"n": 17}),
    ("star_graph", {"n": 9}),
    ("watts_strogatz_graph", {"n": 40, "k": 4, "p": 0.2, "seed": 1}),
    ("newman_watts_strogatz_graph", {"n": 40, "k": 4, "p": 0.5, "seed": 1}),
    ("barabasi_albert_graph", {"n": 50, "m": 3, "seed": 1}),
    ("erdos_renyi_graph", {"n": 40, "p": 0.3, "seed": 1}),
    ("random_regular_graph", {"d": 3, "n": 20, "seed": 1}),
    ("grid_2d_graph", {"m": 4, "n": 6}),
    ("hypercube_graph", {"n": 5}),
    ("balanced_tree", {"r": 2, "h": 4}),
    ("stochastic_block_model", {"sizes": [10, 12], "p": [[0.5, 0.1], [0.1, 0.5]], "seed": 1}),
    ("ladder_graph", {"n": 7}),
    ("lollipop_graph", {"m": 5, "n": 4}),
    ("karate_club_graph", {}),  # no size parameter: the generic bound
]


@pytest.mark.parametrize("generator, params", GRAPHS, ids=[g for g, _ in GRAPHS])
def test_graph_size_bounds_the_real_graph(generator: str, params: dict) -> None:
    graph = getattr(nx, generator)(**params)
    size = graph_size(generator, params)
    if params:
        assert size.nodes >= graph.number_of_nodes()
        # random graphs: the expected edge count, within a generous margin
        assert size.edges * 1.5 + 5 >= graph.number_of_edges()
    check_graph(generator, params)  # small graphs pass


def test_huge_graphs_refused_by_size_and_by_steps() -> None:
    with pytest.raises(ConfigError, match="topology.params: complete_graph would have ~3e\\+04 nodes"):
        check_graph("complete_graph", {"n": 30_000})
    with pytest.raises(ConfigError, match="fast_gnp_random_graph"):
        check_graph("gnp_random_graph", {"n": 20_000, "p": 1e-4})
    check_graph("fast_gnp_random_graph", {"n": 20_000, "p": 1e-4})
    with pytest.raises(ConfigError, match="more than 2\\^62"):
        check_graph("hypercube_graph", {"n": 10**13})
    with pytest.raises(ConfigError, match="topology.params.radius: inf is not a finite number"):
        check_graph("random_geometric_graph", {"n": 5, "radius": float("inf")})


def test_parameter_count_equals_the_built_models(tmp_path: Path) -> None:
    data = tiny_config(tmp_path)
    data["population"]["groups"] = [{"nodes": [1], "params": {"cell": "lstm", "hidden_size": 48,
                                                             "plasticity": True}}]
    cfg = build_config(data)
    est = estimate_population(cfg, 2, 1)
    scenario = build_scenario(cfg)
    channel = ChannelSpec(cfg.population.vocab_size, cfg.population.max_len)
    built = build_agent(cfg, 1, scenario, channel).model
    real = sum(t.numel() for t in [*built.parameters(), *built.buffers()])
    assert est.largest.path == "population.groups[0]" and est.largest.parameters == real


def test_population_refused_with_the_estimate_in_the_message(tmp_path: Path) -> None:
    cfg = build_config(tiny_config(tmp_path))
    est = check_population(cfg, 2, 1)  # fits this machine
    with pytest.raises(ConfigError) as err:
        check_population(cfg, 2, 1, memory=int(est.total_bytes / 2))
    line = str(err.value)
    assert "\n" not in line and "for 2 agents in 1 processes" in line and "parameters" in line
