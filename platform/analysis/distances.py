"""Distances between messages and between meanings, vectorised over many pairs.

Messages are sequences of symbol ids as logged: symbols up to and including the end-of-message
symbol 0 when present. Two message distances are offered:

* ``edit``: Levenshtein distance (insertions, deletions, substitutions, each cost 1) divided by
  the mean length of the two messages, as EGG's ``TopographicSimilarity`` does for
  Chaabouni et al. (2020);
* ``hamming``: the fraction of positions that differ once both messages are padded with the
  end-of-message symbol to the longest length in the set (scipy's ``hamming``).

Meanings (attribute vectors) are compared with the Hamming distance over attributes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

EOS = 0
MessageDistance = Literal["edit", "hamming"]
MESSAGE_DISTANCES: tuple[str, ...] = ("edit", "hamming")

Messages = Sequence[Sequence[int]] | np.ndarray

_PAIR_CHUNK = 200_000


def pad_messages(messages: Messages, length: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(n, L) int64 symbols padded with end-of-message, and (n,) true lengths."""
    if isinstance(messages, np.ndarray) and messages.ndim == 2:
        arr = messages.astype(np.int64)
        lengths = np.full(arr.shape[0], arr.shape[1], dtype=np.int64)
        if length is not None and length > arr.shape[1]:
            arr = np.pad(arr, ((0, 0), (0, length - arr.shape[1])), constant_values=EOS)
        return arr, lengths
    rows = [np.asarray(m, dtype=np.int64).reshape(-1) for m in messages]
    lengths = np.array([len(r) for r in rows], dtype=np.int64)
    width = max(int(lengths.max(initial=0)), length or 0)
    arr = np.full((len(rows), width), EOS, dtype=np.int64)
    for i, r in enumerate(rows):
        arr[i, : len(r)] = r
    return arr, lengths


def edit_distances(a: np.ndarray, a_len: np.ndarray, b: np.ndarray, b_len: np.ndarray) -> np.ndarray:
    """Levenshtein distance between ``a[k][:a_len[k]]`` and ``b[k][:b_len[k]]`` for every k.

    One dynamic-programming table per pair, filled for all pairs at once (messages are short).
    """
    n = len(a_len)
    out = np.zeros(n, dtype=np.int64)
    if n == 0:
        return out
    la, lb = a.shape[1], b.shape[1]
    at, bt = np.ascontiguousarray(a.T), np.ascontiguousarray(b.T)
    prev = np.repeat(np.arange(lb + 1, dtype=np.int64)[:, None], n, axis=1)  # row i = 0
    empty = a_len == 0
    out[empty] = b_len[empty]
    for i in range(1, la + 1):
        cur = np.empty_like(prev)
        cur[0] = i
        for j in range(1, lb + 1):
            substitute = prev[j - 1] + (at[i - 1] != bt[j - 1])
            cur[j] = np.minimum(np.minimum(prev[j] + 1, cur[j - 1] + 1), substitute)
        done = np.flatnonzero(a_len == i)
        out[done] = cur[b_len[done], done]
        prev = cur
    return out


def _pair_indices(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Row-major upper-triangle pairs (i < j): the order of scipy's condensed matrices."""
    return np.triu_indices(n, k=1)


def pairwise_message_distances(messages: Messages, distance: MessageDistance = "edit") -> np.ndarray:
    """Condensed (scipy ``pdist`` order) distances between every pair of messages."""
    if distance not in MESSAGE_DISTANCES:
        raise ValueError(f"distance must be one of {', '.join(MESSAGE_DISTANCES)}, not {distance!r}")
    tokens, lengths = pad_messages(messages)
    ii, jj = _pair_indices(len(lengths))
    out = np.empty(len(ii), dtype=np.float64)
    for start in range(0, len(ii), _PAIR_CHUNK):
        i, j = ii[start : start + _PAIR_CHUNK], jj[start : start + _PAIR_CHUNK]
        if distance == "hamming":
            width = max(tokens.shape[1], 1)
            out[start : start + len(i)] = (tokens[i] != tokens[j]).sum(1) / width
        else:
            raw = edit_distances(tokens[i], lengths[i], tokens[j], lengths[j])
            mean_len = (lengths[i] + lengths[j]) / 2.0
            out[start : start + len(i)] = np.divide(raw, mean_len, out=np.zeros(len(i)), where=mean_len > 0)
    return out


def pairwise_meaning_distances(meanings: np.ndarray | Sequence[Sequence[int]]) -> np.ndarray:
    """Condensed Hamming distances (fraction of attributes that differ) between meanings."""
    arr = np.asarray(meanings)
    if arr.ndim != 2:
        raise ValueError("meanings must be a 2-D array: one row of attribute values per item")
    ii, jj = _pair_indices(arr.shape[0])
    out = np.empty(len(ii), dtype=np.float64)
    width = max(arr.shape[1], 1)
    for start in range(0, len(ii), _PAIR_CHUNK):
        i, j = ii[start : start + _PAIR_CHUNK], jj[start : start + _PAIR_CHUNK]
        out[start : start + len(i)] = (arr[i] != arr[j]).sum(1) / width
    return out


def normalised_edit_distances(a: Messages, b: Messages) -> np.ndarray:
    """Levenshtein distance of ``a[k]`` and ``b[k]`` over the longer length: in [0, 1]."""
    if len(a) != len(b):
        raise ValueError(f"a and b must pair up: {len(a)} != {len(b)} messages")
    if len(a) == 0:
        return np.zeros(0)
    ta, la = pad_messages(a)
    tb, lb = pad_messages(b)
    raw = edit_distances(ta, la, tb, lb)
    longest = np.maximum(la, lb)
    return np.divide(raw, longest, out=np.zeros(len(raw)), where=longest > 0)
