"""Every per-language measure (message statistics and compositionality) of a set of utterances.

An utterance table has columns agent, object, message (tuples of ints): either the greedy
productions of agents rebuilt from a checkpoint, or the games of the messages log
(:func:`utterances_from_log`). Measures are computed for each agent as speaker and for the
``population``: every agent's utterances pooled.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from neurocomm.platform.analysis.compositionality import compositionality
from neurocomm.platform.analysis.distances import MessageDistance
from neurocomm.platform.analysis.message_stats import message_statistics

POPULATION = "population"
COLUMNS = (
    "scope",
    "n_messages",
    "entropy",
    "distinct_messages",
    "symbols_used",
    "mean_length",
    "synonymy",
    "homonymy",
    "topsim",
    "posdis",
    "bosdis",
)
MEASURES = (
    "topsim",
    "posdis",
    "bosdis",
    "entropy",
    "synonymy",
    "homonymy",
    "symbols_used",
    "mean_length",
)


def utterances_from_log(games: pd.DataFrame) -> pd.DataFrame:
    """The messages log as an utterance table (speaker → agent, target → object)."""
    out = games.rename(columns={"speaker": "agent", "target": "object"})
    return out[["agent", "object", "message"]].reset_index(drop=True)


def log_window(games: pd.DataFrame, end: int, fraction: float = 0.1) -> pd.DataFrame:
    """Games logged in the last ``fraction`` of the rounds before ``end``.

    At least the last logged round before ``end`` is kept.
    """
    before = games[games["round"] < end]
    if before.empty:
        return before
    start = end - max(1, int(round(end * fraction)))
    last_logged = int(before["round"].max())
    return before[before["round"] >= min(start, last_logged)]


def _measures(part: pd.DataFrame, distance: MessageDistance, max_items: int, seed: int) -> dict[str, float]:
    if len(part) > max_items:  # pairwise distances are quadratic: measure a fixed subsample
        part = part.sample(n=max_items, random_state=np.random.RandomState(seed))
    objects, messages = list(part["object"]), list(part["message"])
    row = message_statistics(objects, messages)
    if len(part) >= 2:
        row.update(compositionality(np.array(objects), messages, distance))
    else:
        row.update(topsim=math.nan, posdis=math.nan, bosdis=math.nan)
    return row


def language_measures(
    utterances: pd.DataFrame,
    distance: MessageDistance = "edit",
    *,
    per_agent: bool = True,
    max_items: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per agent (scope = its id as text) and one for the population.

    Columns: scope, n_messages, entropy, distinct_messages, symbols_used, mean_length,
    synonymy, homonymy, topsim, posdis, bosdis. At most ``max_items`` utterances per scope
    are used (a seeded random subsample) to bound the quadratic cost of topsim.
    """
    rows = []
    if per_agent:
        for agent, part in utterances.groupby("agent", sort=True):
            rows.append({"scope": str(int(agent)), **_measures(part, distance, max_items, seed)})
    if len(utterances):
        rows.append({"scope": POPULATION, **_measures(utterances, distance, max_items, seed)})
    return pd.DataFrame(rows, columns=list(COLUMNS))


def agent_mean(table: pd.DataFrame, column: str) -> float:
    """Mean of ``column`` over the per-agent rows of a :func:`language_measures` table."""
    agents = table[table["scope"] != POPULATION][column].astype(float)
    agents = agents[np.isfinite(agents)]
    return float(agents.mean()) if len(agents) else math.nan
