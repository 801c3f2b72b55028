"""The real CLI on a tiny config, in a subprocess, on both backends."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.conftest import REPO, tiny_config

EXE = str(Path(sys.executable).parent / "neurocomm")


@pytest.mark.parametrize("backend", ["local", "ray"])
def test_cli_run_prints_summary_and_writes_logs(backend: str, tmp_path: Path) -> None:
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(tiny_config(tmp_path)))
    out = subprocess.run(
        [EXE, "run", str(cfg), "--backend", backend, "--set", "training.rounds=3",
         "--set", "runtime.agent_resources.num_cpus=0.1"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.count("run directory:") == 1 and "final mean success" in out.stdout
    runs = list((tmp_path / "runs").iterdir())
    assert len(runs) == 1
    assert len(pd.read_parquet(runs[0] / "metrics.parquet")) == 3 * 2


def test_shipped_configs_validate() -> None:
    # sweeps/, tune/ and studies/ hold sweep, search and study files, checked by their own
    # tests (test_sweep.py, test_tune.py, test_study.py)
    configs = sorted(p for p in (REPO / "configs").rglob("*.yaml")
                     if not {"sweeps", "tune", "studies"} & set(p.parts))
    assert configs
    for cfg in configs:
        out = subprocess.run([EXE, "validate", str(cfg)], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, f"{cfg.name}: {out.stderr}"


def test_naming_game_runs_from_the_cli(tmp_path: Path) -> None:
    out = subprocess.run(
        [EXE, "run", str(REPO / "configs" / "naming_game.yaml"), "--set", "topology.params.n=200",
         "--set", f"logging.dir={tmp_path / 'runs'}"],
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "converged: True" in out.stdout
    (run_dir,) = list((tmp_path / "runs").iterdir())
    records = pd.read_parquet(run_dir / "metrics.parquet")
    assert records["n_distinct"].iloc[-1] == 1 and records["n_words"].iloc[-1] == 200
    assert records["t"].is_monotonic_increasing


def test_shipped_sweeps_validate() -> None:
    sweeps = sorted((REPO / "configs" / "sweeps").glob("*.yaml"))
    assert sweeps
    for sweep in sweeps:
        out = subprocess.run([EXE, "sweep", str(sweep), "--dry-run"], capture_output=True, text=True,
                             timeout=120)
        assert out.returncode == 0, f"{sweep.name}: {out.stderr}"
        assert "valid" in out.stdout
