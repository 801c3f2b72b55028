"""The digits game: a referential game over images (scikit-learn's 8x8 handwritten digits).

The speaker sees a target image; the listener sees the message and ``n_distractors + 1`` images
in random order and picks one. Reward 1 on success; chance is ``1 / (n_distractors + 1)``.

The 1,797 images ship inside scikit-learn (no download). ``heldout_fraction`` of each class's
images (chosen by ``split_seed``, the same for every run seed, so runs are comparable) are never
shown in training: split ``heldout`` plays games whose target and candidates are all unseen
images, so greedy success there measures generalisation to new images. Split ``eval`` plays on
the training images.

``distractors: other_class``: the distractors are of other classes than the target and of
different classes from each other, so naming the class suffices; ``any``: any other image of the
split, of the target's class too, so the message must tell one handwriting from another.
The target's attribute (what analysis groups messages by) is its class, 0-9.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache, cached_property
from typing import Any, Literal

import numpy as np
from torch import Tensor

from neurocomm.platform.interfaces import AgentModel, Batch, Decision, GameSpec
from neurocomm.scenarios.referential import pick_candidate

try:
    from sklearn.datasets import load_digits
except ImportError as err:  # the message the CLI prints: name the extra to install
    raise ImportError("the digits scenario needs scikit-learn: pip install 'neurocomm[images]'") from err

N_CLASSES = 10
IMAGE_SHAPE = (1, 8, 8)
PIXEL_MAX = 16.0  # the data set's grey levels are 0..16


@cache
def _digits() -> tuple[np.ndarray, np.ndarray]:
    """Every image as (1797, 64) float32 in [0, 1], and its class (1797,) int64."""
    data = load_digits()
    images = (np.asarray(data.data, dtype=np.float32) / PIXEL_MAX).reshape(len(data.target), -1)
    return images, np.asarray(data.target, dtype=np.int64)


class DigitsGame:
    splits = ("train", "eval", "heldout")

    @dataclass(frozen=True)
    class Params:
        n_distractors: int = 3
        distractors: Literal["other_class", "any"] = "other_class"
        heldout_fraction: float = 0.2
        split_seed: int = 0

        def check(self) -> None:
            if self.n_distractors < 1:
                raise ValueError("n_distractors: must be >= 1")
            if self.distractors == "other_class" and self.n_distractors > N_CLASSES - 1:
                raise ValueError(f"n_distractors: at most {N_CLASSES - 1} with distractors: "
                                 "other_class (one image of each other class)")
            if not 0.0 < self.heldout_fraction < 0.5:
                raise ValueError("heldout_fraction: must be in (0, 0.5)")

    def __init__(self, params: DigitsGame.Params | None = None) -> None:
        self.params = params or DigitsGame.Params()
        self.spec = GameSpec(obs_dim=int(np.prod(IMAGE_SHAPE)), n_attributes=1, n_values=N_CLASSES,
                             image_shape=IMAGE_SHAPE)

    def __getstate__(self) -> dict[str, Any]:
        # only the params travel (to every Ray actor): the images are loaded again there
        return {"params": self.params, "spec": self.spec}

    @cached_property
    def _split_ids(self) -> dict[str, np.ndarray]:
        """Image indices of each split: per class, ``heldout_fraction`` of its images held out."""
        _, labels = _digits()
        rng = np.random.default_rng(self.params.split_seed)
        heldout = []
        for c in range(N_CLASSES):
            members = np.flatnonzero(labels == c)
            k = int(round(self.params.heldout_fraction * len(members)))
            heldout.append(rng.permutation(members)[:k])
        held = np.sort(np.concatenate(heldout))
        train = np.setdiff1d(np.arange(len(labels)), held)
        return {"train": train, "eval": train, "heldout": held}

    @cached_property
    def _by_class(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per split: (10, most) image ids of each class (padded), and each class's count."""
        _, labels = _digits()
        out = {}
        for split, ids in self._split_ids.items():
            groups = [ids[labels[ids] == c] for c in range(N_CLASSES)]
            counts = np.array([len(g) for g in groups])
            table = np.zeros((N_CLASSES, counts.max()), dtype=np.int64)
            for c, g in enumerate(groups):
                table[c, : len(g)] = g
            out[split] = (table, counts)
        return out

    def image_ids(self, split: str) -> np.ndarray:
        """The indices (into the data set) of the images of ``split``."""
        return self._split_ids[split]

    def sample(self, rng: np.random.Generator, batch_size: int, split: str = "train") -> Batch:
        if split not in self.splits:
            raise ValueError(f"unknown split {split!r}; one of {self.splits}")
        p = self.params
        images, labels = _digits()
        ids = self._split_ids[split]
        target = ids[rng.integers(0, len(ids), size=batch_size)]
        if p.distractors == "other_class":
            # k distinct classes other than the target's, then one image of each
            keys = rng.random((batch_size, N_CLASSES))
            keys[np.arange(batch_size), labels[target]] = np.inf
            classes = np.argsort(keys, axis=1)[:, : p.n_distractors]
            table, counts = self._by_class[split]
            pick = (rng.random(classes.shape) * counts[classes]).astype(np.int64)
            distractors = table[classes, pick]
        else:
            # any other image of the split: draw from the others by skipping the target's slot
            slot = np.searchsorted(ids, target)
            draw = rng.integers(0, len(ids) - 1, size=(batch_size, p.n_distractors))
            distractors = ids[draw + (draw >= slot[:, None])]
        slots = np.concatenate([target[:, None], distractors], 1)
        perm = np.argsort(rng.random(slots.shape), axis=1)
        candidates = np.take_along_axis(slots, perm, 1)
        label = np.argmax(perm == 0, axis=1)
        return Batch(
            speaker_obs=images[target],
            target=labels[target][:, None],
            extra={"candidates": candidates, "label": label.astype(np.int64), "image_id": target},
        )

    def listener_view(self, image_ids: np.ndarray) -> np.ndarray:
        """The images with these indices, (..., 64) float32."""
        return _digits()[0][image_ids]

    def decide(self, agent: AgentModel, meaning: Tensor, batch: Batch) -> Decision:
        return pick_candidate(agent, meaning, self.listener_view(batch.extra["candidates"]),
                              batch.extra["label"])
