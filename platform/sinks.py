"""Tracker sinks: a run's rounds sent to TensorBoard, MLflow, W&B or a sink of your own,
chosen in YAML (``logging.sinks``, docs/trackers.md) and fed by the runner's round callback.

What is sent, and under which names, is decided here once, from the round's rows of
metrics.parquet (platform/metrics.py), so a column added there reaches every tracker:

* ``mean/<column>``: the mean over the round's directed edges that measured it (the
  evaluation columns appear at evaluated rounds only);
* ``edge/<column>/<speaker>-<listener>``: one directed edge's value (``per_edge: false``
  leaves these out, e.g. for large graphs).

The step is the ``round`` column (0 for the first round). A value that was not measured (NaN)
is not sent. A sink that fails while the run plays is reported once, recorded in events.log
(``sink_failed``) and dropped: a tracker going away never stops a run.
"""

from __future__ import annotations

import importlib.util
import json
import math
from collections.abc import Sequence
from typing import Any

from neurocomm.platform import registry
from neurocomm.platform.config_sections import SinkConfig
from neurocomm.platform.console import warn
from neurocomm.platform.errors import ConfigError
from neurocomm.platform.interfaces import SinkRun, TrackerSink
from neurocomm.platform.run_control import RoundCallback, chain_callbacks
from neurocomm.platform.rundir import RunDir
from neurocomm.platform.typed import from_mapping

ID_COLUMNS = ("round", "speaker", "listener")


def round_values(rows: Sequence[dict[str, Any]], per_edge: bool = True) -> dict[str, float]:
    """One round's values by name (the module's docstring says which)."""
    out: dict[str, float] = {}
    if not rows:
        return out
    for column in (c for c in rows[0] if c not in ID_COLUMNS):
        measured = [(row, float(row[column])) for row in rows if _number(row[column])]
        measured = [(row, v) for row, v in measured if not math.isnan(v)]
        if measured:
            out[f"mean/{column}"] = math.fsum(v for _, v in measured) / len(measured)
        if per_edge:
            for row, value in measured:
                out[f"edge/{column}/{row['speaker']}-{row['listener']}"] = value
    return out


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def flat_params(config: dict[str, Any], prefix: str = "") -> dict[str, str | float | int | bool]:
    """The config as ``section.field`` hyperparameters (lists and None as text), for trackers
    whose parameters are flat."""
    out: dict[str, str | float | int | bool] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flat_params(value, f"{name}."))
        elif isinstance(value, bool | int | float | str):
            out[name] = value
        else:
            out[name] = json.dumps(value, default=str)
    return out


def resolve_sink(spec: SinkConfig, path: str) -> tuple[type, Any]:
    """The sink class named by ``spec`` and its checked ``Params``; ConfigError at ``path``
    (``logging.sinks[i]``) for an unknown name, bad options or a tracking library not installed."""
    try:
        cls = registry.resolve("sinks", spec.kind)
    except LookupError as err:
        raise ConfigError(str(err), path=f"{path}.kind") from None
    params_cls = getattr(cls, "Params", None)
    if params_cls is None or not callable(getattr(cls, "log", None)):
        raise ConfigError(f"{spec.kind!r} does not fit the sink interface (a Params dataclass, "
                          "log and close; platform/interfaces.py TrackerSink)", path=f"{path}.kind")
    params = from_mapping(params_cls, dict(spec.params), f"{path}.params")
    requires = getattr(cls, "requires", None)
    if requires and importlib.util.find_spec(requires[0]) is None:
        raise ConfigError(f"the {spec.kind} sink needs the {requires[0]} library, which is not "
                          f"installed; install it with: pip install 'neurocomm[{requires[1]}]'",
                          path=f"{path}.kind")
    return cls, params


def check_sinks(specs: Sequence[SinkConfig]) -> None:
    """Every sink of ``logging.sinks`` resolves, with valid options and its library installed."""
    for i, spec in enumerate(specs):
        resolve_sink(spec, f"logging.sinks[{i}]")


class Trackers:
    """The sinks of one run (or one stretch of it, when resumed), opened together.

    ``with Trackers.open(...) as trackers: result = trackers.finish(run(..., on_round=
    trackers.chain(on_round)))``: every round goes to each sink, then to the caller's own
    callback; leaving the block closes each sink with the run's status (``crashed`` when an
    exception leaves it, ``interrupted`` for Ctrl-C)."""

    def __init__(self, run_dir: RunDir, sinks: list[tuple[str, TrackerSink, bool]]) -> None:
        self.run_dir = run_dir
        self.sinks = sinks
        self.status = "crashed"

    @classmethod
    def open(cls, cfg: Any, run_dir: RunDir, *, resuming: bool) -> Trackers:
        """Open every sink of ``cfg.logging.sinks`` for the run in ``run_dir``; a sink that
        cannot open is a ConfigError naming it (the ones already open are closed)."""
        trackers = cls(run_dir, [])
        if not cfg.logging.sinks:
            return trackers
        run = SinkRun(run_dir=run_dir.path, run_id=str(run_dir.status().get("run_id", run_dir.path.name)),
                      name=cfg.name, config=cfg.to_dict(), resuming=resuming)
        for i, spec in enumerate(cfg.logging.sinks):
            path = f"logging.sinks[{i}]"
            sink_cls, params = resolve_sink(spec, path)
            try:
                trackers.sinks.append((spec.kind, sink_cls(params, run), spec.per_edge))
            except Exception as err:  # noqa: BLE001 - the library's own failure, as one line
                trackers._close_all("crashed")
                text = " ".join(str(err).split())[:300]
                raise ConfigError(f"the {spec.kind} sink cannot open: {type(err).__name__}: {text}",
                                  path=path) from None
        return trackers

    def chain(self, on_round: RoundCallback | None) -> RoundCallback | None:
        """The round callback that feeds the sinks, then calls ``on_round``."""
        if not self.sinks:
            return on_round

        def feed(done: int, rows: list[dict[str, Any]]) -> None:
            if rows:
                self.log(int(rows[0]["round"]), rows)

        return chain_callbacks([feed] + ([on_round] if on_round is not None else []))

    def log(self, step: int, rows: list[dict[str, Any]]) -> None:
        values: dict[bool, dict[str, float]] = {}  # with and without the edges, as asked
        for entry in list(self.sinks):
            kind, sink, per_edge = entry
            if per_edge not in values:
                values[per_edge] = round_values(rows, per_edge)
            try:
                sink.log(step, values[per_edge])
            except Exception as err:  # noqa: BLE001 - a tracker going away never stops a run
                self.sinks.remove(entry)
                error = " ".join(f"{type(err).__name__}: {err}".split())[:300]
                warn(f"the {kind} sink failed at round {step} ({error}); it gets no more rounds, "
                     "the run goes on")
                self.run_dir.event("sink_failed", sink=kind, round=step, error=error)
                self._close(kind, sink, "crashed")

    def finish(self, result: Any) -> Any:
        """Record the run's status for closing; returns ``result`` (a RunResult)."""
        self.status = result.status
        return result

    def __enter__(self) -> Trackers:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            self.status = "interrupted" if issubclass(exc_type, KeyboardInterrupt) else "crashed"
        self._close_all(self.status)

    def _close_all(self, status: str) -> None:
        while self.sinks:
            kind, sink, _ = self.sinks.pop()
            self._close(kind, sink, status)

    @staticmethod
    def _close(kind: str, sink: TrackerSink, status: str) -> None:
        try:
            sink.close(status)
        except Exception as err:  # noqa: BLE001 - closing never hides the run's own outcome
            warn(f"the {kind} sink failed to close: {type(err).__name__}: {err}")
