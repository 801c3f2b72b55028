"""A real multi-node Ray cluster on loopback: a head and two worker nodes.

Agents are spread over the nodes, the run records which node hosts which agent, and losing a
worker node mid-run is survived (its agents restart from the last checkpoint elsewhere).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from neurocomm.platform.config import build_config
from neurocomm.platform.runner import run
from tests.conftest import tiny_config

pytestmark = pytest.mark.cluster

EXE = str(Path(sys.executable).parent / "neurocomm")
NODE_ARGS = {"num_cpus": 1, "object_store_memory": 80 * 2**20}


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    import ray
    from ray.cluster_utils import Cluster

    from neurocomm.platform.raysession import loopback_environment

    if ray.is_initialized():
        ray.shutdown()  # the session's single-node Ray; tests after this module start a new one
    loopback_environment()
    c = Cluster(initialize_head=True,
                head_node_args={**NODE_ARGS, "include_dashboard": False})
    workers = [c.add_node(**NODE_ARGS) for _ in range(2)]
    c.wait_for_nodes()
    c.workers = workers
    yield c
    if ray.is_initialized():
        ray.shutdown()
    c.shutdown()


def cluster_config(tmp_path: Path, address: str, rounds: int) -> dict:
    return tiny_config(
        tmp_path, topology={"generator": "cycle_graph", "params": {"n": 4}},
        training={"rounds": rounds, "batch_size": 128},
        runtime={"backend": "ray", "address": address, "placement": "spread",
                 "agent_resources": {"num_cpus": 0.2}},
        logging={"dir": str(tmp_path / "runs"), "progress": False, "chunk_rounds": 3,
                 "checkpoint_every": 4, "messages_every": 5, "messages_per_edge": 2},
    )


def placements(run_dir: Path) -> list[dict]:
    events = [json.loads(x) for x in (run_dir / "events.log").read_text().splitlines()]
    return [e for e in events if e["event"] == "placement"]


def test_cli_joins_cluster_and_spreads_agents(cluster: Any, tmp_path: Path) -> None:
    cfg = tmp_path / "cluster.yaml"
    cfg.write_text(yaml.safe_dump(cluster_config(tmp_path, "auto", 4)))
    env = {**os.environ, "RAY_ADDRESS": cluster.address}
    out = subprocess.run([EXE, "run", str(cfg), "--address", cluster.address],
                         capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    (run_dir,) = list((tmp_path / "runs").iterdir())
    places = placements(run_dir)
    assert sorted(a for p in places for a in p["agents"]) == [0, 1, 2, 3]
    assert len({p["node_id"] for p in places}) >= 2
    assert len(pd.read_parquet(run_dir / "metrics.parquet")) == 4 * 8


def test_lost_worker_node_is_survived(cluster: Any, tmp_path: Path) -> None:
    """A worker node that hosts agents is removed just before round 6 (a fault hung on that
    round through platform/faults.py, not a poller racing the run)."""
    import ray

    from neurocomm.platform import faults

    ray.init(address=cluster.address)
    reference = run(build_config({**cluster_config(tmp_path / "ref", cluster.address, 16),
                                  "runtime": {"backend": "local"}}))
    cfg = build_config(cluster_config(tmp_path, cluster.address, 16))
    node_ids = {w.node_id: w for w in cluster.workers}
    removed: list[str] = []

    def remove_a_worker_node(backend: Any) -> None:
        hosts = [p["node_id"] for p in backend.placement()]
        victim = next((n for n in hosts if n in node_ids), None)
        if victim is not None:
            cluster.remove_node(node_ids[victim])
            removed.append(victim)

    faults.reset()
    faults.at_round(6, remove_a_worker_node)
    result = run(cfg)
    assert removed, "no agent landed on a worker node"
    run_dir = result.run_dir
    assert result.status == "finished"
    kinds = [json.loads(x)["event"] for x in (run_dir / "events.log").read_text().splitlines()]
    assert "shard_failed" in kinds and "recovered" in kinds
    cols = ["round", "speaker", "listener", "success", "listener_loss", "speaker_loss"]

    def table(path: Path) -> pd.DataFrame:
        df = pd.read_parquet(path / "metrics.parquet")[cols]
        return df.sort_values(cols[:3]).reset_index(drop=True)

    pd.testing.assert_frame_equal(table(run_dir), table(reference.run_dir))
