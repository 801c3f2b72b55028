"""The referential (Lewis discrimination) game.

The speaker sees a target object (a vector of ``n_attributes`` attributes with ``n_values``
values each); the listener sees the message and ``n_distractors + 1`` candidates in random order
and picks one. Reward 1 on success.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from neurocomm.platform.interfaces import AgentModel, Batch, Decision, GameSpec
from neurocomm.scenarios.objects import check_object_space, one_hot_objects


class ReferentialGame:
    @dataclass(frozen=True)
    class Params:
        n_attributes: int = 3
        n_values: int = 4
        n_distractors: int = 3
        # random: distractors drawn uniformly from all objects (never equal to the target);
        # batch: distractors are the other targets of the same batch.
        distractors: Literal["random", "batch"] = "random"
        # shared: the listener sees candidates encoded as the speaker sees the target;
        # separate: the listener's view permutes each attribute's values by a fixed random map,
        # so the same object looks different to the two roles (grounding across views).
        views: Literal["shared", "separate"] = "shared"
        view_seed: int = 0

        def check(self) -> None:
            check_object_space(self.n_attributes, self.n_values)
            if self.n_distractors < 1:
                raise ValueError("n_distractors: must be >= 1")
            # n_values ** n_attributes is only built when it is small: it can be too big to compute
            small = self.n_attributes * math.log2(self.n_values) < 62
            if small and self.n_distractors >= self.n_values**self.n_attributes:
                raise ValueError("n_distractors: must be below the number of distinct objects")

    def __init__(self, params: ReferentialGame.Params | None = None) -> None:
        self.params = params or ReferentialGame.Params()
        p = self.params
        self.spec = GameSpec(p.n_attributes * p.n_values, p.n_attributes, p.n_values)

    def sample(self, rng: np.random.Generator, batch_size: int, split: str = "train") -> Batch:
        p = self.params
        n_cand = p.n_distractors + 1
        target = rng.integers(0, p.n_values, size=(batch_size, p.n_attributes))
        if p.distractors == "batch" and batch_size > p.n_distractors:
            others = np.stack(
                [rng.choice(batch_size - 1, p.n_distractors, replace=False) for _ in range(batch_size)]
            )
            others = others + (others >= np.arange(batch_size)[:, None])
            distractors = target[others]
        else:
            distractors = rng.integers(0, p.n_values, size=(batch_size, p.n_distractors, p.n_attributes))
            same = (distractors == target[:, None, :]).all(-1)
            while same.any():
                fresh = rng.integers(0, p.n_values, size=(int(same.sum()), p.n_attributes))
                distractors[same] = fresh
                same = (distractors == target[:, None, :]).all(-1)
        slots = np.concatenate([target[:, None, :], distractors], 1)
        perm = np.argsort(rng.random((batch_size, n_cand)), axis=1)
        candidates = np.take_along_axis(slots, perm[:, :, None], 1)
        label = np.argmax(perm == 0, axis=1)
        return Batch(
            speaker_obs=one_hot_objects(target, p.n_values),
            target=target.astype(np.int64),
            extra={"candidates": candidates, "label": label.astype(np.int64)},
        )

    def listener_view(self, objects: np.ndarray) -> np.ndarray:
        """How the listener sees ``objects`` (one-hot), per ``views``."""
        p = self.params
        if p.views == "separate":
            rng = np.random.default_rng(p.view_seed)
            maps = np.stack([rng.permutation(p.n_values) for _ in range(p.n_attributes)])
            objects = maps[np.arange(p.n_attributes), objects]
        return one_hot_objects(objects, p.n_values)

    def decide(self, agent: AgentModel, meaning: Tensor, batch: Batch) -> Decision:
        return pick_candidate(agent, meaning, self.listener_view(batch.extra["candidates"]),
                              batch.extra["label"])


def pick_candidate(agent: AgentModel, meaning: Tensor, candidates: np.ndarray, label: np.ndarray) -> Decision:
    """The listener picks the candidate (B, C, obs_dim) whose perceived meaning best matches
    (dot product) what it understood, (B, T, hidden); ``label`` (B,) is the target's slot."""
    embedded = agent.perceive(torch.from_numpy(candidates).to(meaning.device))  # (B, C, H)
    scores = torch.einsum("bth,bch->btc", meaning, embedded)
    b, t, c = scores.shape
    target = torch.from_numpy(label).to(meaning.device)
    loss = F.cross_entropy(scores.reshape(b * t, c), target.repeat_interleave(t), reduction="none")
    choice = scores.argmax(-1)
    success = (choice == target.unsqueeze(1)).float()
    return Decision(loss.view(b, t), success, choice, success)
