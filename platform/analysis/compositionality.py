"""Compositionality of a language: topographic similarity, posdis and bosdis.

* Topographic similarity (Brighton & Kirby 2006; Lazaridou et al. 2018): the Spearman
  correlation between the pairwise distances of meanings (Hamming over attributes) and of the
  messages that name them (normalised edit distance by default, or Hamming).
* Positional disentanglement, posdis (Chaabouni et al. 2020): for each message position j with
  non-zero entropy, the gap between the highest and the second-highest mutual information of
  the symbol at j with an attribute, divided by the entropy of the symbol at j; averaged over
  those positions.
* Bag-of-symbols disentanglement, bosdis (Chaabouni et al. 2020): the same gap, where the
  "positions" are the counts of each symbol (end-of-message excluded) in a message.

All three follow EGG's ``egg/core/language_analysis.py``. A measure that is undefined (fewer
than two items, constant distances, fewer than two attributes, no varying position) is NaN.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.stats import spearmanr

from neurocomm.platform.analysis.distances import (
    EOS,
    MessageDistance,
    Messages,
    pad_messages,
    pairwise_meaning_distances,
    pairwise_message_distances,
)
from neurocomm.platform.analysis.information import entropy_bits, mutual_information_bits


def topographic_similarity(
    meanings: np.ndarray | Sequence[Sequence[int]],
    messages: Messages,
    distance: MessageDistance = "edit",
) -> float:
    """Spearman ρ between pairwise meaning distances and pairwise message distances."""
    meanings = np.asarray(meanings)
    if len(meanings) != len(messages):
        raise ValueError(f"{len(meanings)} meanings but {len(messages)} messages")
    if len(meanings) < 3:
        return math.nan
    meaning_d = pairwise_meaning_distances(meanings)
    message_d = pairwise_message_distances(messages, distance)
    if np.ptp(meaning_d) == 0 or np.ptp(message_d) == 0:
        return math.nan
    return float(spearmanr(meaning_d, message_d).statistic)


def _information_gap(attributes: np.ndarray, features: np.ndarray) -> float:
    """Mean over non-constant feature columns of (top MI − second MI) / H(feature)."""
    attributes = np.asarray(attributes)
    if attributes.ndim != 2 or attributes.shape[1] < 2:
        return math.nan
    gaps = []
    for j in range(features.shape[1]):
        column = features[:, j]
        h = entropy_bits(column)
        if h <= 1e-12:
            continue
        mi = sorted(
            (mutual_information_bits(attributes[:, i], column) for i in range(attributes.shape[1])),
            reverse=True,
        )
        gaps.append((mi[0] - mi[1]) / h)
    return float(np.mean(gaps)) if gaps else math.nan


def posdis(attributes: np.ndarray | Sequence[Sequence[int]], messages: Messages) -> float:
    """Positional disentanglement; messages are padded with end-of-message to equal length."""
    attributes = np.asarray(attributes)
    if len(attributes) != len(messages):
        raise ValueError(f"{len(attributes)} meanings but {len(messages)} messages")
    if len(attributes) == 0:
        return math.nan
    tokens, _ = pad_messages(messages)
    return _information_gap(attributes, tokens)


def symbol_counts(messages: Messages) -> np.ndarray:
    """(n, V) how often each symbol that occurs (end-of-message excluded) is in each message."""
    tokens, lengths = pad_messages(messages)
    inside = np.arange(tokens.shape[1])[None, :] < lengths[:, None]
    symbols = np.unique(tokens[inside & (tokens != EOS)])
    return (
        np.stack([((tokens == s) & inside).sum(1) for s in symbols], 1)
        if len(symbols)
        else (np.zeros((len(lengths), 0), dtype=np.int64))
    )


def bosdis(attributes: np.ndarray | Sequence[Sequence[int]], messages: Messages) -> float:
    """Bag-of-symbols disentanglement (symbol counts, end-of-message excluded)."""
    attributes = np.asarray(attributes)
    if len(attributes) != len(messages):
        raise ValueError(f"{len(attributes)} meanings but {len(messages)} messages")
    if len(attributes) == 0:
        return math.nan
    return _information_gap(attributes, symbol_counts(messages))


def compositionality(
    meanings: np.ndarray | Sequence[Sequence[int]],
    messages: Messages,
    distance: MessageDistance = "edit",
) -> dict[str, float]:
    """{"topsim", "posdis", "bosdis"} of one set of (meaning, message) pairs."""
    return {
        "topsim": topographic_similarity(meanings, messages, distance),
        "posdis": posdis(meanings, messages),
        "bosdis": bosdis(meanings, messages),
    }
