"""What a run leaves behind, as one value: its directory, status and final figures, with its
config, logs and analysis read from the directory on first use.

``runner.run`` returns it when a run ends; :meth:`RunResult.load` reads the same thing back
from any run directory (``neurocomm.load_run``), so a result from a notebook and one from a
run finished last week behave alike.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from neurocomm.platform.errors import RunDirError
from neurocomm.platform.rundir import RunDir

if TYPE_CHECKING:  # pandas and the analysis are imported when first used
    import pandas as pd

    from neurocomm.platform.analysis.run_analysis import Analysis
    from neurocomm.platform.config import RunConfig


@dataclass(frozen=True)
class RunResult:
    """A run's directory and the figures the end-of-run summary prints.

    ``listener_success``: each agent's success as listener at the end (greedy evaluation at
    the last evaluated round, else the training success over the last 10% of rounds; see
    :func:`final_listener_success`), empty for a standalone scenario. ``outcome``: a standalone
    scenario's own figures (the naming game: ``converged``, ``t_conv``, ``max_words``, ...),
    empty otherwise. ``rounds``: rounds played (for a standalone scenario, records written).
    ``reason``: why a finished run ended before its last round (``training.stop_at``), else None.
    """

    run_dir: Path
    rounds: int
    wall_time: float
    listener_success: Mapping[int, float]
    status: str
    outcome: Mapping[str, Any] = field(default_factory=dict)
    reason: str | None = None  # why a finished run ended early (training.stop_at)

    @property
    def mean_success(self) -> float:
        values = list(self.listener_success.values())
        return float(sum(values) / len(values)) if values else math.nan

    @classmethod
    def load(cls, path: str | Path) -> RunResult:
        """The result of the run in ``path`` as it is on disk now (finished, stopped or live);
        RunDirError (one line) when ``path`` is not a run directory."""
        run_dir = RunDir(Path(path))
        if not run_dir.path.is_dir():
            raise RunDirError(f"{run_dir.path}: no such run directory")
        status = run_dir.status()
        done = int(status.get("rounds_done") or 0)
        outcome = dict(status.get("outcome") or {})
        standalone = bool(status.get("standalone"))
        success = {} if standalone else final_listener_success(run_dir, done)
        wall = status.get("wall_time")
        return cls(run_dir.path, done, float(wall) if wall is not None else math.nan, success,
                   str(status.get("status", "unknown")), outcome, status.get("reason"))

    # ------------------------------------------------------------------ read on first use

    @cached_property
    def config(self) -> RunConfig:
        """The run's resolved config (``config.yaml``), validated."""
        return RunDir(self.run_dir).config()

    @cached_property
    def flat_config(self) -> pd.Series:
        """The config as one value per field path (``training.rounds`` -> 600), as ``compare``
        reads it to label conditions."""
        import pandas as pd

        from neurocomm.platform.analysis.compare import flat_config

        return pd.Series(flat_config(self.run_dir), name=self.run_dir.name, dtype=object)

    @cached_property
    def metrics(self) -> pd.DataFrame:
        """``metrics.parquet``: one row per round x directed edge (a standalone scenario: one
        row per record), docs/logs.md."""
        import pandas as pd

        from neurocomm.platform.analysis.loading import read_metrics

        run_dir = RunDir(self.run_dir)
        if run_dir.status().get("standalone"):  # the scenario's own record schema
            parts = sorted(run_dir.metrics_dir.glob("part-*.parquet"))
            return pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True) if parts \
                else pd.DataFrame()
        return read_metrics(self.run_dir)

    @cached_property
    def messages(self) -> pd.DataFrame:
        """``messages/``: one row per logged game (target and message as tuples of ints)."""
        from neurocomm.platform.analysis.loading import read_messages

        return read_messages(self.run_dir)

    def analyze(self, *, at: int | None = None, distance: str = "edit", trust: bool = False,
                write: bool = False) -> Analysis:
        """Every emergent-language measure of this run (``neurocomm analyze``; docs/analysis.md).
        ``write`` also saves the tables and summary.json under ``RUN/analysis/``."""
        from neurocomm.platform.api import analyze

        return analyze(self.run_dir, at=at, distance=distance, trust=trust, write=write)


def final_listener_success(run_dir: RunDir, done: int) -> dict[int, float]:
    """Success per agent as listener, for the end-of-run line: greedy evaluation at the last
    evaluated round, or else the mean training success over the last 10% of rounds. Summaries
    use platform/analysis's ``final_eval_success`` and ``tail_success`` instead (docs/analysis.md)."""
    import pandas as pd

    if not any(run_dir.metrics_dir.glob("part-*.parquet")):
        return {}
    df = pd.read_parquet(run_dir.metrics_dir)
    evaluated = df.dropna(subset=["eval_success"])
    if len(evaluated):
        last = evaluated[evaluated["round"] == evaluated["round"].max()]
        return {int(k): float(v) for k, v in last.groupby("listener")["eval_success"].mean().items()}
    tail = df[df["round"] >= done - max(1, done // 10)]
    return {int(k): float(v) for k, v in tail.groupby("listener")["success"].mean().items()}
