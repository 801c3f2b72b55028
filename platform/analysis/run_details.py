"""Finer views of a run: training curves, symbols against attribute values, games as played.

These feed the report (and ``analyze``'s tables): the population's losses and message length
per round, a symbol × attribute-value table, and a seeded sample of raw games.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from neurocomm.platform.analysis.communication import population_success
from neurocomm.platform.analysis.distances import EOS

TRAINING_COLUMNS = ("listener_loss", "speaker_loss", "msg_length", "entropy")
GAME_COLUMNS = ("round", "speaker", "listener", "target", "message", "choice", "target_index", "success")


def training_curves(metrics: pd.DataFrame) -> pd.DataFrame:
    """Columns round and each of TRAINING_COLUMNS: the population's games-weighted mean per round.

    A column the log lacks, or that is NaN at a round, is NaN there.
    """
    rounds = pd.DataFrame({"round": sorted(metrics["round"].unique())})
    for column in TRAINING_COLUMNS:
        if column in metrics:
            curve = population_success(metrics, column).rename(columns={"success": column})
            rounds = rounds.merge(curve, on="round", how="left")
        else:
            rounds[column] = np.nan
    return rounds


def _binary_mi(joint11: np.ndarray, a1: np.ndarray, b1: np.ndarray, n: int) -> np.ndarray:
    """I(A; B) in bits of two binary variables from counts: both, A true, B true (broadcast)."""
    cells = (
        (joint11, a1, b1),
        (a1 - joint11, a1, n - b1),
        (b1 - joint11, n - a1, b1),
        (n - a1 - b1 + joint11, n - a1, n - b1),
    )
    total = np.zeros(np.broadcast(joint11, a1, b1).shape)
    for count, ma, mb in cells:
        with np.errstate(divide="ignore", invalid="ignore"):
            term = (count / n) * np.log2(count * n / (ma * mb))
        total += np.where(count > 0, term, 0.0)
    return np.maximum(total, 0.0)


def symbol_attributes(utterances: pd.DataFrame) -> pd.DataFrame:
    """How each symbol goes with each attribute value, over utterances (columns object, message).

    One row per (symbol, attribute, value) for every symbol used (end-of-message excluded) and
    every attribute value seen: ``count`` (utterances whose message holds the symbol and whose
    object has the value), ``p_value_given_symbol`` (count / utterances holding the symbol) and
    ``mutual_information`` (bits, between "the message holds the symbol" and "the object has the
    value", from the empirical 2×2 table).
    """
    columns = ["symbol", "attribute", "value", "count", "p_value_given_symbol", "mutual_information"]
    if utterances.empty:
        return pd.DataFrame(columns=columns)
    objects = np.array([list(o) for o in utterances["object"]], dtype=np.int64)
    messages = [set(m) - {EOS} for m in utterances["message"]]
    symbols = sorted(set().union(*messages))
    if not symbols or objects.ndim != 2:
        return pd.DataFrame(columns=columns)
    n = len(messages)
    holds = np.array([[s in m for s in symbols] for m in messages], dtype=np.int64)  # (n, S)
    values = [(a, int(v)) for a in range(objects.shape[1]) for v in np.unique(objects[:, a])]
    has = np.stack([objects[:, a] == v for a, v in values], axis=1).astype(np.int64)  # (n, V)
    both = holds.T @ has  # (S, V)
    per_symbol = holds.sum(axis=0)[:, None]
    per_value = has.sum(axis=0)[None, :]
    mi = _binary_mi(both.astype(float), per_symbol.astype(float), per_value.astype(float), n)
    rows = [
        {
            "symbol": s,
            "attribute": a,
            "value": v,
            "count": int(both[i, j]),
            "p_value_given_symbol": float(both[i, j] / per_symbol[i, 0]),
            "mutual_information": float(mi[i, j]),
        }
        for i, s in enumerate(symbols)
        for j, (a, v) in enumerate(values)
    ]
    return pd.DataFrame(rows, columns=columns)


def sample_games(messages: pd.DataFrame, n: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Up to ``n`` games of the messages log drawn with ``seed``, in (round, speaker, listener) order."""
    have = [c for c in GAME_COLUMNS if c in messages]
    if len(messages) > n:
        messages = messages.sample(n=n, random_state=np.random.RandomState(seed))
    return messages[have].sort_values(["round", "speaker", "listener"]).reset_index(drop=True)
