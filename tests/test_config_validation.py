"""Every class of bad input gets one line naming the file and field, exit code 2, no run dir."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from neurocomm.platform.cli import main
from neurocomm.platform.config import build_config, load_config
from neurocomm.platform.errors import ConfigError
from tests.conftest import tiny_config


def write(tmp_path: Path, data: object, name: str = "cfg.yaml") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(args)
    err = capsys.readouterr().err
    return code, err


BAD_CASES = {
    "unknown top-level key": ({"colour": 3}, "colour", "unknown key"),
    "unknown nested key": ({"training": {"roundz": 3}}, "training.roundz", "unknown key"),
    "unknown deep key": ({"runtime": {"agent_resources": {"cpus": 1}}},
                         "runtime.agent_resources.cpus", "unknown key"),
    "unknown model param": ({"population": {"agent": {"params": {"hiden": 3}}}},
                            "population.agent.params.hiden", "unknown key"),
    "wrong type": ({"training": {"rounds": "many"}}, "training.rounds", "an integer"),
    "bool for int": ({"training": {"batch_size": True}}, "training.batch_size", "an integer"),
    "negative size": ({"training": {"batch_size": -4}}, "training.batch_size", ">= 1"),
    "vocab below 2": ({"population": {"vocab_size": 1}}, "population.vocab_size", ">= 2"),
    "literal": ({"runtime": {"backend": "spark"}}, "runtime.backend", "'ray', 'local'"),
    "unknown model": ({"population": {"agent": {"model": "nope"}}}, "population.agent.model",
                      "neuroai-rnn"),
    "unknown scenario": ({"scenario": {"name": "nope"}}, "scenario.name", "referential"),
    "unknown rule": ({"training": {"rule": "nope"}}, "training.rule", "reinforce"),
    "unknown generator": ({"topology": {"generator": "no_such_graph"}}, "topology.generator",
                          "networkx"),
    "generator params": ({"topology": {"generator": "cycle_graph", "params": {"m": 3}}},
                         "topology.params", "cycle_graph"),
    "size mismatch": ({"population": {"size": 5}}, "population.size", "2 nodes"),
    "isolated node": ({"topology": {"generator": "empty_graph", "params": {"n": 3}}}, "topology",
                      "isolated"),
    "bad import path": ({"population": {"agent": {"model": "no_such_mod:Agent"}}},
                        "population.agent.model", "cannot import"),
    "model not fitting": ({"population": {"agent": {"model": "collections:OrderedDict"}}},
                          "population.agent.model", "Params"),
    "group outside graph": ({"population": {"groups": [{"nodes": [7], "lr": 0.1}]}},
                            "population.groups[0].nodes", "outside"),
    "compile backend": ({"training": {"compile": "fastest"}}, "training.compile", "inductor"),
    "probability range": ({"topology": {"generator": "erdos_renyi_graph",
                                        "params": {"n": 2, "p": 1.5}}}, "topology.params.p", "[0, 1]"),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_field_names_file_and_path(case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    override, path, allowed = BAD_CASES[case]
    data = tiny_config(tmp_path)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            merged = dict(data[key])
            for k, v in value.items():
                nested = isinstance(v, dict) and isinstance(merged.get(k), dict)
                merged[k] = {**merged[k], **v} if nested else v
            data[key] = merged
        else:
            data[key] = value
    cfg_path = write(tmp_path, data)
    for command in ("validate", "run"):
        code, err = run_cli([command, str(cfg_path)], capsys)
        assert code == 2, (case, command, err)
        line = err.strip()
        assert "\n" not in line and "Traceback" not in line
        assert str(cfg_path) in line and path in line and allowed in line, line
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    "text, expect",
    [
        ("training: [1, 2\n", "YAML syntax error"),
        ("- just\n- a list\n", "must hold a mapping"),
        ("seed: !!python/object/apply:os.system ['echo hi']\n", "not allowed"),
        ("seed: 1\nseed: 2\n", "duplicate key"),
    ],
)
def test_bad_files(text: str, expect: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, text)
    code, err = run_cli(["validate", str(path)], capsys)
    assert code == 2 and expect in err and str(path) in err


def test_missing_and_unreadable_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run_cli(["run", str(tmp_path / "absent.yaml")], capsys)
    assert code == 2 and "file not found" in err
    code, err = run_cli(["validate", str(tmp_path)], capsys)
    assert code == 2 and "directory" in err
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    code, err = run_cli(["validate", str(binary)], capsys)
    assert code == 2 and str(binary) in err


def test_overrides_are_validated(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, tiny_config(tmp_path))
    code, err = run_cli(["validate", str(path), "--set", "training.rounds=-1"], capsys)
    assert code == 2 and "training.rounds" in err
    code, err = run_cli(["validate", str(path), "--set", "nonsense"], capsys)
    assert code == 2 and "--set" in err
    cfg = load_config(path, ["training.rounds=50", "topology.params.n=3", "population.agent.lr=1e-3"])
    assert cfg.training.rounds == 50 and cfg.topology.params["n"] == 3
    assert cfg.population.agent.lr == pytest.approx(1e-3)


def test_valid_config_and_groups(tmp_path: Path) -> None:
    data = tiny_config(tmp_path, topology={"generator": "cycle_graph", "params": {"n": 4}})
    data["population"]["groups"] = [{"nodes": [1, 3], "lr": 0.01, "params": {"cell": "lstm"}}]
    cfg = build_config(data, "x.yaml")
    assert cfg.population.spec_for(1).params["cell"] == "lstm"
    assert cfg.population.spec_for(1).params["hidden_size"] == 32
    assert cfg.population.spec_for(0).lr == 0.005 and cfg.population.spec_for(3).lr == 0.01
    with pytest.raises(AttributeError):
        cfg.seed = 3  # type: ignore[misc]
    assert cfg.digest() == build_config(data, "y.yaml").digest()


def test_validate_exit_zero_and_no_traceback_from_subprocess(tmp_path: Path) -> None:
    good = write(tmp_path, tiny_config(tmp_path), "good.yaml")
    bad = write(tmp_path, {"training": {"rounds": 0}}, "bad.yaml")
    exe = [sys.executable, "-m", "neurocomm.platform.cli"]
    ok = subprocess.run([*exe, "validate", str(good)], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert "valid" in ok.stdout
    fail = subprocess.run([*exe, "run", str(bad)], capture_output=True, text=True, timeout=120)
    assert fail.returncode == 2
    assert fail.stderr.count("\n") == 1 and "Traceback" not in fail.stderr
    assert "bad.yaml: training.rounds: must be >= 1" in fail.stderr


def test_config_error_line() -> None:
    err = ConfigError("must be >= 1", path="rounds").at(source="f.yaml", prefix="training")
    assert err.line() == "f.yaml: training.rounds: must be >= 1"


@pytest.mark.parametrize("name, digest", [("quickstart", "fdd17e44d44f32d9"),
                                          ("naming_game", "3520069ef7dddf00"),
                                          ("reconstruction", "4bd1f82abd283630")])
def test_digest_is_unchanged_since_0_1(name: str, digest: str) -> None:
    """The digests 0.1 saved with these configs' runs: fields added since, at their defaults,
    must not change them, or every older run directory would refuse to resume without --force."""
    assert load_config(Path(__file__).resolve().parents[1] / "configs" / f"{name}.yaml").digest() == digest
