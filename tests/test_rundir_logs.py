"""The run directory and its logs: documented schema, readable by pandas, polars and duckdb."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml

from neurocomm.platform.config import build_config
from neurocomm.platform.rundir import MESSAGES_SCHEMA, METRICS_SCHEMA, SCHEMA_VERSION, RunDir
from neurocomm.platform.runner import run
from tests.conftest import tiny_config


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("logs")
    data = tiny_config(tmp, topology={"generator": "cycle_graph", "params": {"n": 3}},
                       training={"rounds": 5, "batch_size": 8},
                       logging={"dir": str(tmp / "runs"), "progress": False, "messages_every": 2,
                                "messages_per_edge": 3, "chunk_rounds": 2, "checkpoint_every": 2})
    return run(build_config(data)).run_dir


def test_layout_and_status(finished_run: Path) -> None:
    names = {p.name for p in finished_run.iterdir()}
    assert {"run.json", "config.yaml", "topology.json", "metrics.parquet", "messages",
            "events.log", "checkpoints"} <= names
    assert finished_run.name.startswith("tiny__seed1__")
    status = json.loads((finished_run / "run.json").read_text())
    assert status["status"] == "finished" and status["rounds_done"] == 5
    assert status["schema_version"] == SCHEMA_VERSION
    resolved = yaml.safe_load((finished_run / "config.yaml").read_text())
    assert resolved["training"]["rounds"] == 5 and resolved["runtime"]["agents_per_actor"] == 1
    assert status["config_hash"] == build_config(resolved).digest()
    assert not list(finished_run.rglob(".*.tmp"))


def test_metrics_rows_and_schema(finished_run: Path) -> None:
    parts = sorted((finished_run / "metrics.parquet").glob("part-*.parquet"))
    assert len(parts) == 3  # chunks of 2 rounds: 2 + 2 + 1
    assert pq.read_schema(parts[0]).remove_metadata().equals(METRICS_SCHEMA.remove_metadata())
    assert pq.read_schema(parts[0]).metadata[b"schema_version"] == str(SCHEMA_VERSION).encode()
    df = pd.read_parquet(finished_run / "metrics.parquet")
    assert len(df) == 5 * 6  # rounds x directed edges of a triangle
    assert df.groupby("round").size().tolist() == [6] * 5
    assert df["success"].between(0, 1).all() and (df["games"] == 8).all()
    assert df["eval_success"].notna().sum() == 6 * 2  # rounds 0 and 4 (eval_every=10, last round)


def test_messages_log(finished_run: Path) -> None:
    df = pd.read_parquet(finished_run / "messages")
    assert pq.read_schema(next((finished_run / "messages").glob("*.parquet"))).remove_metadata().equals(
        MESSAGES_SCHEMA.remove_metadata())
    assert sorted(df["round"].unique()) == [0, 2, 4]
    assert len(df) == 3 * 6 * 3
    assert (df["length"] == df["message"].apply(len)).all()
    assert df["message"].apply(lambda m: all(0 <= s < 6 for s in m)).all()
    assert df["target"].apply(len).eq(2).all()
    assert (df["success"] == (df["choice"] == df["target_index"])).all()


def test_other_readers(finished_run: Path) -> None:
    polars = pytest.importorskip("polars")
    duckdb = pytest.importorskip("duckdb")
    metrics = str(finished_run / "metrics.parquet" / "*.parquet")
    assert polars.read_parquet(metrics).height == 30
    assert duckdb.sql(f"select count(*) from read_parquet('{metrics}')").fetchall()[0][0] == 30


def test_checkpoints_are_safe_to_load(finished_run: Path) -> None:
    run_dir = RunDir(finished_run)
    assert [r for r, _ in run_dir.checkpoints()] == [0, 2, 4, 5]
    ckpt = run_dir.load_checkpoint(5)  # weights_only=True
    assert ckpt["rounds_done"] == 5 and sorted(ckpt["agents"]) == [0, 1, 2]
    events = [json.loads(x)["event"] for x in (finished_run / "events.log").read_text().splitlines()]
    assert events[0] == "started" and events[-1] == "finished" and "checkpoint" in events


def test_run_directories_never_collide(tmp_path: Path) -> None:
    cfg = build_config(tiny_config(tmp_path, training={"rounds": 1, "batch_size": 4}))
    a, b = RunDir.create(cfg), RunDir.create(cfg)
    assert a.path != b.path and a.path.exists() and b.path.exists()
