"""Metric names are spelled once (platform/metrics.py): the record types generate the Parquet
schemas and the rows, so a misspelt metric fails where it is written."""

from __future__ import annotations

import dataclasses
import inspect
import math
from pathlib import Path

import pyarrow as pa
import pytest

from neurocomm.agents.rules import Reinforce
from neurocomm.platform.backends import LocalBackend, RayBackend
from neurocomm.platform.interfaces import Backend
from neurocomm.platform.metrics import (
    MESSAGES_SCHEMA,
    METRICS_SCHEMA,
    EdgeStats,
    LoggedGame,
    MetricsRow,
)
from neurocomm.platform.rundir import METRICS_SCHEMA as RUNDIR_METRICS_SCHEMA
from neurocomm.platform.runner import metric_rows
from neurocomm.platform.shard import ShardReport
from tests.conftest import REPO


def test_a_misspelt_metric_fails_where_it_is_written() -> None:
    stats = EdgeStats()
    with pytest.raises(AttributeError):
        stats.sucess = 1.0  # type: ignore[attr-defined]
    with pytest.raises(KeyError):
        stats.set_eval("test", 1.0)  # no column for that split


def test_schemas_are_generated_from_the_records() -> None:
    assert RUNDIR_METRICS_SCHEMA is METRICS_SCHEMA
    stats = [f.name for f in dataclasses.fields(EdgeStats)]
    assert METRICS_SCHEMA.names == ["round", "speaker", "listener", *stats, "elapsed_s"]
    assert METRICS_SCHEMA.field("games").type == pa.int32()
    assert METRICS_SCHEMA.field("success").type == pa.float64()
    assert MESSAGES_SCHEMA.names == [f.name for f in dataclasses.fields(LoggedGame)]
    assert MESSAGES_SCHEMA.field("message").type == pa.list_(pa.int16())
    assert MESSAGES_SCHEMA.field("success").type == pa.bool_()


def _documented_columns(title: str) -> list[str]:
    text = (REPO / "docs" / "logs.md").read_text()
    section = text.split(title, 1)[1].split("\n## ", 1)[0]
    cells = [line.split("|")[1] for line in section.splitlines() if line.startswith("| `")]
    return [name.strip(" `") for cell in cells for name in cell.split(",")]


def test_docs_list_exactly_the_generated_columns() -> None:
    assert _documented_columns("## `metrics.parquet`") == METRICS_SCHEMA.names
    assert _documented_columns("## `messages/`") == MESSAGES_SCHEMA.names


def test_rows_fit_the_schema_and_unmeasured_values_are_nan(tmp_path: Path) -> None:
    stats = EdgeStats(games=8, success=0.5)
    stats.set_eval("eval", 0.75)
    rows = metric_rows(3, ShardReport({(1, 0): stats, (0, 1): EdgeStats(games=8, entropy=1.0)}), 1.5)
    table = pa.Table.from_pylist(rows, schema=METRICS_SCHEMA)  # raises on a column too many
    assert table.num_rows == 2 and [r["speaker"] for r in rows] == [0, 1]
    assert rows[1]["eval_success"] == 0.75 and math.isnan(rows[1]["heldout_success"])
    assert [r["elapsed_s"] for r in rows] == [1.5, 1.5]
    assert set(rows[0]) == set(METRICS_SCHEMA.names)
    game = LoggedGame(round=0, speaker=0, listener=1, game=0, target=[1, 2], message=[3, 0], length=2,
                      choice=1, target_index=1, success=True)
    assert pa.Table.from_pylist([game.as_dict()], schema=MESSAGES_SCHEMA).num_rows == 1


def test_merging_one_edge_from_two_shards_keeps_what_each_measured() -> None:
    speaker_side = EdgeStats(entropy=1.5, msg_length=2.0, speaker_loss=0.3)
    listener_side = EdgeStats(games=16, success=0.25, listener_loss=0.7)
    speaker_side.update(listener_side)
    row = MetricsRow(0, 0, 1, speaker_side, 0.0).as_dict()
    assert (row["games"], row["success"], row["entropy"], row["speaker_loss"]) == (16, 0.25, 1.5, 0.3)


@pytest.mark.parametrize("backend", [LocalBackend, RayBackend])
def test_both_backends_offer_every_backend_method(backend: type) -> None:
    wanted = {n for n, v in vars(Backend).items() if inspect.isfunction(v) and not n.startswith("_")}
    assert wanted <= {n for n in dir(backend) if callable(getattr(backend, n))}
    assert isinstance(backend.name, str)


def test_negative_length_cost_names_length_cost() -> None:
    with pytest.raises(ValueError, match="^length_cost: must be >= 0"):
        Reinforce.Params(length_cost=-0.1).check()
    with pytest.raises(ValueError, match="^entropy_coeff: must be >= 0"):
        Reinforce.Params(entropy_coeff=-0.1).check()
