"""Communicative success over rounds, from the metrics log (one row per round × directed edge).

Two success columns are read: ``success``, the training games of the round (sampled messages),
and ``eval_success``, greedy messages on a fixed evaluation set, logged every
``logging.eval_every`` rounds (NaN in between, and absent from older runs). Means over edges are
weighted by the number of games each edge played in that round.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd


def _weighted_mean(frame: pd.DataFrame, by: list[str], column: str = "success") -> pd.DataFrame:
    """Mean of ``column`` per group, weighted by games; the result column is named ``success``."""
    if column not in frame:
        return pd.DataFrame(columns=[*by, "success"])
    ok = frame[np.isfinite(frame[column].astype(float))]
    weight = ok["games"].clip(lower=1).astype(float)
    tmp = ok.assign(_w=weight, _ws=weight * ok[column].astype(float))
    grouped = tmp.groupby(by, sort=True)[["_w", "_ws"]].sum()
    return (grouped["_ws"] / grouped["_w"]).rename("success").reset_index()


def success_by_edge(metrics: pd.DataFrame) -> pd.DataFrame:
    """Columns round, speaker, listener, games, success, eval_success: each directed edge's curves."""
    cols = ["round", "speaker", "listener", "games", "success"]
    out = metrics[cols].assign(eval_success=metrics.get("eval_success", np.nan))
    return out.sort_values(["speaker", "listener", "round"]).reset_index(drop=True)


def success_by_agent(metrics: pd.DataFrame) -> pd.DataFrame:
    """Columns round, agent, role (speaker | listener), success: mean over the agent's edges."""
    parts = []
    for role in ("speaker", "listener"):
        part = _weighted_mean(metrics, ["round", role]).rename(columns={role: "agent"})
        parts.append(part.assign(role=role))
    out = pd.concat(parts, ignore_index=True)
    return (
        out[["round", "agent", "role", "success"]]
        .sort_values(["role", "agent", "round"])
        .reset_index(drop=True)
    )


def population_success(metrics: pd.DataFrame, column: str = "success") -> pd.DataFrame:
    """Columns round, success: the population's mean of ``column`` over the edges that have it.

    ``column="eval_success"`` gives the greedy evaluation curve (only the evaluated rounds).
    """
    return _weighted_mean(metrics, ["round"], column)


def smoothed(values: pd.Series, window: int) -> pd.Series:
    """Trailing moving average over ``window`` entries (fewer at the start)."""
    return values.rolling(max(1, window), min_periods=1).mean()


def rounds_to_threshold(curve: pd.DataFrame, threshold: float, window: int = 10) -> int | None:
    """Rounds played until the trailing ``window``-round mean success first reaches ``threshold``.

    ``curve`` has columns round, success (e.g. :func:`population_success`). The answer counts
    rounds, so reaching it during round r (0-based) gives r + 1; None when never reached.
    """
    if curve.empty:
        return None
    ordered = curve.sort_values("round")
    reached = smoothed(ordered["success"].reset_index(drop=True), window) >= threshold
    if not reached.any():
        return None
    return int(ordered["round"].iloc[int(np.argmax(reached.to_numpy()))]) + 1


def tail_success(metrics: pd.DataFrame, fraction: float = 0.1) -> dict[str, float]:
    """Mean training success over the last ``fraction`` of the rounds logged (sampled messages,
    while learning): keys ``population``, ``speaker:{id}``, ``listener:{id}``."""
    if metrics.empty:
        return {"population": math.nan}
    last = int(metrics["round"].max())
    span = max(1, int(round((last + 1) * fraction)))
    tail = metrics[metrics["round"] > last - span]
    out = {"population": float(population_success(tail)["success"].mean())}
    for role in ("speaker", "listener"):
        per = _weighted_mean(tail, [role])
        out.update({f"{role}:{int(a)}": float(s) for a, s in zip(per[role], per["success"])})
    return out


def final_eval_success(metrics: pd.DataFrame) -> float:
    """The population's greedy-evaluation success at the last evaluated round (fixed evaluation
    sets, no sampling); NaN when no evaluation was logged. The headline of summaries."""
    if metrics.empty:
        return math.nan
    evaluated = population_success(metrics, "eval_success")
    return float(evaluated["success"].iloc[-1]) if len(evaluated) else math.nan
