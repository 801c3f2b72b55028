"""The Ray backend: real actors, the same numbers as the local backend, loopback only."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from neurocomm.platform.config import build_config
from neurocomm.platform.metrics import TIMING_COLUMNS
from neurocomm.platform.runner import run
from tests.conftest import tiny_config


def metrics(run_dir: Path) -> pd.DataFrame:
    df = pd.read_parquet(run_dir / "metrics.parquet").drop(columns=list(TIMING_COLUMNS))
    return df.sort_values(["round", "speaker", "listener"])


@pytest.mark.parametrize("rule", ["reinforce", "gumbel"])
def test_local_and_ray_give_identical_rounds(rule: str, tmp_path: Path, ray_session: object) -> None:
    data = tiny_config(tmp_path, topology={"generator": "cycle_graph", "params": {"n": 3}},
                       training={"rounds": 4, "batch_size": 16, "rule": rule})
    local = run(build_config({**data, "runtime": {"backend": "local"}}))
    remote = run(build_config({**data, "runtime": {"backend": "ray", "agents_per_actor": 1,
                                                     "agent_resources": {"num_cpus": 0.1}}}))
    a, b = metrics(local.run_dir), metrics(remote.run_dir)
    assert len(a) == 4 * 6
    cols = ["round", "speaker", "listener", "success", "listener_loss", "speaker_loss", "entropy"]
    pd.testing.assert_frame_equal(a[cols].reset_index(drop=True), b[cols].reset_index(drop=True))


def test_sharded_layout_matches_one_agent_per_actor(tmp_path: Path, ray_session: object) -> None:
    data = tiny_config(tmp_path, topology={"generator": "cycle_graph", "params": {"n": 4}},
                       training={"rounds": 3, "batch_size": 8})
    one = run(build_config({**data, "runtime": {"backend": "ray", "agents_per_actor": 1,
                                                  "agent_resources": {"num_cpus": 0.1}}}))
    two = run(build_config({**data, "runtime": {"backend": "ray", "agents_per_actor": 3,
                                                  "agent_resources": {"num_cpus": 0.1}}}))
    pd.testing.assert_frame_equal(metrics(one.run_dir).reset_index(drop=True),
                                  metrics(two.run_dir).reset_index(drop=True))


def test_actors_are_real_processes(tmp_path: Path, ray_session: object) -> None:
    import json
    import os

    data = tiny_config(tmp_path, runtime={"backend": "ray", "agent_resources": {"num_cpus": 0.1}},
                       training={"rounds": 1, "batch_size": 4})
    result = run(build_config(data))
    events = [json.loads(x) for x in (result.run_dir / "events.log").read_text().splitlines()]
    places = [e for e in events if e["event"] == "placement"]
    assert sorted(a for p in places for a in p["agents"]) == [0, 1]
    assert all(p["pid"] != os.getpid() for p in places)
    assert len({p["pid"] for p in places}) == 2


def test_embedded_ray_listens_on_loopback_only(ray_session: object) -> None:
    import subprocess

    ray = ray_session
    assert ray.util.get_node_ip_address() == "127.0.0.1"  # type: ignore[attr-defined]
    try:
        out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, timeout=30).stdout
    except FileNotFoundError:
        pytest.skip("ss is not installed")
    ray_lines = [ln for ln in out.splitlines() if any(k in ln for k in ("gcs_server", "raylet", "ray::"))]
    assert ray_lines, out
    for line in ray_lines:
        local = line.split()[3]
        assert local.startswith(("127.", "[::1]", "[::ffff:127.", "localhost")), line


def test_agents_of_one_architecture_compute_as_one_stacked_model(tmp_path: Path) -> None:
    from neurocomm.platform.shard import AgentShard

    data = tiny_config(tmp_path, topology={"generator": "cycle_graph", "params": {"n": 6}})
    data["population"]["groups"] = [{"nodes": [4, 5], "params": {"cell": "lstm"}}]
    shard = AgentShard(build_config(data), list(range(6)))
    edges = [(i, (i + 1) % 6) for i in range(6)] + [((i + 1) % 6, i) for i in range(6)]
    cohorts = shard._cohorts(edges, role=0)
    assert [type(c.model).__name__ for c in cohorts] == ["GroupedNeuroAI", "GroupedNeuroAI"]
    assert sorted(len(c.edges) for c in cohorts) == [4, 8]  # GRU agents 0-3, LSTM agents 4-5
    assert {a for c in cohorts for a in c.agents} == set(range(6))


def test_population_that_cannot_fit_the_cluster_is_refused(tmp_path: Path, ray_session: object,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    import yaml

    from neurocomm.platform.cli import main

    data = tiny_config(tmp_path, topology={"generator": "cycle_graph", "params": {"n": 4}},
                       runtime={"backend": "ray", "agent_resources": {"num_cpus": 1.0, "num_gpus": 0.5}})
    path = tmp_path / "big.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "runtime.agent_resources" in err and "does not fit" in err
    assert "4 CPUs" in err and "2 GPUs" in err and "the cluster has 2" in err
    assert not (tmp_path / "runs").exists()


def test_messages_cross_ray_as_numpy_and_come_back_bit_identical() -> None:
    import warnings

    import numpy as np
    import torch

    from neurocomm.platform.backends import _to_numpy, _to_torch
    from neurocomm.platform.interfaces import Feedback

    torch.manual_seed(0)
    sent = [{(0, 1): torch.rand(4, 3, 5), (2, 1): torch.tensor([[1, 2], [3, 0]])},
            {(1, 0): Feedback(0.25, reward=torch.tensor([1.5, -2.0]), message_grad=torch.randn(2, 3, 5)),
             (1, 2): Feedback(0.5)}]
    wire = _to_numpy(sent)
    assert isinstance(wire[0][(0, 1)], np.ndarray) and isinstance(wire[1][(1, 0)].message_grad, np.ndarray)
    for part in (wire[0][(0, 1)], wire[0][(2, 1)], wire[1][(1, 0)].reward, wire[1][(1, 0)].message_grad):
        part.flags.writeable = False  # as Ray's deserialiser hands them over
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch warns about tensors over read-only memory
        back = _to_torch(wire)
    for a, b in [(sent[0][(0, 1)], back[0][(0, 1)]), (sent[0][(2, 1)], back[0][(2, 1)]),
                 (sent[1][(1, 0)].reward, back[1][(1, 0)].reward),
                 (sent[1][(1, 0)].message_grad, back[1][(1, 0)].message_grad)]:
        assert isinstance(b, torch.Tensor) and b.dtype == a.dtype and torch.equal(a, b)
    assert back[1][(1, 0)].loss == 0.25 and back[1][(1, 2)] == Feedback(0.5)


def test_embedded_ray_workers_get_one_thread_and_the_driver_keeps_its_environment(tmp_path: Path) -> None:
    """The worker environment reaches the actors without a runtime_env (which would keep them
    off Ray's prestarted workers), and the driver's own environment is left as it was."""
    import json
    import os
    import subprocess
    import sys

    script = """
import json, os
from neurocomm.platform.raysession import ensure_ray
ray = ensure_ray(None, object_store_mb=128, num_cpus=1)
after = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}

@ray.remote(num_cpus=0.5)
def worker_env():
    import torch
    return {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
            "MKL_NUM_THREADS": os.environ.get("MKL_NUM_THREADS"), "threads": torch.get_num_threads()}

print(json.dumps({"driver": after, "worker": ray.get(worker_env.remote())}))
ray.shutdown()
"""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env["MKL_NUM_THREADS"] = "3"  # the driver's own value, which it must keep
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                         timeout=180, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["driver"] == {"OMP_NUM_THREADS": None, "MKL_NUM_THREADS": "3"}
    assert seen["worker"] == {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "threads": 1}
