"""Checkpoints, exact resume, Ctrl-C, and an agent actor killed with SIGKILL mid-run.

Every fault is injected at a known round through NEUROCOMM_FAULT (platform/faults.py).
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pandas as pd
import pytest
import yaml

from neurocomm.platform.config import build_config
from neurocomm.platform.runner import run
from tests.resume_helpers import cli, killed_run, messages, metrics, reference_run, slow_config


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return reference_run(tmp_path_factory)


@pytest.mark.parametrize("fault", ["driver:10", "interrupt:10"])
def test_interrupted_run_resumes_to_identical_logs(fault: str, tmp_path: Path, uninterrupted: Path) -> None:
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(slow_config(tmp_path)))
    out = cli("run", str(cfg), fault=fault)
    (run_dir,) = list((tmp_path / "runs").iterdir())
    status = json.loads((run_dir / "run.json").read_text())
    if fault.startswith("interrupt"):
        assert out.returncode == 130 and status["status"] == "interrupted"
        assert status["rounds_done"] == 10  # stopped after round 9, checkpointed there
    else:
        assert out.returncode == -signal.SIGKILL
        assert status["status"] == "running"  # the process died without a word
        assert status["rounds_done"] == 9  # the last chunk flushed before the kill
    out = cli("resume", str(run_dir))
    assert out.returncode == 0, out.stderr
    assert json.loads((run_dir / "run.json").read_text())["status"] == "finished"
    pd.testing.assert_frame_equal(metrics(run_dir), metrics(uninterrupted))
    pd.testing.assert_frame_equal(messages(run_dir), messages(uninterrupted))
    events = [json.loads(x)["event"] for x in (run_dir / "events.log").read_text().splitlines()]
    assert "resumed" in events and events[-1] == "finished"


def test_killed_resume_leaves_no_gap(tmp_path: Path, uninterrupted: Path) -> None:
    """The driver is killed at round 20, its resume is killed at round 31, the second resume
    finishes: the logs are those of an uninterrupted run and pass the integrity check."""
    from neurocomm.platform.analysis.loading import load_run

    run_dir = killed_run(tmp_path, 20)
    assert cli("resume", str(run_dir), fault="driver:31").returncode == -signal.SIGKILL
    assert json.loads((run_dir / "run.json").read_text())["rounds_done"] >= 24
    out = cli("resume", str(run_dir))
    assert out.returncode == 0, out.stderr
    pd.testing.assert_frame_equal(metrics(run_dir), metrics(uninterrupted))
    pd.testing.assert_frame_equal(messages(run_dir), messages(uninterrupted))
    assert load_run(run_dir).rounds_done == 40
    assert not list(run_dir.rglob("*.tmp"))


def test_resume_of_finished_run_is_a_no_op(uninterrupted: Path) -> None:
    before = sorted(p.name for p in (uninterrupted / "metrics.parquet").iterdir())
    out = cli("resume", str(uninterrupted))
    assert out.returncode == 0 and "already finished" in out.stdout
    assert sorted(p.name for p in (uninterrupted / "metrics.parquet").iterdir()) == before


def test_resume_of_missing_dir_is_a_clear_error(tmp_path: Path) -> None:
    out = cli("resume", str(tmp_path / "nope"))
    assert out.returncode == 2 and "not a run directory" in out.stderr and "Traceback" not in out.stderr


def test_killed_actor_is_restarted_from_checkpoint(tmp_path: Path, uninterrupted: Path,
                                                   ray_session: object,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from neurocomm.platform import faults

    data = slow_config(tmp_path)
    data["runtime"] = {"backend": "ray", "agent_resources": {"num_cpus": 0.1}}
    monkeypatch.setenv(faults.ENV, "shard:8:1")  # SIGKILL shard 1 (agent 1) before round 8
    faults.reset()
    result = run(build_config(data))
    run_dir = result.run_dir
    assert result.status == "finished"
    events = [json.loads(x) for x in (run_dir / "events.log").read_text().splitlines()]
    kinds = [e["event"] for e in events]
    assert "shard_failed" in kinds and "recovered" in kinds
    recovered = next(e for e in events if e["event"] == "recovered")
    assert recovered["from_round"] == 6  # the last checkpoint before round 8
    new_pids = {e["pid"] for e in events if e["event"] == "placement" and 1 in e["agents"]}
    assert len(new_pids) == 2  # the original actor and its replacement
    df = metrics(run_dir)
    assert not df.duplicated(["round", "speaker", "listener"]).any()
    assert sorted(df["round"].unique()) == list(range(40))
    pd.testing.assert_frame_equal(df, metrics(uninterrupted))
