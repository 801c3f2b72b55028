"""Communicative success over rounds, from the metrics log (one row per round × directed edge).

Means over edges are weighted by the number of games each edge played in that round.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd


def _weighted_mean(frame: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    ok = frame[np.isfinite(frame["success"])]
    weight = ok["games"].clip(lower=1).astype(float)
    tmp = ok.assign(_w=weight, _ws=weight * ok["success"])
    grouped = tmp.groupby(by, sort=True)[["_w", "_ws"]].sum()
    return (grouped["_ws"] / grouped["_w"]).rename("success").reset_index()


def success_by_edge(metrics: pd.DataFrame) -> pd.DataFrame:
    """Columns round, speaker, listener, games, success: each directed edge's success curve."""
    cols = ["round", "speaker", "listener", "games", "success"]
    return metrics[cols].sort_values(["speaker", "listener", "round"]).reset_index(drop=True)


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


def population_success(metrics: pd.DataFrame) -> pd.DataFrame:
    """Columns round, success: the population's mean over all edges that played."""
    return _weighted_mean(metrics, ["round"])


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


def final_success(metrics: pd.DataFrame, fraction: float = 0.1) -> dict[str, float]:
    """Mean success over the last ``fraction`` of the rounds logged: population and per agent.

    Keys: ``population``, ``speaker:{id}``, ``listener:{id}``.
    """
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
