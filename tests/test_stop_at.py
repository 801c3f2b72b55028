"""``training.stop_at`` and the metrics' ``elapsed_s`` clock, on real tiny runs."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from neurocomm.platform.config import build_config
from neurocomm.platform.errors import ConfigError
from neurocomm.platform.rundir import RunDir
from neurocomm.platform.runner import run
from neurocomm.platform.topology import Topology
from tests.conftest import tiny_config

EXE = str(Path(sys.executable).parent / "neurocomm")


def easy(tmp_path: Path, **training: Any) -> dict[str, Any]:
    """Two agents, 2 attributes x 3 values, 3 candidates (chance 1/3): 0.6 comes in tens of rounds."""
    return tiny_config(tmp_path, training={"rule": "gumbel", "rounds": 300, "batch_size": 32, **training},
                       logging={"dir": str(tmp_path / "runs"), "progress": False, "eval_every": 3,
                                "messages_every": 0, "chunk_rounds": 4})


@pytest.mark.parametrize("value", [0, -0.5, 1.5])
def test_stop_at_outside_0_1_names_the_field(value: float, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^<config>: training\.stop_at: must be in \(0, 1\]"):
        build_config(easy(tmp_path, stop_at=value))


def test_stop_at_without_evaluation_is_one_line_with_exit_2(tmp_path: Path) -> None:
    data = easy(tmp_path, stop_at=0.9)
    data["logging"]["eval_every"] = 0
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    out = subprocess.run([EXE, "validate", str(path)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr
    assert lines[0].startswith(f"neurocomm: error: {path}: training.stop_at: needs logging.eval_every > 0")


def test_a_run_stops_at_the_first_evaluated_round_that_reaches_stop_at(tmp_path: Path) -> None:
    target = 0.6
    result = run(build_config(easy(tmp_path, stop_at=target)))
    run_dir = RunDir(result.run_dir)
    df = pd.read_parquet(result.run_dir / "metrics.parquet")
    evaluated = df.dropna(subset=["eval_success"]).groupby("round")["eval_success"].mean()
    assert evaluated.iloc[-1] >= target and (evaluated.iloc[:-1] < target).all(), evaluated
    stop_round = int(evaluated.index[-1])
    assert stop_round < 299, "the easy target was not reached in 300 rounds"
    # the run ends at that round: nothing after it was played, logged or kept in flight
    assert result.status == "finished" and result.rounds == stop_round + 1 == df["round"].max() + 1
    status = run_dir.status()
    reason = f"reached stop_at 0.6 at round {stop_round} (mean greedy success {evaluated.iloc[-1]:.3f})"
    assert (status["status"], status["rounds_done"], status["reason"]) == ("finished", stop_round + 1, reason)
    assert result.reason == reason
    assert [r for r, _ in run_dir.checkpoints()] == [0, stop_round + 1]
    last = json.loads((result.run_dir / "events.log").read_text().splitlines()[-1])
    assert last["event"] == "finished" and last["reason"] == reason
    # elapsed_s: one value per round, growing, and the checkpoint holds the clock at its round
    per_round = df.groupby("round")["elapsed_s"].agg(["min", "max"])
    assert (per_round["min"] == per_round["max"]).all() and per_round["min"].is_monotonic_increasing
    assert per_round["min"].iloc[0] > 0 and per_round["max"].iloc[-1] <= result.wall_time
    assert run_dir.load_checkpoint(stop_round + 1)["elapsed_s"] >= per_round["max"].iloc[-1]

    # resuming a run that reached its target changes nothing and says why it is finished
    before = sorted(p.stat().st_mtime_ns for p in (result.run_dir / "metrics.parquet").iterdir())
    out = subprocess.run([EXE, "resume", str(result.run_dir)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert f"already finished ({stop_round + 1} rounds; {reason})" in out.stdout + out.stderr
    assert sorted(p.stat().st_mtime_ns for p in (result.run_dir / "metrics.parquet").iterdir()) == before


def test_a_resumed_run_counts_elapsed_time_on_from_its_checkpoint(tmp_path: Path) -> None:
    data = easy(tmp_path, rounds=30, batch_size=64)
    data["logging"]["checkpoint_every"] = 10
    cfg = build_config(data)
    first = run(cfg, stop=lambda r: r >= 24)  # interrupted: a checkpoint after round 24's work
    assert first.status == "interrupted" and first.rounds == 24
    run_dir = RunDir(first.run_dir)
    at_stop = run_dir.load_checkpoint(24)["elapsed_s"]
    logged = pd.read_parquet(first.run_dir / "metrics.parquet")["elapsed_s"]
    assert at_stop >= logged.max() > 0
    start = time.perf_counter()
    second = run(cfg, topology=Topology.load(first.run_dir / "topology.json"), resume=run_dir)
    took = time.perf_counter() - start
    assert second.status == "finished" and second.rounds == 30
    df = pd.read_parquet(first.run_dir / "metrics.parquet")
    new = df[df["round"] >= 24].groupby("round")["elapsed_s"].first()
    # the resumed rounds continue from the checkpoint's clock (not from 0), by no more than the
    # resume itself took
    assert (new >= at_stop).all() and (new - at_stop <= took).all(), (at_stop, took, new)
    assert np.all(np.diff(df.groupby("round")["elapsed_s"].first().to_numpy()) > 0)
