"""``--set PATH=VALUE`` on ``sweep`` (every run, before the grid) and on ``compare`` (only the runs
whose config has that value); bad paths and values are one line naming the field, exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

import neurocomm
from neurocomm.platform.cli import main
from neurocomm.platform.errors import ConfigError
from neurocomm.platform.sweep import load_sweep, run_sweep
from tests.conftest import tiny_config


def write_sweep(tmp_path: Path) -> Path:
    base = tmp_path / "base.yaml"
    base.write_text(yaml.safe_dump(tiny_config(tmp_path, training={"rounds": 3, "batch_size": 8})))
    sweep = {"name": "s", "base": "base.yaml", "set": {"training.rounds": 2},
             "grid": {"population.agent.lr": [0.001, 0.01]}, "seeds": [0],
             "dir": str(tmp_path / "sweeps")}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(sweep))
    return path


def _one_line_error(capsys: pytest.CaptureFixture[str], *words: str) -> None:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for word in words:
        assert word in err, err


def test_sweep_set_applies_to_every_run_before_the_grid(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    path = write_sweep(tmp_path)
    _, points = load_sweep(path, ["training.batch_size=4", "training.rounds=1"])
    assert [(p.config.training.batch_size, p.config.training.rounds) for p in points] == [(4, 1)] * 2
    assert sorted(p.config.population.agent.lr for p in points) == [0.001, 0.01]  # the grid still varies
    assert main(["sweep", str(path), "--dry-run", "--set", "training.batch_size=4"]) == 0
    assert "2 runs" in capsys.readouterr().out


@pytest.mark.parametrize(("override", "words"), [
    ("training.roundz=1", ["--set", "training.roundz"]),
    ("training.rounds=-1", ["--set", "training.rounds"]),
    ("population.agent.lr=0.5", ["population.agent.lr", "varied by the sweep"]),
    ("seed=3", ["seed", "set by the sweep for each run"]),
    ("nonsense", ["section.field=value"]),
])
def test_sweep_set_refuses_bad_overrides_before_anything_runs(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], override: str, words: list[str]) -> None:
    path = write_sweep(tmp_path)
    assert main(["sweep", str(path), "--set", override]) == 2
    _one_line_error(capsys, *words)
    assert not (tmp_path / "sweeps").exists()


def test_sweep_relaunched_with_another_set_runs_again(tmp_path: Path) -> None:
    """A finished point is skipped only when it was made from the same config: a quick look with
    --set training.rounds=1 does not stand in for the real sweep afterwards."""
    path = write_sweep(tmp_path)
    first = run_sweep(path, echo=lambda m: None, overrides=["training.rounds=1"])
    assert [r["outcome"] for r in first] == ["finished"] * 2
    again = run_sweep(path, echo=lambda m: None, overrides=["training.rounds=1"])
    assert [r["outcome"] for r in again] == ["skipped"] * 2
    longer = run_sweep(path, echo=lambda m: None, overrides=["training.rounds=2"])
    assert [r["outcome"] for r in longer] == ["finished"] * 2
    assert [r["rounds_done"] for r in longer] == [2, 2]
    index = json.loads((tmp_path / "sweeps" / "s" / "sweep.json").read_text())
    assert {json.loads((Path(e["run_dir"]) / "run.json").read_text())["rounds_done"]
            for e in index.values()} == {2}


@pytest.fixture(scope="module")
def two_rules(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two tiny runs that differ in their learning rule."""
    tmp_path = tmp_path_factory.mktemp("rules")
    for rule in ("gumbel", "reinforce"):
        neurocomm.run(tiny_config(tmp_path, training={"rounds": 2, "rule": rule}))
    return tmp_path / "runs"


def test_compare_where_keeps_the_runs_with_that_value(two_rules: Path, tmp_path: Path) -> None:
    for flag in ("--where", "--set"):
        out = tmp_path / flag.strip("-")
        assert main(["compare", str(two_rules), flag, "training.rule=reinforce", "--out", str(out)]) == 0
        (run_id,) = pd.read_csv(out / "runs.csv")["run_id"]
        assert neurocomm.load_run(two_rules / run_id).config.training.rule == "reinforce"
    both = tmp_path / "both"
    assert main(["compare", str(two_rules), "--where", "training.rounds=2", "--out", str(both)]) == 0
    assert len(pd.read_csv(both / "runs.csv")) == 2


@pytest.mark.parametrize(("where", "words"), [
    ("training.rul=gumbel", ["--set", "training.rul"]),
    ("training.rule=nope", ["--set", "training.rule", "nope"]),
    ("training.rounds=99", ["no run has training.rounds=99", "training.rounds in them: 2"]),
])
def test_compare_where_errors_are_one_line(two_rules: Path, capsys: pytest.CaptureFixture[str],
                                           where: str, words: list[str]) -> None:
    assert main(["compare", str(two_rules), "--where", where]) == 2
    _one_line_error(capsys, *words)


def test_compare_where_matches_through_the_typed_config(two_rules: Path) -> None:
    """Values are compared as the config reads them (1e-3 is 0.001), and a bad value is a ConfigError."""
    from neurocomm.platform.analysis.compare import find_runs, matching_runs

    found = find_runs([two_rules])
    assert len(matching_runs(found, ["population.agent.lr=5e-3"])) == 2
    with pytest.raises(ConfigError, match="training.batch_size"):
        matching_runs(found, ["training.batch_size=-4"])
