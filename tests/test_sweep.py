"""Sweeps: grid x seeds, concurrent, one run directory each, relaunch skips finished runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from neurocomm.platform.cli import main
from neurocomm.platform.errors import ConfigError
from neurocomm.platform.sweep import FAULT_SIGINT_ENV, load_sweep, run_sweep
from tests.conftest import REPO, tiny_config


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
    # a lost index (the sweep killed before it recorded a run): runs are found by config hash
    (folder / "sweep.json").unlink()
    rows = run_sweep(path, echo=lambda m: None)
    assert [r["outcome"] for r in rows] == ["skipped"] * 4
    assert len(list(folder.glob("*/run.json"))) == 4


def _sweep_cli(path: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "neurocomm.platform.cli", "sweep", str(path)],
                          capture_output=True, text=True, timeout=600, cwd=REPO,
                          env={**os.environ, **(env or {})}, check=False)


def test_concurrent_ray_sweep_interrupted_then_relaunched_completes(tmp_path: Path) -> None:
    """Two points at once on one Ray session; a real SIGINT at round 3 (fault hook) stops the
    sweep with a summary; the relaunch resumes what was stopped and runs what was not."""
    path = write_sweep(
        tmp_path, grid={"population.agent.lr": [0.001, 0.003, 0.01]}, seeds=[0],
        set={"training.rounds": 12, "runtime.backend": "ray", "logging.checkpoint_every": 2})
    folder = tmp_path / "sweeps" / "s"
    first = _sweep_cli(path, {FAULT_SIGINT_ENV: "3"})
    assert first.returncode == 130, first.stdout + first.stderr
    assert "Traceback" not in first.stderr and "GCS" not in first.stderr
    summary = pd.read_csv(folder / "summary.csv")
    assert len(summary) == 3
    outcomes = list(summary["outcome"])
    assert "interrupted" in outcomes and set(outcomes) <= {"interrupted", "not run", "finished"}
    stopped = summary[summary["outcome"] == "interrupted"]
    for run_dir in stopped["run_dir"]:
        assert list((Path(run_dir) / "checkpoints").iterdir()), run_dir  # stopped cleanly
    second = _sweep_cli(path)
    assert second.returncode == 0, second.stdout + second.stderr
    summary = pd.read_csv(folder / "summary.csv")
    assert sorted(summary["point"]) == [0, 1, 2]
    assert set(summary["outcome"]) <= {"finished", "skipped"}
    assert (summary["rounds_done"] == 12).all()
    run_dirs = sorted(p.parent for p in folder.glob("*/run.json"))
    assert len(run_dirs) == 3  # the interrupted runs were resumed, not started again
    for run_dir in stopped["run_dir"]:
        events = (Path(run_dir) / "events.log").read_text()
        assert '"resumed"' in events


def test_failing_point_never_stops_the_others(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_sweep(tmp_path, grid={"population.agent.model": [
        "neuroai-rnn", "sweep_plugins:BrokenAgent"]}, seeds=[0, 1])
    sys.path.insert(0, str(REPO / "tests"))
    try:
        rows = run_sweep(path, echo=lambda m: None)
        assert sorted(r["outcome"] for r in rows) == ["failed", "failed", "finished", "finished"]
        summary = pd.read_csv(tmp_path / "sweeps" / "s" / "summary.csv")
        broken = summary[summary["outcome"] == "failed"]
        assert len(broken) == 2 and broken["error"].str.contains("deliberate failure").all()
        index = json.loads((tmp_path / "sweeps" / "s" / "sweep.json").read_text())
        assert sum("deliberate failure" in e.get("error", "") for e in index.values()) == 2
        # the relaunch keeps the finished points and tries the failed ones again
        assert main(["sweep", str(path)]) == 1
        assert "2 not finished" in capsys.readouterr().out
    finally:
        sys.path.remove(str(REPO / "tests"))


@pytest.mark.parametrize("extra, field", [
    ({"name": ".."}, "name"),
    ({"name": "a/b"}, "name"),
    ({"random": {"samples": 100_000_000, "space": {"seed": {"randint": [0, 9]}}}},
     "random.samples"),
    ({"grid": {"population.agent.lr": [0.001] * 200, "training.batch_size": list(range(1, 201))}},
     "grid"),
])
def test_unsafe_names_and_huge_sweeps_refused(extra: dict[str, object], field: str, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    path = write_sweep(tmp_path, **extra)
    assert main(["sweep", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and f"{path}: {field}" in err, err
    assert not (tmp_path / "sweeps").exists() and not (tmp_path.parent / "s").exists()


def test_unknown_engine_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_sweep(tmp_path, engine="ray")
    assert main(["sweep", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert f"{path}: engine: expected one of 'sweep', 'tune', got 'ray'" in err
    assert not (tmp_path / "sweeps").exists()


def test_engine_tune_runs_the_grid_as_tune_trials_that_compare_reads(tmp_path: Path) -> None:
    """The same sweep file through Ray Tune: one trial per point and seed, each a normal run
    directory; summary.csv as a plain sweep writes it; compare and Tune's own reader read them."""
    pytest.importorskip("ray.tune", reason="needs the tune extra: pip install neurocomm[tune]")
    path = write_sweep(tmp_path, engine="tune", seeds=[3], max_concurrent=1)
    exe = str(Path(sys.executable).parent / "neurocomm")
    out = subprocess.run([exe, "sweep", str(path), "--set", "training.batch_size=6"],
                         capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    assert "2 runs; 0 not finished" in out.stdout
    root = tmp_path / "sweeps" / "s"
    run_dirs = sorted(p.parent for p in (root / "trials").glob("*/*/run.json"))
    assert len(run_dirs) == 2
    summary = pd.read_csv(root / "summary.csv")
    assert list(summary["outcome"]) == ["finished", "finished"]
    assert sorted(summary["set:population.agent.lr"]) == [0.001, 0.01]
    assert sorted(Path(p) for p in summary["run_dir"]) == run_dirs
    for run_dir in run_dirs:
        config = yaml.safe_load((run_dir / "config.yaml").read_text())
        assert config["seed"] == 3 and config["training"]["rounds"] == 2
        assert config["training"]["batch_size"] == 6  # --set reaches every trial
        assert len(pd.read_parquet(run_dir / "metrics.parquet")) == 2 * 2  # 2 rounds x 2 edges
    assert (root / "tune").is_dir()  # Tune's own experiment, for Tuner.restore / ResultGrid
    table = subprocess.run([exe, "compare", str(root)], capture_output=True, text=True, timeout=300)
    assert table.returncode == 0, table.stderr[-2000:]
    for run_dir in run_dirs:
        assert yaml.safe_load((run_dir / "config.yaml").read_text())["name"] in table.stdout
