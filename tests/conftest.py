"""Shared fixtures: one lazily started loopback Ray for the whole session, tiny configs."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def _ray_shutdown_at_end() -> Iterator[None]:
    yield
    import ray

    if ray.is_initialized():
        ray.shutdown()


@pytest.fixture
def ray_session(_ray_shutdown_at_end: None) -> Any:
    """A single-node Ray on 127.0.0.1, started on first use and shared by the tests after it
    (the cluster tests, which run last, replace it with their own multi-node cluster)."""
    from neurocomm.platform.raysession import ensure_ray

    return ensure_ray(None, object_store_mb=128, num_cpus=2)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Multi-node cluster tests last: they shut the session Ray down."""
    items.sort(key=lambda item: item.get_closest_marker("cluster") is not None)


def tiny_config(tmp_path: Path, **sections: Any) -> dict[str, Any]:
    """A small valid config as a plain mapping (sections override the defaults)."""
    cfg: dict[str, Any] = {
        "name": "tiny",
        "seed": 1,
        "topology": {"generator": "complete_graph", "params": {"n": 2}},
        "population": {
            "vocab_size": 6,
            "max_len": 2,
            "agent": {"lr": 0.005, "params": {"hidden_size": 32, "embed_size": 16,
                                               "perception_layers": [32]}},
        },
        "scenario": {"name": "referential",
                     "params": {"n_attributes": 2, "n_values": 3, "n_distractors": 2}},
        "training": {"rounds": 5, "batch_size": 16},
        "runtime": {"backend": "local"},
        "logging": {"dir": str(tmp_path / "runs"), "progress": False, "messages_every": 1,
                    "messages_per_edge": 4, "chunk_rounds": 2},
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key] = {**cfg[key], **value}
        else:
            cfg[key] = value
    return cfg
