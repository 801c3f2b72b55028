"""Shared by the fault and resume tests: a slow tiny config, its uninterrupted reference run,
the CLI with a fault injected, and log tables to compare."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
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


def cli(*args: str, fault: str = "", timeout: float = 300) -> subprocess.CompletedProcess:
    """The real CLI in a subprocess; ``fault`` goes to NEUROCOMM_FAULT (platform/faults.py)."""
    env = {**os.environ, "NEUROCOMM_FAULT": fault}
    return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=timeout, env=env)


def killed_run(tmp_path: Path, at_round: int = 20) -> Path:
    """A run whose driver was SIGKILLed just before round ``at_round`` (checkpoints 0, 6, 12, 18)."""
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(slow_config(tmp_path)))
    out = cli("run", str(cfg), fault=f"driver:{at_round}")
    assert out.returncode == -signal.SIGKILL, out.stderr[-2000:]
    (run_dir,) = list((tmp_path / "runs").iterdir())
    return run_dir


def reference_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The slow config run without interruption, in this process (each test module makes one)."""
    tmp = tmp_path_factory.mktemp("reference")
    return run(build_config(slow_config(tmp))).run_dir


