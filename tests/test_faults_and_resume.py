"""Checkpoints, exact resume, Ctrl-C, and an agent actor killed with SIGKILL mid-run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from neurocomm.platform.config import build_config
from neurocomm.platform.runner import run
from tests.conftest import tiny_config

EXE = str(Path(sys.executable).parent / "neurocomm")
COLS = ["round", "speaker", "listener", "success", "listener_loss", "speaker_loss", "entropy",
        "msg_length", "eval_success"]


def slow_config(tmp_path: Path, rounds: int = 40) -> dict:
    return tiny_config(
        tmp_path, topology={"generator": "cycle_graph", "params": {"n": 3}},
        training={"rounds": rounds, "batch_size": 256},
        logging={"dir": str(tmp_path / "runs"), "progress": False, "messages_every": 3,
                 "messages_per_edge": 2, "chunk_rounds": 3, "checkpoint_every": 6, "eval_every": 4},
    )


def metrics(run_dir: Path) -> pd.DataFrame:
    df = pd.read_parquet(run_dir / "metrics.parquet")
    return df.sort_values(["round", "speaker", "listener"]).reset_index(drop=True)[COLS]


def messages(run_dir: Path) -> pd.DataFrame:
    df = pd.read_parquet(run_dir / "messages")
    df["message"] = df["message"].apply(tuple)
    df["target"] = df["target"].apply(tuple)
    return df.sort_values(["round", "speaker", "listener", "game"]).reset_index(drop=True)


def wait_for_rounds(run_root: Path, at_least: int, proc: subprocess.Popen, timeout: float = 120) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the run ended before it could be interrupted"
        for status in run_root.glob("*/run.json"):
            try:
                if json.loads(status.read_text()).get("rounds_done", 0) >= at_least:
                    return status.parent
            except json.JSONDecodeError:
                pass
        time.sleep(0.02)
    raise TimeoutError("the run did not progress")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("reference")
    return run(build_config(slow_config(tmp))).run_dir


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGINT])
def test_interrupted_run_resumes_to_identical_logs(how: int, tmp_path: Path, uninterrupted: Path) -> None:
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(slow_config(tmp_path)))
    proc = subprocess.Popen([EXE, "run", str(cfg)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    run_dir = wait_for_rounds(tmp_path / "runs", 10, proc)
    proc.send_signal(how)
    proc.wait(timeout=60)
    status = json.loads((run_dir / "run.json").read_text())
    if how == signal.SIGINT:
        assert proc.returncode == 130 and status["status"] == "interrupted"
    else:
        assert status["status"] == "running"  # the process died without a word
    assert status["rounds_done"] < 40
    out = subprocess.run([EXE, "resume", str(run_dir)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert json.loads((run_dir / "run.json").read_text())["status"] == "finished"
    pd.testing.assert_frame_equal(metrics(run_dir), metrics(uninterrupted))
    pd.testing.assert_frame_equal(messages(run_dir), messages(uninterrupted))
    events = [json.loads(x)["event"] for x in (run_dir / "events.log").read_text().splitlines()]
    assert "resumed" in events and events[-1] == "finished"


def test_resume_of_finished_run_is_a_no_op(uninterrupted: Path) -> None:
    before = sorted(p.name for p in (uninterrupted / "metrics.parquet").iterdir())
    out = subprocess.run([EXE, "resume", str(uninterrupted)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "already finished" in out.stdout
    assert sorted(p.name for p in (uninterrupted / "metrics.parquet").iterdir()) == before


def test_resume_of_missing_dir_is_a_clear_error(tmp_path: Path) -> None:
    out = subprocess.run([EXE, "resume", str(tmp_path / "nope")], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "not a run directory" in out.stderr and "Traceback" not in out.stderr


def test_killed_actor_is_restarted_from_checkpoint(tmp_path: Path, uninterrupted: Path,
                                                   ray_session: object) -> None:
    data = slow_config(tmp_path)
    data["runtime"] = {"backend": "ray", "agent_resources": {"num_cpus": 0.1}}
    cfg = build_config(data)
    result: dict = {}
    worker = threading.Thread(target=lambda: result.update(r=run(cfg)))
    worker.start()
    runs = tmp_path / "runs"
    deadline = time.monotonic() + 120
    victim = None
    while victim is None and time.monotonic() < deadline:
        for events in runs.glob("*/events.log"):
            lines = [json.loads(x) for x in events.read_text().splitlines() if x.strip()]
            status = json.loads((events.parent / "run.json").read_text())
            places = [e for e in lines if e["event"] == "placement"]
            if places and status.get("rounds_done", 0) >= 8:
                victim = next(p for p in places if 1 in p["agents"])["pid"]
        time.sleep(0.02)
    assert victim is not None, "the run did not progress"
    os.kill(victim, signal.SIGKILL)
    worker.join(timeout=300)
    assert not worker.is_alive()
    run_dir = result["r"].run_dir
    assert result["r"].status == "finished"
    events = [json.loads(x) for x in (run_dir / "events.log").read_text().splitlines()]
    kinds = [e["event"] for e in events]
    assert "shard_failed" in kinds and "recovered" in kinds
    new_pids = {e["pid"] for e in events if e["event"] == "placement" and 1 in e["agents"]}
    assert len(new_pids) == 2  # the original actor and its replacement
    df = metrics(run_dir)
    assert not df.duplicated(["round", "speaker", "listener"]).any()
    assert sorted(df["round"].unique()) == list(range(40))
    pd.testing.assert_frame_equal(df, metrics(uninterrupted))
