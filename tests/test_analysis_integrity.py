"""analyze/report refuse logs with a gap or a duplicate, mistyped Parquet columns, and never
import plug-in code named by a run directory unless told to (--trust)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from tests.test_analysis_rundir import make_fake_run

EXE = str(Path(sys.executable).parent / "neurocomm")


@pytest.fixture(scope="module")
def intact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished run with three metrics parts (rounds 0-9, 10-19, 20-29) and checkpoints."""
    return make_fake_run(tmp_path_factory.mktemp("intact"), rounds=30)


def copy(run: Path, tmp_path: Path, name: str) -> Path:
    return Path(shutil.copytree(run, tmp_path / name, ignore=shutil.ignore_patterns("analysis", "report")))


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


def one_line_error(out: subprocess.CompletedProcess, *needles: str) -> None:
    assert out.returncode == 2, out.stdout[-1000:] + out.stderr[-2000:]
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("neurocomm: error: "), out.stderr[-2000:]
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_intact_logs_are_analysed(intact: Path) -> None:
    out = cli("analyze", str(intact))
    assert out.returncode == 0, out.stderr[-2000:]


def test_deleted_middle_part_is_a_gap(intact: Path, tmp_path: Path) -> None:
    run = copy(intact, tmp_path, "gap")
    (run / "metrics.parquet" / "part-000001.parquet").unlink()
    one_line_error(cli("analyze", str(run)), "not intact", "rounds 10-19 are missing")
    one_line_error(cli("report", str(run)), "not intact")


def test_deleted_last_part_is_lost_rounds(intact: Path, tmp_path: Path) -> None:
    run = copy(intact, tmp_path, "lost")
    (run / "metrics.parquet" / "part-000002.parquet").unlink()
    one_line_error(cli("analyze", str(run)), "not intact", "run.json says 30 rounds")


def test_duplicated_part_is_refused(intact: Path, tmp_path: Path) -> None:
    run = copy(intact, tmp_path, "dup")
    folder = run / "metrics.parquet"
    shutil.copy(folder / "part-000001.parquet", folder / "part-000003.parquet")
    one_line_error(cli("analyze", str(run)), "not intact", "rounds 10-19 are logged more than once")
    messages = copy(intact, tmp_path, "dup_messages")
    folder = messages / "messages"
    shutil.copy(folder / "part-000000.parquet", folder / "part-000009.parquet")
    one_line_error(cli("analyze", str(messages)), "messages log is not intact")


def test_missing_edge_rows_are_refused(intact: Path, tmp_path: Path) -> None:
    run = copy(intact, tmp_path, "short")
    part = run / "metrics.parquet" / "part-000001.parquet"
    table = pq.read_table(part)
    pq.write_table(table.slice(1), part)  # round 10 loses one edge
    one_line_error(cli("analyze", str(run)), "not intact", "round 10")


def test_mistyped_parquet_column_is_one_line(intact: Path, tmp_path: Path) -> None:
    run = copy(intact, tmp_path, "mistyped")
    part = run / "metrics.parquet" / "part-000000.parquet"
    table = pq.read_table(part)
    i = table.schema.get_field_index("success")
    table = table.set_column(i, "success", pa.array(["high"] * len(table)))
    pq.write_table(table.replace_schema_metadata({"schema_version": "1"}), part)
    one_line_error(cli("analyze", str(run)), "mistyped", "success is string")


PLUGIN = """
import os, pathlib
pathlib.Path(os.environ["PLUGIN_MARKER"]).write_text("imported")
from neurocomm.agents.neuroai import NeuroAIAgent as Model
"""


def test_plugin_code_is_imported_only_with_trust(intact: Path, tmp_path: Path) -> None:
    """A run whose config names its model by import path: analyze and report refuse it (the
    plug-in's module is never imported) until --trust is given."""
    run = copy(intact, tmp_path, "plugin_run")
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["population"]["agent"]["model"] = "nc_plugin_probe:Model"
    (run / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    (tmp_path / "nc_plugin_probe.py").write_text(PLUGIN)
    marker = tmp_path / "imported.txt"
    env = {"PYTHONPATH": str(tmp_path), "PLUGIN_MARKER": str(marker)}
    for command in ("analyze", "report", "compare"):
        one_line_error(cli(command, str(run), env=env), "nc_plugin_probe:Model", "--trust")
    assert not marker.exists()
    out = cli("analyze", str(run), "--trust", env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert marker.read_text() == "imported"
    assert json.loads((run / "analysis" / "summary.json").read_text())["checkpoint_round"] == 30


@pytest.mark.parametrize("training", [{"edges_per_round": 3}, {}, {"partitioned": True},
                                      {"partitioned": True, "edges_per_round": 3}])
def test_real_run_with_a_schedule_is_intact(training: dict, tmp_path: Path) -> None:
    """No false alarm: a real run whose graph grows at round 3 (and samples 3 edges a round,
    or adds every agent's self-play edge under partitioned training) passes the check;
    removing one of its rows does not."""
    from neurocomm.platform.analysis.loading import load_run
    from neurocomm.platform.config import build_config
    from neurocomm.platform.errors import RunDirError
    from neurocomm.platform.runner import run
    from tests.conftest import tiny_config

    data = tiny_config(tmp_path, topology={"generator": "path_graph", "params": {"n": 3},
                                           "schedule": [{"at_round": 3, "add_edges": [[0, 2]]}]},
                       training={"rounds": 6, "batch_size": 8, **training})
    run_dir = run(build_config(data)).run_dir
    assert load_run(run_dir).rounds_done == 6
    part = run_dir / "metrics.parquet" / "part-000001.parquet"  # rounds 2-3
    pq.write_table(pq.read_table(part).slice(1), part)
    with pytest.raises(RunDirError, match="round 2"):
        load_run(run_dir)
