"""Named measures of a run directory: the one registry that studies (and users) look up by name.

A :class:`Measure` turns a run into a number at the end (``at_end``) and, where it makes sense,
into a curve over the run (``over_time``: a table with columns ``round`` and ``value``). Both
take a :class:`RunMeasures`, which reads and analyses the run once and caches what it computed,
so a report asking for ten measures analyses each run once.

Most measures are keys of the run analysis summary (docs/analysis.md); the others are read from
the metrics log (``heldout_success``), from the outcome a standalone scenario wrote (the naming
game's ``t_conv`` and ``max_words``), from the dialect matrices (trends with graph distance), or
from another module (``learnability``, imported on first use).
"""

from __future__ import annotations

import importlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from neurocomm.platform.analysis.communication import population_success
from neurocomm.platform.analysis.distances import MessageDistance
from neurocomm.platform.errors import RunDirError

Curve = pd.DataFrame  # columns: round, value


class RunMeasures:
    """One run directory, read and analysed lazily (each piece at most once)."""

    def __init__(self, run_dir: str | Path, distance: MessageDistance = "edit",
                 over_time: bool = False) -> None:
        self.path = Path(run_dir)
        self.distance = distance
        # analyse the checkpoints over time on first use (when curves will be asked for too)
        self.prefer_over_time = over_time
        self._status: dict[str, Any] | None = None
        self._metrics: pd.DataFrame | None = None
        self._analysis: Any = None
        self._with_over_time = False

    @property
    def status(self) -> dict[str, Any]:
        if self._status is None:
            try:
                self._status = json.loads((self.path / "run.json").read_text())
            except (OSError, json.JSONDecodeError):
                raise RunDirError(f"{self.path}: not a run directory (no readable run.json)") from None
        return self._status

    @property
    def metrics(self) -> pd.DataFrame:
        """The metrics log as written (standalone scenarios write their own record columns)."""
        if self._metrics is None:
            parts = sorted((self.path / "metrics.parquet").glob("part-*.parquet"))
            self._metrics = pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True) if parts \
                else pd.DataFrame()
        return self._metrics

    def analysis(self, over_time: bool = False) -> Any:
        """The full :func:`analyze_run` of the run (with the checkpoints over time if asked),
        also written to RUN/analysis/ for inspection."""
        from neurocomm.platform.analysis.run_analysis import analyze_run, write_analysis

        over_time = over_time or self.prefer_over_time
        if self._analysis is None or (over_time and not self._with_over_time):
            self._analysis = analyze_run(self.path, distance=self.distance, with_over_time=over_time)
            self._with_over_time = over_time
            write_analysis(self._analysis)
        return self._analysis

    def summary(self, key: str) -> float:
        value = self.analysis().summary.get(key)
        return _number(value)

    def outcome(self, key: str) -> float:
        outcome = self.status.get("outcome")
        if not isinstance(outcome, dict):
            raise RunDirError(f"{self.path}: no standalone outcome in run.json (not a standalone run?)")
        return _number(outcome.get(key))


def _number(value: Any) -> float:
    if value is None or isinstance(value, bool | dict | list | str):
        return math.nan if not isinstance(value, bool) else float(value)
    return float(value)


@dataclass(frozen=True)
class Measure:
    name: str
    description: str
    at_end: Callable[[RunMeasures], float]
    over_time: Callable[[RunMeasures], Curve] | None = None


_REGISTRY: dict[str, Measure] = {}


def register(measure: Measure) -> Measure:
    if measure.name in _REGISTRY:
        raise ValueError(f"measure {measure.name!r} is already registered")
    _REGISTRY[measure.name] = measure
    return measure


# ---------------------------------------------------------------------- curves


def _metric_curve(column: str) -> Callable[[RunMeasures], Curve]:
    def curve(run: RunMeasures) -> Curve:
        table = population_success(run.metrics, column)
        return table.rename(columns={"success": "value"})[["round", "value"]]

    return curve


def _checkpoint_curve(column: str) -> Callable[[RunMeasures], Curve]:
    """The population row of each checkpoint's greedy language (RUN/analysis over_time)."""

    def curve(run: RunMeasures) -> Curve:
        table = run.analysis(over_time=True).tables.get("over_time", pd.DataFrame())
        if table.empty or column not in table:
            return pd.DataFrame(columns=["round", "value"])
        rows = table[(table["source"] == "checkpoint") & (table["scope"] == "population")]
        return rows[["round", column]].rename(columns={column: "value"}).reset_index(drop=True)

    return curve


def _record_curve(column: str) -> Callable[[RunMeasures], Curve]:
    """A standalone scenario's records: ``t`` (interactions) as the round."""

    def curve(run: RunMeasures) -> Curve:
        m = run.metrics
        if m.empty or column not in m:
            return pd.DataFrame(columns=["round", "value"])
        return pd.DataFrame({"round": m["t"].to_numpy(), "value": m[column].astype(float).to_numpy()})

    return curve


# ---------------------------------------------------------------------- end values


def _last_evaluated(column: str) -> Callable[[RunMeasures], float]:
    def value(run: RunMeasures) -> float:
        table = population_success(run.metrics, column)
        return float(table["success"].iloc[-1]) if len(table) else math.nan

    return value


