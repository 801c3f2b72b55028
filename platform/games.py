"""The games each directed edge plays, and the sampling noise of its speaker: both drawn from
generators keyed by (round, edge), so speaker and listener rebuild the same games anywhere and
no number depends on how edges are grouped or sharded."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from neurocomm.platform import seeding
from neurocomm.platform.config import RunConfig
from neurocomm.platform.interfaces import Batch, check_row_groups, scenario_splits

Edge = tuple[int, int]


class GroupNoise:
    """Uniform noise for rows grouped by edge, each group from its own generator.

    A rule asks for ``noise(shape)`` with the rows of every group stacked in dim 0; group ``g``
    draws its share from generator ``g`` — the same numbers whether the edge is computed alone
    or with others."""

    def __init__(self, generators: Sequence[torch.Generator]) -> None:
        self.generators = list(generators)

    def __call__(self, shape: Sequence[int]) -> torch.Tensor:
        per = check_row_groups(shape[0], len(self.generators))
        rest = tuple(shape[1:])
        return torch.cat([torch.rand((per, *rest), generator=g) for g in self.generators])


def game_batch(cfg: RunConfig, scenario: Any, round_: int, edge: Edge) -> Batch:
    """The games of ``edge`` at ``round_``: rebuilt identically by speaker and listener."""
    rng = seeding.rng(cfg.seed, seeding.GAMES, round_, edge[0], edge[1])
    return scenario.sample(rng, cfg.training.batch_size, "train")


def edge_noise(cfg: RunConfig, round_: int, edges: Sequence[Edge], *key: int) -> GroupNoise:
    return GroupNoise([seeding.torch_generator(cfg.seed, seeding.SAMPLE, round_, s, t, *key)
                       for s, t in edges])


def eval_splits(scenario: Any) -> tuple[str, ...]:
    """The splits greedy evaluation runs on: "eval", and "heldout" when the scenario has one."""
    return ("eval", "heldout") if "heldout" in scenario_splits(scenario) else ("eval",)


def eval_batch(cfg: RunConfig, scenario: Any, edges: list[Edge], split: str) -> Batch:
    """A fixed evaluation set per edge and split (the same every round), never trained on."""
    key = eval_splits(scenario).index(split)
    return Batch.concat([
        scenario.sample(seeding.rng(cfg.seed, seeding.EVAL, s, t, *((key,) if key else ())),
                        cfg.logging.eval_games, split)
        for s, t in edges
    ])


def evaluating(cfg: RunConfig, round_: int) -> bool:
    """Whether ``round_`` ends with a greedy evaluation (every ``eval_every`` and the last)."""
    every = cfg.logging.eval_every
    return every > 0 and (round_ % every == 0 or round_ == cfg.training.rounds - 1)


def logging_games(cfg: RunConfig, round_: int) -> int:
    """How many games per edge ``round_`` logs to messages/ (every ``messages_every`` and the last)."""
    every, per_edge = cfg.logging.messages_every, cfg.logging.messages_per_edge
    if every <= 0 or per_edge <= 0:
        return 0
    return per_edge if (round_ % every == 0 or round_ == cfg.training.rounds - 1) else 0
