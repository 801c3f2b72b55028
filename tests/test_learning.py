"""Real torch training: a pair of agents learns the referential game well above chance."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from neurocomm.platform.config import build_config
from neurocomm.platform.runner import run
from tests.conftest import tiny_config

CHANCE = 1 / 3  # two distractors


def pair_config(tmp_path: Path, rule: str, backend: str) -> dict:
    rounds = 120 if rule == "gumbel" else 200
    return tiny_config(
        tmp_path, seed=7,
        training={"rounds": rounds, "batch_size": 32, "rule": rule},
        runtime={"backend": backend, "agent_resources": {"num_cpus": 0.1}},
        logging={"dir": str(tmp_path / "runs"), "progress": False, "messages_every": 50,
                 "messages_per_edge": 4, "chunk_rounds": 50},
    )


def final_success(run_dir: Path, last: int = 20) -> float:
    df = pd.read_parquet(run_dir / "metrics.parquet")
    return float(df[df["round"] >= df["round"].max() - last + 1]["success"].mean())


@pytest.mark.parametrize("rule", ["reinforce", "gumbel"])
def test_pair_learns_on_local_backend(rule: str, tmp_path: Path) -> None:
    result = run(build_config(pair_config(tmp_path, rule, "local")))
    assert result.status == "finished"
    assert final_success(result.run_dir) > 0.8 > CHANCE + 0.3


def test_pair_learns_on_ray_backend(tmp_path: Path, ray_session: object) -> None:
    result = run(build_config(pair_config(tmp_path, "gumbel", "ray")))
    assert final_success(result.run_dir) > 0.8


def test_untrained_pair_is_near_chance(tmp_path: Path) -> None:
    cfg = pair_config(tmp_path, "reinforce", "local")
    cfg["training"] = {**cfg["training"], "rounds": 3}
    result = run(build_config(cfg))
    df = pd.read_parquet(result.run_dir / "metrics.parquet")
    assert df[df["round"] == 0]["success"].mean() < 0.6
