"""platform/memory.py: a large listener cohort is heard in parts, and nothing a run computes changes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch

from neurocomm.platform import memory
from neurocomm.platform.config import build_config
from neurocomm.platform.metrics import TIMING_COLUMNS
from neurocomm.platform.rundir import RunDir
from neurocomm.platform.runner import run
from neurocomm.platform.shard import AgentShard
from tests.conftest import tiny_config


def test_parts_keep_each_agent_whole_and_respect_the_row_budget() -> None:
    rows = {1: 2, 2: 2, 3: 4, 4: 1, 5: 3}.__getitem__
    assert list(memory.parts([[1, 2, 3, 4], [5]], rows, None)) == [[1, 2, 3, 4], [5]]
    assert list(memory.parts([[1, 2, 3, 4], [5]], rows, 4)) == [[1, 2], [3], [4], [5]]
    # an agent with more rows than the budget still gets a part of its own
    assert list(memory.parts([[3, 1]], rows, 3)) == [[3], [1]]
    assert list(memory.parts([[1, 2, 3, 4]], rows, 100)) == [[1, 2, 3, 4]]


def _final_state(run_dir: Path) -> dict[str, Any]:
    return RunDir(run_dir).load_checkpoint()["agents"]


def _assert_same(a: Any, b: Any, where: str = "") -> None:
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _assert_same(a[k], b[k], f"{where}/{k}")
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    else:
        assert a == b, where


@pytest.mark.parametrize("rule", ["gumbel", "reinforce"])
def test_listening_in_parts_changes_no_number(rule: str, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    data = tiny_config(tmp_path, topology={"generator": "cycle_graph", "params": {"n": 6}},
                       training={"rounds": 4, "batch_size": 16, "rule": rule},
                       logging={"dir": str(tmp_path / "whole"), "progress": False, "messages_every": 1,
                                "messages_per_edge": 4, "eval_every": 2})
    sizes: list[int] = []
    cohorts = AgentShard._cohorts

    def counted(self: AgentShard, edges: Any, role: int, most_rows: int | None = None) -> Any:
        out = cohorts(self, edges, role, most_rows)
        if most_rows is not None:
            sizes.append(len(out))
        return out

    monkeypatch.setattr(AgentShard, "_cohorts", counted)
    whole = run(build_config(data))
    assert sizes and set(sizes) == {1}  # 12 in-edges x 16 games fit one part
    sizes.clear()
    monkeypatch.setattr(memory, "LISTEN_ROWS", 2 * 16)  # one listener (two in-edges) per part
    data["logging"] = {**data["logging"], "dir": str(tmp_path / "parts")}
    split = run(build_config(data))
    assert sizes and set(sizes) == {6}

    def metrics(r: Any) -> pd.DataFrame:
        df = pd.read_parquet(r.run_dir / "metrics.parquet").drop(columns=list(TIMING_COLUMNS))
        return df.sort_values(["round", "speaker", "listener"]).reset_index(drop=True)

    pd.testing.assert_frame_equal(metrics(whole), metrics(split), check_exact=True)
    _assert_same(_final_state(whole.run_dir), _final_state(split.run_dir))
