"""``import neurocomm``: run (every shipped scenario, the naming game included), callbacks,
overrides, the result object, load_run and analyze; real runs on tiny configs."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

import neurocomm
from neurocomm.platform import registry, runner
from neurocomm.platform.analysis.run_analysis import analyze_run
from neurocomm.platform.cli import main
from neurocomm.platform.config import RunConfig, load_config
from neurocomm.platform.errors import ConfigError, RunDirError
from neurocomm.platform.run_result import final_listener_success
from neurocomm.platform.rundir import RunDir
from tests.conftest import REPO, tiny_config

TINY = ["training.rounds=3", "runtime.backend=local", "logging.progress=false"]
# One shipped config per scenario, played for a few rounds (test_every_shipped_scenario_is_covered
# keeps the list complete).
PER_SCENARIO = {"referential": "quickstart.yaml", "reconstruction": "reconstruction.yaml",
                "naming-game": "naming_game.yaml", "digits": "digits.yaml"}


def test_import_is_light_and_names_the_front_door() -> None:
    code = ("import sys, neurocomm; import platform; "
            "print(sorted(m for m in ('torch', 'ray', 'pandas') if m in sys.modules)); "
            "print(callable(neurocomm.run), neurocomm.__version__, platform.system())")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "[]"  # nothing heavy imported by `import neurocomm`
    assert lines[1].startswith("True 0.") and lines[1].endswith(("Linux", "Darwin", "Windows"))
    assert {"run", "load_run", "analyze", "RunResult"} <= set(dir(neurocomm))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        neurocomm.nope  # noqa: B018


def test_run_with_overrides_and_callbacks_returns_the_run(tmp_path: Path) -> None:
    seen_a: list[tuple[int, int]] = []
    seen_b: list[int] = []

    def record(done: int, rows: list[dict[str, Any]]) -> None:
        seen_a.append((done, len(rows)))

    result = neurocomm.run(tiny_config(tmp_path), overrides=["training.rounds=4"],
                           callbacks=[record, lambda done, rows: seen_b.append(done)])
    # every callback saw every round, with one metric row per directed edge (2 agents: 2 edges)
    assert seen_a == [(1, 2), (2, 2), (3, 2), (4, 2)] and seen_b == [1, 2, 3, 4]
    assert result.status == "finished" and result.rounds == 4
    assert result.run_dir.parent == tmp_path / "runs"
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.status = "x"  # type: ignore[misc]
    # the final figures are the end-of-run summary's
    assert result.listener_success == final_listener_success(RunDir(result.run_dir), 4)
    assert set(result.listener_success) == {0, 1}
    assert result.mean_success == pytest.approx(sum(result.listener_success.values()) / 2)
    # the same result read back from disk, with the config and logs as frames
    again = neurocomm.load_run(result.run_dir)
    assert again == result
    assert isinstance(again.config, RunConfig) and again.config.training.rounds == 4
    assert again.flat_config["training.rounds"] == 4
    assert sorted(again.metrics["round"].unique()) == [0, 1, 2, 3] and len(again.metrics) == 8
    assert len(again.messages) > 0
    # the analysis is platform/analysis's, whichever door it is asked through
    reference = analyze_run(result.run_dir).summary
    for analysis in (result.analyze(), neurocomm.analyze(result.run_dir), neurocomm.analyze(again)):
        assert analysis.summary["tail_success"] == reference["tail_success"]
        assert analysis.summary["topsim"] == reference["topsim"]
    assert not (result.run_dir / "analysis").exists()
    result.analyze(write=True)
    assert (result.run_dir / "analysis" / "summary.json").is_file()


def test_a_callback_stops_the_run_and_every_callback_still_sees_that_round(tmp_path: Path) -> None:
    later: list[int] = []
    result = neurocomm.run(tiny_config(tmp_path, training={"rounds": 6}),
                           callbacks=[lambda done, rows: done >= 2, lambda done, rows: later.append(done)])
    # the round already in flight when the callback asked is finished (RoundCallback)
    assert result.status == "interrupted" and result.rounds in (2, 3)
    assert later == list(range(1, result.rounds + 1))
    assert neurocomm.load_run(result.run_dir).status == "interrupted"


def test_config_sources_agree(tmp_path: Path) -> None:
    """A YAML path, the same mapping and the RunConfig, each with the same override, are one config."""
    data = tiny_config(tmp_path)
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(data))
    configs = [neurocomm.resolve_config(source, ["training.rounds=7"])
               for source in (path, str(path), data, load_config(path))]
    assert len({c.digest() for c in configs}) == 1 and configs[0].training.rounds == 7
    assert neurocomm.resolve_config(data, "training.rounds=8").training.rounds == 8  # one string
    assert neurocomm.resolve_config(data, backend="ray").runtime.backend == "ray"


@pytest.mark.parametrize(("override", "field"), [("training.roundz=3", "training.roundz"),
                                                 ("training.rounds=-1", "training.rounds"),
                                                 ("population.vocab_size=x", "population.vocab_size")])
def test_a_bad_override_names_the_field_before_anything_is_written(
        tmp_path: Path, override: str, field: str) -> None:
    with pytest.raises(ConfigError, match=field) as err:
        neurocomm.run(tiny_config(tmp_path), overrides=[override])
    assert "\n" not in str(err.value)
    assert not (tmp_path / "runs").exists()


def test_the_naming_game_runs_through_the_runner(tmp_path: Path) -> None:
    """The issue's call, `runner.run(load_config('configs/naming_game.yaml'))`, raised
    AttributeError: 'NamingGame' object has no attribute 'spec' (the runner assumed agents)."""
    cfg = load_config(REPO / "configs" / "naming_game.yaml",
                      ["topology.params.n=40", f"logging.dir={tmp_path}"])
    result = runner.run(cfg)
    assert result.status == "finished" and result.outcome["converged"] is True
    assert result.listener_success == {} and result.rounds == len(result.metrics)
    assert result.metrics["n_distinct"].iloc[-1] == 1
    assert neurocomm.load_run(result.run_dir) == result
    with pytest.raises(RunDirError, match="cannot be resumed"):
        runner.run(cfg, resume=RunDir(result.run_dir))
    with pytest.raises(ConfigError, match="scenario.name: naming-game simulates its own population"):
        runner.prepare(cfg)
    with pytest.raises(RunDirError, match="standalone scenario's run"):
        result.analyze()


def test_a_callback_stops_the_naming_game(tmp_path: Path) -> None:
    words: list[int] = []

    def watch(done: int, rows: list[dict[str, Any]]) -> bool:
        words.append(rows[0]["n_words"])
        return done >= 3

    result = neurocomm.run(REPO / "configs" / "naming_game.yaml",
                           ["topology.params.n=40", f"logging.dir={tmp_path}"], watch)
    assert result.status == "interrupted" and result.rounds == 3 and len(words) == 3
    assert result.outcome == {} and len(result.metrics) == 3


def test_every_shipped_scenario_is_covered() -> None:
    used = {yaml.safe_load(p.read_text())["scenario"]["name"] for p in (REPO / "configs").glob("*.yaml")}
    assert used <= set(PER_SCENARIO), f"add a config for {sorted(used - set(PER_SCENARIO))}"
    assert set(PER_SCENARIO) <= set(registry.names("scenarios"))


@pytest.mark.parametrize("scenario", sorted(PER_SCENARIO))
def test_every_shipped_scenario_runs_from_python(tmp_path: Path, scenario: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    config = REPO / "configs" / PER_SCENARIO[scenario]
    result = neurocomm.run(config, [*TINY, f"logging.dir={tmp_path}"], echo=print)
    assert result.status == "finished"
    assert f"run directory: {result.run_dir}" in capsys.readouterr().out
    assert result.config.scenario.name == scenario
    assert result.listener_success or result.outcome
    # the command line plays the same config the same way
    assert main(["run", str(config), *[a for o in [*TINY, f"logging.dir={tmp_path}"]
                                        for a in ("--set", o)]]) == 0
    assert "run directory:" in capsys.readouterr().out


def test_run_on_the_ray_backend(tmp_path: Path, ray_session: Any) -> None:
    rounds: list[int] = []
    result = neurocomm.run(tiny_config(tmp_path), ["training.rounds=3"],
                           [lambda done, rows: rounds.append(done)], backend="ray")
    assert result.status == "finished" and rounds == [1, 2, 3]
    assert result.config.runtime.backend == "ray"
    assert set(result.listener_success) == {0, 1}
