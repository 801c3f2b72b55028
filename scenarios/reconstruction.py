"""The reconstruction game: the listener rebuilds the speaker's attribute-value object.

One cross-entropy loss per attribute; success means every attribute right. A held-out split of
attribute combinations never appears in training (Chaabouni et al. 2020), so generalisation
success (split ``heldout``) is reported apart from success on the training objects.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from neurocomm.platform.interfaces import AgentModel, Batch, Decision, GameSpec
from neurocomm.scenarios.objects import check_object_space, object_ids, objects_from_ids, one_hot_objects


class ReconstructionGame:
    splits = ("train", "eval", "heldout")

    @dataclass(frozen=True)
    class Params:
        n_attributes: int = 3
        n_values: int = 4
        heldout_fraction: float = 0.1
        split_seed: int = 0

        def check(self) -> None:
            check_object_space(self.n_attributes, self.n_values)
            if not 0.0 <= self.heldout_fraction < 1.0:
                raise ValueError("heldout_fraction: must be in [0, 1)")
            # in logarithms: n_values ** n_attributes can be a number too big to build
            log_n = self.n_attributes * math.log(self.n_values)
            if self.heldout_fraction > 0 and log_n < 60 and int(
                round(self.heldout_fraction * self.n_values**self.n_attributes)
            ) < 1:
                raise ValueError("heldout_fraction: too small to hold out a single object")

    def __init__(self, params: ReconstructionGame.Params | None = None) -> None:
        self.params = params or ReconstructionGame.Params()
        p = self.params
        self.spec = GameSpec(p.n_attributes * p.n_values, p.n_attributes, p.n_values)

    @cached_property
    def _split_ids(self) -> dict[str, np.ndarray]:
        """Object ids of the training and held-out combinations (fixed by ``split_seed``)."""
        p = self.params
        n = p.n_values**p.n_attributes
        order = np.random.default_rng(p.split_seed).permutation(n)
        k = int(round(p.heldout_fraction * n))
        heldout, train = np.sort(order[:k]), np.sort(order[k:])
        return {"train": train, "eval": train, "heldout": heldout if k else train}

    def objects(self, split: str) -> np.ndarray:
        """Every object of ``split`` as (n, n_attributes) attribute values."""
        p = self.params
        return objects_from_ids(self._split_ids[split], p.n_attributes, p.n_values)

    def sample(self, rng: np.random.Generator, batch_size: int, split: str = "train") -> Batch:
        if split not in self.splits:
            raise ValueError(f"unknown split {split!r}; one of {self.splits}")
        p = self.params
        ids = self._split_ids[split]
        target = objects_from_ids(ids[rng.integers(0, len(ids), size=batch_size)], p.n_attributes, p.n_values)
        return Batch(speaker_obs=one_hot_objects(target, p.n_values), target=target,
                     extra={"object_id": object_ids(target, p.n_values)})

    def decide(self, agent: AgentModel, meaning: Tensor, batch: Batch) -> Decision:
        logits = agent.reconstruct(meaning)  # (B, T, A, V)
        b, t, a, v = logits.shape
        target = torch.from_numpy(batch.target).to(logits.device).unsqueeze(1).expand(b, t, a)
        loss = F.cross_entropy(logits.reshape(-1, v), target.reshape(-1), reduction="none")
        loss = loss.view(b, t, a).sum(-1)
        guess = logits.argmax(-1)
        correct = (guess == target).float()
        success = correct.prod(-1)
        return Decision(loss, correct.mean(-1), guess, success)
