"""Attribute-value objects shared by the games: sampling and one-hot encoding."""

from __future__ import annotations

import numpy as np


def check_object_space(n_attributes: int, n_values: int) -> None:
    """The Params check every attribute-value game shares."""
    if n_attributes < 1:
        raise ValueError("n_attributes: must be >= 1")
    if n_values < 2:
        raise ValueError("n_values: must be >= 2")


def one_hot_objects(objects: np.ndarray, n_values: int) -> np.ndarray:
    """(..., n_attributes) integer attributes → (..., n_attributes * n_values) float32 one-hot."""
    eye = np.eye(n_values, dtype=np.float32)
    encoded = eye[objects]
    return encoded.reshape(*objects.shape[:-1], objects.shape[-1] * n_values)


def object_ids(objects: np.ndarray, n_values: int) -> np.ndarray:
    """Each object's index in the full space of n_values ** n_attributes objects."""
    weights = n_values ** np.arange(objects.shape[-1] - 1, -1, -1)
    return (objects * weights).sum(-1)


def objects_from_ids(ids: np.ndarray, n_attributes: int, n_values: int) -> np.ndarray:
    digits = [(ids // n_values**p) % n_values for p in range(n_attributes - 1, -1, -1)]
    return np.stack(digits, -1).astype(np.int64)