def _trend_with_graph_distance(matrix: str) -> Callable[[RunMeasures], float]:
    """Least-squares slope of a pairwise quantity (i ≠ j) against graph distance in hops."""

    def value(run: RunMeasures) -> float:
        analysis = run.analysis()
        values = getattr(analysis, matrix)
        hops = analysis.graph_distances
        if values is None or hops is None:
            return math.nan
        off = ~np.eye(len(hops), dtype=bool) & np.isfinite(hops) & np.isfinite(values)
        x, y = hops[off].astype(float), values[off].astype(float)
        if len(x) < 2 or np.ptp(x) == 0:
            return math.nan
        return float(np.polyfit(x, y, 1)[0])

    return value


def _learnability(run: RunMeasures) -> float:
    fn = _optional("neurocomm.platform.analysis.transmission", "learnability")
    if fn is None:
        raise LookupError("learnability is not available in this installation")
    return float(fn(run.path, speaker=_sole_speaker(run.path)))


def _sole_speaker(run_dir: Path) -> int | None:
    # On one directed edge the listener never speaks: its untrained "language" must not be
    # mixed into the one the fresh listeners are taught.
    try:
        topology = json.loads((run_dir / "topology.json").read_text())
        speakers = {int(edge["source"]) for edge in topology["edges"]}
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return speakers.pop() if topology.get("directed") and len(speakers) == 1 else None


def _optional(module: str, name: str) -> Callable[..., Any] | None:
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None


SUMMARY_MEASURES = {
    "tail_success": ("mean success of training games over the last 10% of rounds", _metric_curve("success")),
    "final_eval_success": ("greedy evaluation success at the last evaluated round",
                           _metric_curve("eval_success")),
    "topsim": ("topographic similarity of the population's greedy language", _checkpoint_curve("topsim")),
    "posdis": ("positional disentanglement", _checkpoint_curve("posdis")),
    "bosdis": ("bag-of-symbols disentanglement", _checkpoint_curve("bosdis")),
    "entropy": ("entropy of whole messages, bits", _checkpoint_curve("entropy")),
    "symbols_used": ("distinct symbols used", None),
    "mean_length": ("mean message length", None),
    "synonymy": ("messages per object", None),
    "homonymy": ("objects per message", None),
    "topsim_agent_mean": ("mean over agents of each agent's topsim", None),
    "intelligibility_mean": ("mean cross-play success, i ≠ j", _checkpoint_curve("intelligibility")),
    "intelligibility_neighbours": ("cross-play success between graph neighbours", None),
    "intelligibility_strangers": ("cross-play success between agents that never talked", None),
    "language_distance_mean": ("mean language distance between agents",
                               _checkpoint_curve("language_distance")),
    "mantel_r": ("Mantel correlation of language distance with graph distance", None),
    "mantel_p": ("Mantel test p-value (one-sided, greater)", None),
    "language_clusters": ("number of language clusters", None),
    "clusters_communities_nmi": ("agreement of language clusters with graph communities", None),
}

for _name, (_text, _curve) in SUMMARY_MEASURES.items():
    register(Measure(_name, _text, lambda run, key=_name: run.summary(key), _curve))

for _t in ("0.5", "0.8", "0.9"):
    register(Measure(f"rounds_to_success_{_t}", f"rounds until the 10-round mean success reaches {_t}",
                     lambda run, t=_t: _number(run.analysis().summary["rounds_to_success"].get(t))))

register(Measure("heldout_success", "greedy success on held-out objects at the last evaluated round",
                 _last_evaluated("heldout_success"), _metric_curve("heldout_success")))
register(Measure("intelligibility_distance_slope",
                 "slope of cross-play success against graph distance (hops), i ≠ j",
                 _trend_with_graph_distance("intelligibility")))
register(Measure("language_distance_slope", "slope of language distance against graph distance (hops)",
                 _trend_with_graph_distance("language_distances")))
register(Measure("t_conv", "naming game: interactions until consensus (NaN if none)",
                 lambda run: run.outcome("t_conv"), _record_curve("n_distinct")))
register(Measure("max_words", "naming game: peak total number of words N_w^max",
                 lambda run: run.outcome("max_words"), _record_curve("n_words")))
register(Measure("converged", "naming game: 1 if consensus was reached",
                 lambda run: run.outcome("converged"), _record_curve("success_rate")))
register(Measure("learnability", "mean success of fresh listeners trained on the frozen speakers' language",
                 _learnability))


def available(name: str) -> bool:
    """Whether ``name`` is registered and everything it needs can be imported."""
    if name not in _REGISTRY:
        return False
    if name == "learnability":
        return _optional("neurocomm.platform.analysis.transmission", "learnability") is not None
    return True


def resolve(name: str) -> Measure:
    """The measure called ``name``; LookupError (one line, naming the known ones) otherwise."""
    if not available(name):
        known = ", ".join(n for n in sorted(_REGISTRY) if available(n))
        raise LookupError(f"unknown measure {name!r}; known: {known}")
    return _REGISTRY[name]


def names() -> list[str]:
    return sorted(n for n in _REGISTRY if available(n))


def measure(name: str, run_dir: str | Path, distance: MessageDistance = "edit") -> float:
    """The value of measure ``name`` at the end of the run in ``run_dir``."""
    return resolve(name).at_end(RunMeasures(run_dir, distance))
