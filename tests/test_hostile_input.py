"""Hostile input never hurts: absurd sizes are refused before anything is built (peak memory of
the refusing process stays at its baseline), and each malformed input gets one line and exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from neurocomm.platform.cli import main
from tests.conftest import REPO, tiny_config

# Runs the CLI as its only child and reports the child's exit code, stderr and peak RSS.
MEASURE = """
import json, resource, subprocess, sys
done = subprocess.run([sys.executable, "-m", "neurocomm.platform.cli", *sys.argv[1:]],
                      capture_output=True, text=True, timeout=240)
peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"code": done.returncode, "stderr": done.stderr, "peak_mb": peak_kb / 1024}))
"""


def measured(args: list[str]) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-c", MEASURE, *args], capture_output=True, text=True,
                          timeout=300, cwd=REPO, check=True)  # the timeout guards against a hang
    return json.loads(done.stdout)


def write(tmp_path: Path, data: object, name: str = "cfg.yaml") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


def billion_laughs() -> str:
    text = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    previous = "a"
    for name in "bcdefghi":
        text += f"{name}: &{name} [" + ",".join([f"*{previous}"] * 9) + "]\n"
        previous = name
    return text


FILE_CASES = {
    "billion laughs": (billion_laughs(), "expands to more than"),
    "deep nesting": ("a: " + "[" * 50_000 + "]" * 50_000 + "\n", "nested deeper than"),
    "recursive alias": ("a: &a [*a]\n", "recursive"),
}

# (--set overrides, generator or None, the field path named, words in the message)
SIZE_CASES = {
    "n 1e13": (["topology.params.n=10000000000000"], None, "topology.params", "nodes"),
    "n 1e9": (["topology.params.n=1000000000"], None, "topology.params", "GB"),
    "complete 30000": (["topology.params.n=30000"], "complete_graph", "topology.params", "edges"),
    "gnp 1e6": (["topology.params={n: 1000000, p: 0.00001}"], "erdos_renyi_graph",
                "topology.params", "fast_gnp_random_graph"),
    "n_attributes 1e13": (["scenario.params.n_attributes=10000000000000"], None, "scenario.params",
                          "parameters"),
    "hidden 1e9": (["population.agent.params.hidden_size=1000000000"], None,
                   "population.agent.params", "parameters"),
    "vocab 1e9": (["population.vocab_size=1000000000"], None, "population.vocab_size",
                  "parameters"),
    "batch 1e9": (["training.batch_size=1000000000"], None, "training.batch_size", "activations"),
    "object store 1e9 MB": (["runtime.backend=ray", "runtime.object_store_mb=1000000000"], None,
                            "runtime.object_store_mb", "object store"),
    "a million agents": (["topology.params.n=1000000", "runtime.backend=ray"], "cycle_graph",
                         "topology", "processes"),
}


def test_absurd_input_refused_without_memory_growth(tmp_path: Path) -> None:
    baseline_cfg = write(tmp_path, tiny_config(tmp_path), "tiny.yaml")
    base = measured(["validate", str(baseline_cfg)])
    assert base["code"] == 0, base
    limit = float(base["peak_mb"]) + 200  # what importing and checking a tiny config takes
    for case, (text, words) in FILE_CASES.items():
        path = write(tmp_path, text, "hostile.yaml")
        got = measured(["validate", str(path)])
        line = str(got["stderr"]).strip()
        assert got["code"] == 2 and "\n" not in line and words in line, (case, got)
        assert float(got["peak_mb"]) < limit, (case, got, base)
    for case, (overrides, generator, field, words) in SIZE_CASES.items():
        data = tiny_config(tmp_path)
        if generator:
            data["topology"]["generator"] = generator
        path = write(tmp_path, data, "sizes.yaml")
        args = [a for o in overrides for a in ("--set", o)]
        got = measured(["validate", str(path), *args])
        line = str(got["stderr"]).strip()
        assert got["code"] == 2 and "\n" not in line and "Traceback" not in line, (case, got)
        assert f"{path}: {field}" in line and words in line, (case, line)
        assert float(got["peak_mb"]) < limit, (case, got, base)


def _with(data: dict, **sections: dict) -> dict:
    for key, value in sections.items():
        data[key] = {**data.get(key, {}), **value}
    return data


BAD = {
    "lr inf": ({"population": {"agent": {"lr": float("inf"), "params": {}}}},
               "population.agent.lr", "finite"),
    "group lr nan": ({"population": {"groups": [{"nodes": [0], "lr": float("nan")}]}},
                     "population.groups[0].lr", "finite"),
    "rule param inf": ({"training": {"rule": "reinforce", "rule_params": {"entropy_coeff": float("inf")}}},
                       "training.rule_params.entropy_coeff", "finite"),
    "model param inf": ({"population": {"agent": {"params": {"monitor_weight": float("-inf")}}}},
                        "population.agent.params.monitor_weight", "finite"),
    "scenario param nan": ({"scenario": {"name": "reconstruction",
                                         "params": {"heldout_fraction": float("nan")}}},
                           "scenario.params.heldout_fraction", "finite"),
    "int beyond 64 bits": ({"seed": 2**70}, "seed", "63 bits"),
    "topology param inf": ({"topology": {"generator": "random_geometric_graph",
                                         "params": {"n": 4, "radius": float("inf")}}},
                           "topology.params.radius", "finite"),
    "self-loop scheduled": ({"topology": {"schedule": [{"at_round": 2, "add_edges": [[1, 1]]}]}},
                            "topology.schedule[0].add_edges", "self-loop"),
    "agent isolated by schedule": (
        {"topology": {"generator": "path_graph", "params": {"n": 3},
                      "schedule": [{"at_round": 2, "remove_edges": [[1, 2]]}]}},
        "topology.schedule[0].remove_edges", "no partner"),
    "name ..": ({"name": ".."}, "name", "safe folder name"),
    "name with slash": ({"name": "a/../../b"}, "name", "safe folder name"),
    "negative num_gpus": ({"runtime": {"agent_resources": {"num_gpus": -1}}},
                          "runtime.agent_resources.num_gpus", ">= 0"),
    "negative memory_mb": ({"runtime": {"agent_resources": {"memory_mb": -5}}},
                           "runtime.agent_resources.memory_mb", ">= 1"),
    "negative max_restarts": ({"runtime": {"max_restarts": -1}}, "runtime.max_restarts", ">= 0"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_malformed_values_one_line_exit_2(case: str, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    change, field, words = BAD[case]
    data = tiny_config(tmp_path)
    for key, value in change.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    if case == "model param inf":
        data["population"]["agent"]["params"] = {"monitor_weight": float("-inf")}
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(data))
    for command in ("validate", "run"):
        assert main([command, str(path)]) == 2, (case, command)
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and f"{path}: {field}" in err and words in err, (case, err)
    assert not (tmp_path / "runs").exists()


def test_graph_files_inf_weight_and_malformed_graphml(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    files = {
        "inf.edgelist": ("0 1 inf\n1 2 1\n", "finite"),
        "nan.edgelist": ("0 1 nan\n1 2 1\n", "finite"),
        "broken.graphml": ("<graphml><graph edgedefault='undirected'><node id='a'/>", "ParseError"),
        "wrong.graphml": ("<?xml version='1.0'?><graphml xmlns='http://graphml.graphdrawing.org/xmlns'>"
                          "<key id='w' for='edge' attr.name='weight' attr.type='double'/>"
                          "<graph edgedefault='undirected'><node id='a'/><node id='b'/>"
                          "<edge source='a' target='b'><data key='w'>heavy</data></edge>"
                          "</graph></graphml>", "cannot read graph file"),
    }
    for name, (text, words) in files.items():
        graph = tmp_path / name
        graph.write_text(text)
        data = tiny_config(tmp_path, topology={"generator": None, "file": str(graph)})
        path = write(tmp_path, data)
        assert main(["validate", str(path)]) == 2, name
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and "topology." in err and words in err, (name, err)


def test_import_path_failures_are_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "raises_value.py").write_text("raise ValueError('plug-in\\nnot configured')\n")
    (tmp_path / "exits.py").write_text("import sys\nsys.exit(3)\n")
    (tmp_path / "lookup.py").write_text("def __getattr__(name):\n    raise KeyError(name)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for module, words in (("raises_value", "ValueError: plug-in not configured"),
                          ("exits", "SystemExit: 3"), ("lookup", "KeyError")):
        data = tiny_config(tmp_path)
        data["population"]["agent"]["model"] = f"{module}:Agent"
        path = write(tmp_path, data)
        for command in ("validate", "run"):
            assert main([command, str(path)]) == 2, module
            err = capsys.readouterr().err.strip()
            assert "\n" not in err and "population.agent.model" in err and words in err, err


def test_allocation_failure_at_run_start_is_one_line(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """A model whose real build asks torch for 256 TB: validation cannot see it (the request
    bypasses the meta device), the run start fails in torch's allocator."""
    sys.path.insert(0, str(REPO / "tests"))
    try:
        data = tiny_config(tmp_path)
        data["population"]["agent"]["model"] = "sweep_plugins:HugeBufferAgent"
        path = write(tmp_path, data)
        assert main(["validate", str(path)]) == 0
        capsys.readouterr()
        assert main(["run", str(path)]) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and "not enough memory" in err, err
        assert not (tmp_path / "runs").exists()
    finally:
        sys.path.remove(str(REPO / "tests"))
