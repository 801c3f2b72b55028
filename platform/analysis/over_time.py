"""The language measures along a run: at each logged round and at each saved checkpoint."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from neurocomm.platform.analysis.dialects import language_distance_matrix, off_diagonal_mean
from neurocomm.platform.analysis.distances import MessageDistance
from neurocomm.platform.analysis.intelligibility import (
    DEFAULT_EVAL_GAMES,
    evaluation_batch,
    greedy_productions,
    intelligibility_matrix,
    load_population,
)
from neurocomm.platform.analysis.language import POPULATION, language_measures, utterances_from_log
from neurocomm.platform.analysis.message_stats import lexicon, lexicon_mapping
from neurocomm.platform.config import RunConfig
from neurocomm.platform.rundir import RunDir


def over_logged_rounds(
    games: pd.DataFrame, distance: MessageDistance = "edit", per_agent: bool = True
) -> pd.DataFrame:
    """Measures of the games logged at each round: one row per (round, scope).

    Adds ``success`` (share of the logged games won) and ``source = "messages"``.
    """
    frames = []
    for round_, part in games.groupby("round", sort=True):
        table = language_measures(utterances_from_log(part), distance, per_agent=per_agent)
        won = part.groupby("speaker")["success"].mean()
        table["success"] = [
            float(part["success"].mean()) if s == POPULATION else float(won.get(int(s), math.nan))
            for s in table["scope"]
        ]
        frames.append(table.assign(round=int(round_), source="messages"))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


@dataclass
class CheckpointLanguage:
    """The language of the agents saved at one checkpoint."""

    round: int
    agent_ids: list[int]
    measures: pd.DataFrame  # language_measures of the greedy productions
    productions: pd.DataFrame  # agent, object, message
    intelligibility: np.ndarray | None  # (N, N): row speaks, column listens
    language_distances: np.ndarray  # (N, N)

    def rows(self) -> pd.DataFrame:
        """The measures with ``intelligibility`` and ``language_distance`` on the population row."""
        out = self.measures.copy()
        is_pop = out["scope"] == POPULATION
        intel = off_diagonal_mean(self.intelligibility) if self.intelligibility is not None else math.nan
        out["intelligibility"] = np.where(is_pop, intel, math.nan)
        out["language_distance"] = np.where(is_pop, off_diagonal_mean(self.language_distances), math.nan)
        return out.assign(round=self.round, source="checkpoint")


def checkpoint_language(
    run: RunDir,
    at: int | None,
    config: RunConfig,
    distance: MessageDistance = "edit",
    eval_games: int = DEFAULT_EVAL_GAMES,
    with_intelligibility: bool = True,
) -> CheckpointLanguage:
    """Rebuild the agents saved at round ``at`` and measure their greedy language."""
    population = load_population(run, at, config)
    batch = evaluation_batch(population, eval_games)
    productions = greedy_productions(population, batch)
    measures = language_measures(productions, distance)
    matrix = intelligibility_matrix(population, batch) if with_intelligibility else None
    table = lexicon(productions.rename(columns={"agent": "speaker", "object": "target"}))
    distances = language_distance_matrix(lexicon_mapping(table), population.agent_ids)
    return CheckpointLanguage(
        population.rounds_done, population.agent_ids, measures, productions, matrix, distances
    )


def over_checkpoints(
    run: RunDir,
    config: RunConfig,
    distance: MessageDistance = "edit",
    eval_games: int = DEFAULT_EVAL_GAMES,
    with_intelligibility: bool = True,
    rounds: list[int] | None = None,
) -> list[CheckpointLanguage]:
    """:func:`checkpoint_language` at each checkpoint (all saved ones by default), in order."""
    wanted = rounds if rounds is not None else [r for r, _ in run.checkpoints()]
    return [checkpoint_language(run, at, config, distance, eval_games, with_intelligibility) for at in wanted]


def checkpoint_rows(results: list[CheckpointLanguage]) -> pd.DataFrame:
    """One row per (checkpoint round, scope) for a list of :class:`CheckpointLanguage`."""
    frames = [r.rows() for r in results]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
