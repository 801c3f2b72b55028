"""Sweeps: grid x seeds, concurrent, one run directory each, relaunch skips finished runs."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from neurocomm.platform.cli import main
from neurocomm.platform.errors import ConfigError
from neurocomm.platform.sweep import load_sweep, run_sweep
from tests.conftest import tiny_config


def write_sweep(tmp_path: Path, **extra: object) -> Path:
    base = tmp_path / "base.yaml"
    base.write_text(yaml.safe_dump(tiny_config(tmp_path, training={"rounds": 3, "batch_size": 8})))
    sweep = {"name": "s", "base": "base.yaml", "set": {"training.rounds": 2},
             "grid": {"population.agent.lr": [0.001, 0.01]}, "seeds": [0, 1],
             "max_concurrent": 2, "dir": str(tmp_path / "sweeps"), **extra}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(sweep))
    return path


def test_points_are_the_grid_times_seeds(tmp_path: Path) -> None:
    sweep, points = load_sweep(write_sweep(tmp_path))
    assert len(points) == 4
    assert {(p.config.population.agent.lr, p.config.seed) for p in points} == {
        (0.001, 0), (0.001, 1), (0.01, 0), (0.01, 1)}
    assert all(p.config.training.rounds == 2 for p in points)
    assert {p.config.name for p in points} == {"s-p000", "s-p001"}


def test_random_search_is_seeded(tmp_path: Path) -> None:
    space = {"samples": 3, "seed": 5, "space": {"population.agent.lr": {"loguniform": [1e-4, 1e-2]}}}
    _, a = load_sweep(write_sweep(tmp_path, grid={}, random=space))
    _, b = load_sweep(write_sweep(tmp_path, grid={}, random=space))
    lrs = [p.config.population.agent.lr for p in a]
    assert len(a) == 6 and lrs == [p.config.population.agent.lr for p in b]
    assert all(1e-4 <= lr <= 1e-2 for lr in lrs)


def test_bad_point_is_reported_before_anything_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_sweep(tmp_path, grid={"training.batch_size": [8, -1]})
    with pytest.raises(ConfigError, match="training.batch_size"):
        load_sweep(path)
    assert main(["sweep", str(path)]) == 2
    assert "point 1" in capsys.readouterr().err
    assert not (tmp_path / "sweeps").exists()


def test_sweep_runs_then_relaunch_skips_and_resumes(tmp_path: Path) -> None:
    path = write_sweep(tmp_path)
    rows = run_sweep(path, echo=lambda m: None)
    assert [r["outcome"] for r in rows] == ["finished"] * 4
    folder = tmp_path / "sweeps" / "s"
    runs = sorted(p.parent for p in folder.glob("*/run.json"))
    assert len(runs) == 4
    summary = pd.read_csv(folder / "summary.csv")
    assert len(summary) == 4 and set(summary["set:population.agent.lr"]) == {0.001, 0.01}
    # mark one run as stopped half-way: relaunch resumes it and skips the rest
    stopped = runs[0]
    status = json.loads((stopped / "run.json").read_text())
    (stopped / "run.json").write_text(json.dumps({**status, "status": "interrupted"}))
    rows = run_sweep(path, echo=lambda m: None)
    assert sorted(r["outcome"] for r in rows) == ["finished", "skipped", "skipped", "skipped"]
    assert len(list(folder.glob("*/run.json"))) == 4
    assert main(["compare", str(folder)]) == 0
