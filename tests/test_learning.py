"""Real torch training: a pair of agents learns the referential game well above chance."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from neurocomm.platform.config import build_config
from neurocomm.platform.runner import run
from tests.conftest import tiny_config

CHANCE = 1 / 3  # two distractors
THRESHOLD = 0.7


def pair_config(tmp_path: Path, rule: str, backend: str) -> dict:
    cfg = tiny_config(
        tmp_path, seed=7,
        training={"rounds": 200 if rule == "gumbel" else 300, "batch_size": 32, "rule": rule},
        runtime={"backend": backend, "agent_resources": {"num_cpus": 0.1}},
        logging={"dir": str(tmp_path / "runs"), "progress": False, "messages_every": 100,
                 "messages_per_edge": 4, "chunk_rounds": 50, "eval_every": 50},
    )
    cfg["population"]["agent"] = {"lr": 0.005, "params": {"hidden_size": 64, "embed_size": 32,
                                                          "perception_layers": [64]}}
    return cfg


def final_eval_success(run_dir: Path) -> float:
    """Greedy success on each edge's fixed evaluation set at the last round."""
    df = pd.read_parquet(run_dir / "metrics.parquet").dropna(subset=["eval_success"])
    return float(df[df["round"] == df["round"].max()]["eval_success"].mean())


@pytest.mark.parametrize("rule", ["reinforce", "gumbel"])
def test_pair_learns_on_local_backend(rule: str, tmp_path: Path) -> None:
    result = run(build_config(pair_config(tmp_path, rule, "local")))
    assert result.status == "finished"
    assert final_eval_success(result.run_dir) > THRESHOLD > CHANCE + 0.3


def test_pair_learns_on_ray_backend(tmp_path: Path, ray_session: object) -> None:
    result = run(build_config(pair_config(tmp_path, "gumbel", "ray")))
    assert final_eval_success(result.run_dir) > THRESHOLD


def test_untrained_pair_is_near_chance(tmp_path: Path) -> None:
    cfg = pair_config(tmp_path, "reinforce", "local")
    cfg["training"] = {**cfg["training"], "rounds": 3}
    result = run(build_config(cfg))
    df = pd.read_parquet(result.run_dir / "metrics.parquet")
    assert df[df["round"] == 0]["eval_success"].mean() < 0.5
