"""Shannon entropy and mutual information of discrete observations, in bits."""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np


def category_codes(values: Sequence[Hashable] | np.ndarray) -> np.ndarray:
    """Each observation's category as an integer 0..K-1 (rows of a 2-D array are categories)."""
    if isinstance(values, np.ndarray) and values.dtype != object and values.ndim in (1, 2):
        if len(values) == 0:
            return np.zeros(0, dtype=np.int64)
        _, codes = np.unique(values, axis=0 if values.ndim == 2 else None, return_inverse=True)
        return codes.reshape(-1).astype(np.int64)
    table: dict[Hashable, int] = {}
    return np.array([table.setdefault(_hashable(v), len(table)) for v in values], dtype=np.int64)


def _hashable(value: object) -> Hashable:
    if isinstance(value, np.ndarray | list):
        return tuple(np.asarray(value).reshape(-1).tolist())
    return value  # type: ignore[return-value]


def entropy_bits(values: Sequence[Hashable] | np.ndarray) -> float:
    """Entropy (bits) of the empirical distribution of ``values``; 0 for none."""
    codes = category_codes(values)
    if len(codes) == 0:
        return 0.0
    p = np.bincount(codes) / len(codes)
    p = p[p > 0]
    return float(max(0.0, -(p * np.log2(p)).sum()))


def mutual_information_bits(x: np.ndarray | Sequence[Hashable], y: np.ndarray | Sequence[Hashable]) -> float:
    """I(X; Y) = H(X) + H(Y) - H(X, Y) over paired observations, in bits (never below 0)."""
    cx, cy = category_codes(x), category_codes(y)
    if len(cx) != len(cy):
        raise ValueError(f"x and y must pair up: {len(cx)} != {len(cy)} observations")
    joint = cx * (int(cy.max(initial=0)) + 1) + cy
    return max(0.0, entropy_bits(cx) + entropy_bits(cy) - entropy_bits(joint))
