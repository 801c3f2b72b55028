"""``neurocomm tune``: a real Ray Tune search on a loopback multi-node Ray cluster.

Two ASHA trials, each a normal run directory whose agents are Ray actors in the trial's
placement group; Tune's own ResultGrid and ``neurocomm compare`` read the results.
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

from neurocomm.platform.metrics import TIMING_COLUMNS
from neurocomm.platform.rundir import RunDir
from tests.conftest import REPO, tiny_config

pytest.importorskip("ray.tune", reason="needs the tune extra: pip install neurocomm[tune]")

EXE = str(Path(sys.executable).parent / "neurocomm")
NODE_ARGS = {"num_cpus": 1, "object_store_memory": 80 * 2**20}


def write_search(tmp_path: Path, **changes: Any) -> Path:
    base = tiny_config(
        tmp_path, topology={"generator": "cycle_graph", "params": {"n": 4}},
        training={"rounds": 12, "batch_size": 32},
        runtime={"backend": "ray", "agents_per_actor": 4, "agent_resources": {"num_cpus": 0.2}},
        logging={"progress": False, "eval_every": 2, "eval_games": 32, "messages_every": 2,
                 "chunk_rounds": 4},
    )
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base))
    search = {
        "name": "asha2", "base": "base.yaml", "metric": "eval_success", "mode": "max",
        "grid": {"population.agent.lr": [0.01, 0.0001]},
        "search": {"algorithm": "grid"},
        "scheduler": {"name": "asha", "grace_period": 4, "reduction_factor": 2},
        "max_concurrent": 2, "dir": str(tmp_path / "tune"),
    }
    search.update(changes)
    path = tmp_path / "search.yaml"
    path.write_text(yaml.safe_dump(search))
    return path


def test_shipped_searches_validate() -> None:
    searches = sorted((REPO / "configs" / "tune").glob("*.yaml"))
    assert searches
    for search in searches:
        out = subprocess.run([EXE, "tune", str(search), "--dry-run"], capture_output=True, text=True,
                             timeout=120)
        assert out.returncode == 0, f"{search.name}: {out.stderr}"
        assert "valid" in out.stdout


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"metric": "accuracy"}, "search.yaml: metric: 'accuracy' is not logged"),
        ({"scheduler": {"name": "hyperband"}}, "search.yaml: scheduler.name: expected one of"),
        ({"grid": {"training.rule": ["nope"]}}, "search.yaml: grid.training.rule: training.rule: unknown"),
        ({"space": {"population.agent.lr": {"loguniform": [0, 1]}}},
         "search.yaml: space.population.agent.lr.loguniform: bounds must be > 0"),
        ({"search": {"algorithm": "optuna"}}, "search.yaml: search.algorithm: optuna samples from space"),
    ],
)
def test_bad_search_file_is_one_line_exit_2(tmp_path: Path, change: dict, expected: str) -> None:
    path = write_search(tmp_path, **change)
    out = subprocess.run([EXE, "tune", str(path)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr
    assert expected in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr
    assert not (tmp_path / "tune").exists()


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    import ray
    from ray.cluster_utils import Cluster

    from neurocomm.platform.raysession import loopback_environment

    if ray.is_initialized():
        ray.shutdown()
    loopback_environment()
    c = Cluster(initialize_head=True, head_node_args={**NODE_ARGS, "include_dashboard": False})
    c.add_node(**NODE_ARGS)
    c.wait_for_nodes()
    yield c
    if ray.is_initialized():
        ray.shutdown()
    c.shutdown()


@pytest.mark.cluster
def test_asha_search_two_trials_on_loopback_cluster(cluster: Any, tmp_path: Path) -> None:
    import ray
    from ray import tune

    path = write_search(tmp_path)
    env = {**os.environ, "RAY_ADDRESS": cluster.address}
    out = subprocess.run([EXE, "tune", str(path), "--address", cluster.address],
                         capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    assert "2 trials; 0 failed" in out.stdout

    root = tmp_path / "tune" / "asha2"
    run_dirs = sorted(p.parent for p in (root / "trials").glob("*/*/run.json"))
    assert len(run_dirs) == 2

    # Tune's own reader: one result per trial, reported round by round from the runner.
    ray.init(address=cluster.address)
    from neurocomm.platform.tune import trial_class

    grid = tune.Tuner.restore(str(root / "tune"), trainable=trial_class()).get_results()
    assert len(grid) == 2 and not grid.errors
    by_dir = {Path(r.metrics["run_dir"]): r for r in grid}
    assert sorted(by_dir) == run_dirs
    lrs = set()
    for run_dir, result in by_dir.items():
        lrs.add(result.config["population.agent.lr"])
        reported = result.metrics_dataframe
        logged = pd.read_parquet(run_dir / "metrics.parquet")
        # One report per round that measured eval_success (every 2 rounds and the last).
        evaluated = sorted(int(r) + 1 for r in logged.dropna(subset=["eval_success"])["round"].unique())
        assert list(reported["round"]) == evaluated and len(evaluated) >= 3
        last_reported = int(reported["round"].iloc[-1])
        last = logged[logged["round"] == last_reported - 1]
        assert reported["eval_success"].iloc[-1] == pytest.approx(last["eval_success"].mean())
        # Played to the end, or stopped by ASHA: then the round in flight is finished and
        # the run ends "interrupted" with a checkpoint, as after Ctrl-C.
        status = json.loads((run_dir / "run.json").read_text())
        if last_reported == 12:
            assert status["status"] == "finished" and status["rounds_done"] == 12
        else:
            assert status["status"] == "interrupted"
            assert status["rounds_done"] in (last_reported, last_reported + 1)
            assert (run_dir / "checkpoints" / f"round_{status['rounds_done']:06d}.pt").is_file()
        assert int(logged["round"].max()) + 1 == status["rounds_done"]
        config = yaml.safe_load((run_dir / "config.yaml").read_text())
        assert config["population"]["agent"]["lr"] == result.config["population.agent.lr"]
        # Its agents ran as a Ray actor on a cluster node (the trial's placement group).
        assert '"event": "placement"' in (run_dir / "events.log").read_text()
    assert lrs == {0.01, 0.0001}

    table = subprocess.run([EXE, "compare", str(root)], capture_output=True, text=True, timeout=300)
    assert table.returncode == 0, table.stderr[-2000:]
    for run_dir in run_dirs:
        assert yaml.safe_load((run_dir / "config.yaml").read_text())["name"] in table.stdout


@pytest.mark.cluster
def test_pbt_exploit_forks_a_run_directory_and_optuna_searches(cluster: Any, tmp_path: Path) -> None:
    """PBT: a trial behind at a perturbation continues from the leader's checkpoint in a new
    run directory that starts as a copy of the leader's (logs, checkpoints) with its own
    config. Optuna: its sampler proposes the trials' values."""
    env = {**os.environ, "RAY_ADDRESS": cluster.address}
    pbt = write_search(
        tmp_path, name="pbt2", metric="success", grid={},
        space={"population.agent.lr": {"choice": [0.00001, 0.02]}},
        search={"algorithm": "random", "samples": 2, "seed": 1},
        scheduler={"name": "pbt", "perturbation_interval": 3, "quantile_fraction": 0.5},
    )
    out = subprocess.run([EXE, "tune", str(pbt), "--address", cluster.address],
                         capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    runs = [p.parent for p in (tmp_path / "tune" / "pbt2" / "trials").glob("*/*/run.json")]
    # Each trial's newest run directory played to the end.
    for trial in (tmp_path / "tune" / "pbt2" / "trials").iterdir():
        newest = max(trial.glob("*/run.json"), key=lambda p: json.loads(p.read_text())["started"])
        assert json.loads(newest.read_text())["status"] == "finished"
    # Whether the scheduler exploits depends on the order the trials report in (PBT compares
    # a reporting trial with the others' latest scores), so the fork itself is checked
    # deterministically in test_fork_run_continues_from_the_donor; here, every fork made.
    forks = [r for r in runs if '"event": "forked"' in (r / "events.log").read_text()]
    for fork in forks:
        event = next(json.loads(x) for x in (fork / "events.log").read_text().splitlines()
                     if '"forked"' in x)
        source, at = Path(event["source"]), event["round"]
        assert source in runs and source.parent != fork.parent  # another trial's run
        assert json.loads((fork / "run.json").read_text())["status"] == "finished"
        assert at > 0 and (fork / "checkpoints" / f"round_{at:06d}.pt").is_file()
        copied = pd.read_parquet(fork / "metrics.parquet")
        original = pd.read_parquet(source / "metrics.parquet")
        early = copied[copied["round"] < at].reset_index(drop=True)
        assert early.equals(original[original["round"] < at].reset_index(drop=True))
        # PBT may perturb the learning rate to the donor's own value (two choices here), so
        # what holds for every fork is that it continues with its own config's rate.
        own = yaml.safe_load((fork / "config.yaml").read_text())["population"]["agent"]["lr"]
        state = RunDir(fork).load_checkpoint(at)["agents"]
        assert {g["lr"] for a in state.values() for g in a["optimizer"]["param_groups"]} == {own}

    optuna = write_search(
        tmp_path, name="optuna2", grid={}, space={"population.agent.lr": {"loguniform": [0.001, 0.02]}},
        search={"algorithm": "optuna", "samples": 2, "seed": 0}, scheduler={"name": "fifo"},
        max_concurrent=1, set={"training.rounds": 4},
    )
    out = subprocess.run([EXE, "tune", str(optuna), "--address", cluster.address],
                         capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    summary = pd.read_csv(tmp_path / "tune" / "optuna2" / "summary.csv")
    assert len(summary) == 2 and summary["config/population.agent.lr"].nunique() == 2
    for run_dir in summary["run_dir"]:
        assert json.loads((Path(run_dir) / "run.json").read_text())["status"] == "finished"


def test_fork_run_continues_from_the_donor(tmp_path: Path) -> None:
    """PBT's exploit, without the scheduler's timing: a new run directory for another config
    starts from the donor's logs and checkpoint at a round and plays on to the end."""
    from neurocomm.platform.config import build_config
    from neurocomm.platform.runner import run
    from neurocomm.platform.topology import Topology
    from neurocomm.platform.tune import fork_run

    data = tiny_config(tmp_path, training={"rounds": 6, "batch_size": 16},
                       logging={"dir": str(tmp_path / "a"), "checkpoint_every": 2, "chunk_rounds": 2,
                                "progress": False})
    donor = run(build_config(data)).run_dir
    data["population"]["agent"]["lr"] = 0.02
    cfg = build_config(data)
    forked = fork_run(donor, 4, cfg, tmp_path / "b")
    assert [r for r, _ in forked.checkpoints()] == [0, 2, 4]
    # the optimiser state came from the donor; its learning rate is the fork's own
    lrs = {g["lr"] for a in forked.load_checkpoint(4)["agents"].values()
           for g in a["optimizer"]["param_groups"]}
    assert lrs == {0.02}
    result = run(cfg, topology=Topology.load(forked.path / "topology.json"), resume=forked)
    assert result.status == "finished" and result.rounds == 6
    # the copied rows keep the donor's elapsed_s; the fork's own rows are timed by the fork
    mine = pd.read_parquet(forked.path / "metrics.parquet").drop(columns=list(TIMING_COLUMNS))
    theirs = pd.read_parquet(donor / "metrics.parquet").drop(columns=list(TIMING_COLUMNS))
    assert sorted(mine["round"].unique()) == list(range(6))
    early = [(theirs["round"] < 4), (mine["round"] < 4)]
    assert theirs[early[0]].reset_index(drop=True).equals(mine[early[1]].reset_index(drop=True))
    assert not theirs[~early[0]].reset_index(drop=True).equals(mine[~early[1]].reset_index(drop=True))
    assert yaml.safe_load((forked.path / "config.yaml").read_text())["population"]["agent"]["lr"] == 0.02
    assert '"event": "forked"' in (forked.path / "events.log").read_text()
