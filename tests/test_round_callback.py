"""The runner's per-round callback: it sees each round's metric rows as they are logged and
can stop the run after a round, which then ends as after Ctrl-C (interrupted, checkpointed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from neurocomm.platform.config import build_config
from neurocomm.platform.rundir import RunDir
from neurocomm.platform.runner import run
from neurocomm.platform.topology import Topology
from tests.conftest import tiny_config


def test_round_callback_sees_rows_and_stops_the_run(tmp_path: Path) -> None:
    cfg = build_config(tiny_config(tmp_path, training={"rounds": 8, "batch_size": 16}))
    seen: list[tuple[int, list[dict[str, Any]]]] = []

    def on_round(done: int, rows: list[dict[str, Any]]) -> bool:
        seen.append((done, rows))
        return done == 3

    result = run(cfg, on_round=on_round)
    # the round already in flight when asked to stop is finished and logged
    assert result.status == "interrupted" and result.rounds in (3, 4)
    assert [d for d, _ in seen] == list(range(1, result.rounds + 1))
    logged = pd.read_parquet(result.run_dir / "metrics.parquet")
    handed = pd.DataFrame([row for _, rows in seen for row in rows])
    columns = ["round", "speaker", "listener", "games", "success", "listener_loss"]
    assert handed[columns].to_numpy().tolist() == logged[columns].to_numpy().tolist()
    assert json.loads((result.run_dir / "run.json").read_text())["status"] == "interrupted"
    run_dir = RunDir(result.run_dir)
    assert run_dir.checkpoints()[-1][0] == result.rounds

    # The stopped run carries on to the end with `resume`, the callback still called.
    more: list[int] = []
    resumed = run(cfg, topology=Topology.load(result.run_dir / "topology.json"), resume=run_dir,
                  on_round=lambda done, rows: more.append(done))
    assert resumed.status == "finished" and more == list(range(result.rounds + 1, 9))
