"""What the logs hold, spelled once: each record type generates its Parquet schema and its rows.

* :class:`EdgeStats`: what a shard measures on one directed edge in one round; a field that is
  not declared cannot be set (``slots``), so a misspelt metric fails where it is written
  instead of leaving a column of NaN.
* :class:`MetricsRow`: one row of ``metrics.parquet`` (round x directed edge): the round, the
  edge, its :class:`EdgeStats` and when the round was done (``elapsed_s``).
* :class:`LoggedGame`: one row of ``messages/`` (one logged game).

docs/logs.md describes every column.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

SCHEMA_VERSION = 1

_ARROW = {int: pa.int32(), float: pa.float64(), bool: pa.bool_()}


def _arrow(name: str, kind: Any, meta: dict[str, Any]) -> pa.Field:
    return pa.field(name, meta.get("arrow") or _ARROW[kind])


def record_schema(record: type) -> pa.Schema:
    """The Parquet schema of a record dataclass: one column per field, in order."""
    hints = typing.get_type_hints(record)
    return pa.schema(
        [_arrow(f.name, hints[f.name], dict(f.metadata)) for f in dataclasses.fields(record)],
        metadata={"schema_version": str(SCHEMA_VERSION)},
    )


@dataclass(slots=True)
class EdgeStats:
    """One edge's measurements in one round; NaN where not measured this round."""

    games: int = 0
    success: float = math.nan  # training games won, as the listener decided at the message's end
    listener_loss: float = math.nan
    speaker_loss: float = math.nan
    entropy: float = math.nan  # mean per-symbol entropy of the speaker's policy
    msg_length: float = math.nan  # mean symbols per message, end-of-message included
    eval_success: float = math.nan  # greedy evaluation on the fixed "eval" set
    heldout_success: float = math.nan  # greedy evaluation on the fixed "heldout" set

    def update(self, other: EdgeStats) -> None:
        """Take every value ``other`` measured (one edge's reports from its speaker's and its
        listener's shards); a field still at its default was not measured there."""
        for f in dataclasses.fields(self):
            value = getattr(other, f.name)
            unmeasured = math.isnan(value) if isinstance(value, float) else value == f.default
            if not unmeasured:
                setattr(self, f.name, value)

    def set_eval(self, split: str, success: float) -> None:
        setattr(self, EVAL_FIELDS[split], success)


EVAL_FIELDS = {"eval": "eval_success", "heldout": "heldout_success"}


@dataclass(frozen=True, slots=True)
class MetricsRow:
    round: int
    speaker: int
    listener: int
    stats: EdgeStats
    # seconds from the start of the run to the driver having this round's report; a resumed run
    # counts on from its checkpoint's figure (docs/logs.md)
    elapsed_s: float

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"round": self.round, "speaker": self.speaker, "listener": self.listener}
        out.update({f.name: getattr(self.stats, f.name) for f in dataclasses.fields(EdgeStats)})
        out["elapsed_s"] = self.elapsed_s
        return out


def _metrics_schema() -> pa.Schema:
    ids = [pa.field(n, pa.int32()) for n in ("round", "speaker", "listener")]
    stats = record_schema(EdgeStats)
    return pa.schema([*ids, *stats, pa.field("elapsed_s", pa.float64())], metadata=stats.metadata)


METRICS_SCHEMA = _metrics_schema()
METRIC_COLUMNS = tuple(METRICS_SCHEMA.names)
# Columns that measure the machine, not the training: they differ between two runs of the same
# config, so comparisons of runs (resume vs whole, local vs Ray) leave them out.
TIMING_COLUMNS = ("elapsed_s",)

_I16 = {"arrow": pa.int16()}
_I16_LIST = {"arrow": pa.list_(pa.int16())}


@dataclass(frozen=True, slots=True)
class LoggedGame:
    """One logged game of one edge: what was meant, said and understood."""

    round: int
    speaker: int
    listener: int
    game: int
    target: list[int] = field(metadata=_I16_LIST)  # the target's attribute values
    message: list[int] = field(metadata=_I16_LIST)  # symbols up to the end of the message
    length: int = field(metadata=_I16)
    choice: int  # the listener's pick among the candidates, -1 when it does not pick
    target_index: int  # where the target was among the candidates, -1 without candidates
    success: bool

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


MESSAGES_SCHEMA = record_schema(LoggedGame)
