"""One table across runs: each measure's mean and 95% confidence interval over seeds.

Runs are grouped by config name (``name`` in the config), and each group is labelled by its
condition: the config fields whose values differ between the runs compared (seed, name and
output folder aside), e.g. ``topology.generator=cycle_graph, training.rule=gumbel``. The
interval is Student's t interval of the mean over the runs of a group (half-width
t(0.975, n-1) · sd / √n), NaN with fewer than two runs. A measure that is undefined for a run
(e.g. a success threshold never reached) is left out of that measure's mean; ``n`` counts the
runs that have it. ``--set PATH=VALUE`` (or ``--where``) keeps only the runs whose config has
that value, e.g. one rule of a topology x rule sweep.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from scipy.stats import t as student_t

from neurocomm.platform import console
from neurocomm.platform.analysis.distances import MessageDistance
from neurocomm.platform.analysis.run_analysis import ANALYSIS_VERSION, analyze_run
from neurocomm.platform.config import apply_overrides, build_config
from neurocomm.platform.errors import ConfigError, RunDirError
from neurocomm.platform.rundir import RunDir

COMPARED = (
    "tail_success",
    "final_eval_success",
    "rounds_to_success_0.8",
    "topsim",
    "posdis",
    "bosdis",
    "entropy",
    "symbols_used",
    "mean_length",
    "intelligibility_mean",
    "intelligibility_strangers",
    "language_distance_mean",
    "mantel_r",
    "language_clusters",
    "clusters_communities_nmi",
)


def find_runs(paths: Iterable[str | Path]) -> list[tuple[Path, bool]]:
    """(run directory, named explicitly) for each path: a run, or a folder searched for runs."""
    found: list[tuple[Path, bool]] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise RunDirError(f"{path}: no such run directory or folder")
        if (path / "run.json").is_file():
            found.append((path, True))
            continue
        if not path.is_dir():
            raise RunDirError(f"{path}: not a run directory or a folder of runs")
        inside = sorted(p.parent for p in path.rglob("run.json"))
        if not inside:
            raise RunDirError(f"{path}: no run directories (folders with a run.json) inside")
        found.extend((p, False) for p in inside)
    unique: dict[Path, bool] = {}
    for p, explicit in found:
        unique[p.resolve()] = unique.get(p.resolve(), False) or explicit
    return sorted(unique.items())


def _cached(path: Path, distance: str) -> dict[str, Any] | None:
    """RUN/analysis/summary.json when it describes the run as it is now, else None."""
    try:
        summary = json.loads((path / "analysis" / "summary.json").read_text())
        status = json.loads((path / "run.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
    checkpoints = sorted(path.glob("checkpoints/round_*.pt"))
    latest = int(checkpoints[-1].stem.split("_")[1]) if checkpoints else None
    fresh = (
        summary.get("analysis_version") == ANALYSIS_VERSION
        and summary.get("distance") == distance
        and summary.get("status") == status.get("status")
        and summary.get("rounds_done") == status.get("rounds_done")
        and summary.get("checkpoint_round") == latest
        and summary.get("rounds_analysed") == summary.get("rounds_done")
    )
    return summary if fresh else None


# Config fields that differ between runs without making them different conditions.
COLUMN_WIDTH = 24  # longer condition labels get a numbered column and a legend line
NOT_CONDITIONS = ("seed", "name", "logging.dir", "logging.progress", "logging.sinks", "runtime.address")


def flat_config(path: Path) -> dict[str, Any]:
    """RUN/config.yaml as {"section.field": value} (lists as text); {} when unreadable."""
    try:
        data = yaml.safe_load((path / "config.yaml").read_text())
    except (OSError, yaml.YAMLError):
        return {}
    out: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict) and node:
            for key, value in node.items():
                walk(value, f"{prefix}{key}.")
        else:
            out[prefix[:-1]] = json.dumps(node) if isinstance(node, list | dict) else node

    walk(data if isinstance(data, dict) else {}, "")
    return out


def _value_text(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def condition_labels(names: Sequence[str], configs: Sequence[dict[str, Any]]) -> list[str]:
    """Each run's condition: ``field=value, ...`` over the config fields that vary between runs.

    A config name whose runs have no differing field, or whose label another name shares, is
    labelled by its name.
    """
    keys = sorted({k for c in configs for k in c} - set(NOT_CONDITIONS))
    varying = [k for k in keys if len({json.dumps(c.get(k), default=str) for c in configs}) > 1]
    labels = [", ".join(f"{k}={_value_text(c.get(k))}" for k in varying) for c in configs]
    names_of: dict[str, set[str]] = {}
    for name, label in zip(names, labels):
        names_of.setdefault(label, set()).add(name)
    return [label if label and len(names_of[label]) == 1 else str(name) for name, label in zip(names, labels)]


def run_summary(path: Path, distance: MessageDistance = "edit", trust: bool = False) -> dict[str, Any]:
    """The analysis summary of one run (from RUN/analysis/summary.json when it is up to date)."""
    summary = _cached(path, distance) or analyze_run(path, distance=distance, with_over_time=False,
                                                     trust=trust).summary
    flat = {k: v for k, v in summary.items() if not isinstance(v, dict)}
    for threshold, rounds in summary.get("rounds_to_success", {}).items():
        flat[f"rounds_to_success_{threshold}"] = rounds
    return flat


def matching_runs(found: list[tuple[Path, bool]], where: Sequence[str],
                  trust: bool = False) -> list[tuple[Path, bool]]:
    """The runs whose config has every ``PATH=VALUE`` of ``where`` (values read as YAML, like
    ``--set``): those the override would not change. A run whose config cannot be read is
    kept (the analysis reports it). ConfigError when a PATH or VALUE fits no run's config;
    RunDirError when no run matches."""
    kept, readable, problems = [], 0, []
    for path, explicit in found:
        try:
            cfg = RunDir(path).config(trust=trust)
        except (ConfigError, RunDirError):
            kept.append((path, explicit))
            continue
        readable += 1
        try:
            wanted = build_config(apply_overrides(cfg.to_dict(), where), source="--set")
        except ConfigError as err:
            problems.append(err)
            continue
        if wanted.digest() == cfg.digest():
            kept.append((path, explicit))
    if kept:
        return kept
    if problems and len(problems) == readable:
        raise problems[0]
    key = where[0].partition("=")[0].strip()
    seen = sorted({_value_text(flat_config(p).get(key)) for p, _ in found})
    raise RunDirError(f"no run has {' and '.join(where)} ({len(found)} runs; {key} in them: "
                      f"{', '.join(seen)})")


def summaries(paths: Sequence[str | Path], distance: MessageDistance = "edit",
              trust: bool = False, where: Sequence[str] = ()) -> pd.DataFrame:
    """One row per run found under ``paths`` (only those whose config has every ``PATH=VALUE``
    of ``where``); broken runs found inside a folder are skipped with a warning, a broken run
    named explicitly raises RunDirError."""
    rows, configs = [], []
    found = find_runs(paths)
    for path, explicit in matching_runs(found, where, trust) if where else found:
        try:
            rows.append(run_summary(path, distance, trust))
        except RunDirError as err:
            if explicit:
                raise
            console.warn(f"skipped {err}")
            continue
        configs.append(flat_config(path))
    if not rows:
        raise RunDirError("no run could be analysed")
    frame = pd.DataFrame(rows)
    frame.insert(0, "condition", condition_labels(frame["name"].astype(str).tolist(), configs))
    return frame


def mean_ci(values: Iterable[float], level: float = 0.95) -> tuple[int, float, float, float]:
    """(n, mean, low, high) of the finite values; the t interval needs n ≥ 2 (else NaN)."""
    x = np.array([v for v in values if v is not None and math.isfinite(float(v))], dtype=float)
    n = len(x)
    if n == 0:
        return 0, math.nan, math.nan, math.nan
    mean = float(x.mean())
    if n < 2:
        return 1, mean, math.nan, math.nan
    half = float(student_t.ppf(0.5 + level / 2, n - 1) * x.std(ddof=1) / math.sqrt(n))
    return n, mean, mean - half, mean + half


def comparison_table(runs: pd.DataFrame, measures: Sequence[str] = COMPARED) -> pd.DataFrame:
    """Long table: condition, name, measure, runs, n, mean, ci_low, ci_high (one row per
    config name × measure; ``condition`` labels the name, see :func:`condition_labels`)."""
    if "condition" not in runs:
        runs = runs.assign(condition=runs["name"])
    rows = []
    for (condition, name), group in runs.groupby(["condition", "name"], sort=True):
        for measure in measures:
            values = group[measure].tolist() if measure in group else []
            n, mean, low, high = mean_ci(float(v) if v is not None else math.nan for v in values)
            rows.append(
                {
                    "condition": condition,
                    "name": name,
                    "measure": measure,
                    "runs": len(group),
                    "n": n,
                    "mean": mean,
                    "ci_low": low,
                    "ci_high": high,
                }
            )
    return pd.DataFrame(rows)


def format_comparison(table: pd.DataFrame) -> str:
    """The long table as text: one column per condition, 'mean ± half-width (n)' per cell."""

    def cell(r: pd.Series) -> str:
        if r["n"] == 0:
            return "n/a"
        if not math.isfinite(r["ci_low"]):
            return f"{r['mean']:.3g} (n={r['n']})"
        return f"{r['mean']:.3g} ± {(r['ci_high'] - r['ci_low']) / 2:.2g} (n={r['n']})"

    if "condition" not in table:
        table = table.assign(condition=table["name"])
    groups = table.drop_duplicates("condition")[["condition", "name", "runs"]]
    long = any(len(c) > COLUMN_WIDTH for c in groups["condition"])
    column = {c: f"[{k + 1}]" if long else c for k, c in enumerate(groups["condition"])}
    lines = ["runs per condition:"]
    for k, (condition, name, runs) in enumerate(groups.itertuples(index=False)):
        tag = f"[{k + 1}] " if long else ""
        named = f" (config {name})" if condition != name else ""
        lines.append(f"  {tag}{condition}{named}: {runs}")
    wide = table.assign(text=table.apply(cell, axis=1), column=table["condition"].map(column))
    wide = wide.pivot(index="measure", columns="column", values="text")
    wide = wide.reindex(index=list(table["measure"].drop_duplicates()), columns=list(column.values()))
    wide.columns.name = None
    return "\n".join(lines) + "\n(mean ± 95% CI half-width over seeds)\n" + wide.to_string()


def comparison_plot(table: pd.DataFrame, out: Path) -> Path:
    """Bar chart of each measure per config name with 95% CI error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    measures = [m for m in table["measure"].drop_duplicates() if table[table["measure"] == m]["n"].sum()]
    key = "condition" if "condition" in table else "name"
    names = sorted(table[key].unique())
    cols = 4
    rows = max(1, math.ceil(len(measures) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
    for ax, measure in zip(axes.flat, measures):
        part = table[table["measure"] == measure].set_index(key).reindex(names)
        err = np.nan_to_num((part["ci_high"] - part["ci_low"]).to_numpy() / 2)
        ax.bar(range(len(names)), part["mean"].to_numpy(), yerr=err, capsize=3, color="C0")
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=7)
        ax.set_title(measure, fontsize=9)
    for ax in list(axes.flat)[len(measures) :]:
        ax.set_axis_off()
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
