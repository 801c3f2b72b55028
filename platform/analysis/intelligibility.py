"""Agents rebuilt from a checkpoint: their greedy messages and who understands whom.

The evaluation set is one fixed batch of games drawn from the scenario's own ``sample`` with
the run's evaluation stream (``seeding.EVAL``), so every checkpoint of a run is scored on the
same games. Speakers talk greedily (the most likely symbol at each step).

Mutual intelligibility is the N×N matrix of success rates when agent i speaks and agent j
listens, for every ordered pair, including pairs that never talked during training; the
diagonal is each agent talking to itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from neurocomm.platform import seeding
from neurocomm.platform.building import build_agent, build_rule, build_scenario
from neurocomm.platform.config import RunConfig
from neurocomm.platform.errors import RunDirError
from neurocomm.platform.interfaces import Batch, ChannelSpec
from neurocomm.platform.rundir import RunDir

DEFAULT_EVAL_GAMES = 512


@dataclass
class Population:
    """The agents of one checkpoint, with the scenario and learning rule of their run."""

    config: RunConfig
    rounds_done: int
    scenario: Any
    rule: Any
    channel: ChannelSpec
    models: dict[int, torch.nn.Module]

    @property
    def agent_ids(self) -> list[int]:
        return sorted(self.models)


def load_population(run: RunDir, at: int | None = None, config: RunConfig | None = None) -> Population:
    """Rebuild every agent with the weights saved at round ``at`` (the latest when None)."""
    cfg = config or run.config()
    try:
        ckpt = run.load_checkpoint(at)
    except RunDirError:
        raise
    except Exception as err:  # noqa: BLE001 - a truncated or foreign file: torch raises many kinds
        raise RunDirError(f"{run.path}: checkpoint at round {at} cannot be loaded ({err})") from None
    scenario = build_scenario(cfg)
    rule = build_rule(cfg)
    channel = ChannelSpec(cfg.population.vocab_size, cfg.population.max_len)
    models: dict[int, torch.nn.Module] = {}
    for agent_id, state in sorted(ckpt.get("agents", {}).items()):
        slot = build_agent(cfg, int(agent_id), scenario, channel)
        try:
            slot.model.load_state_dict(state["model"])
        except (KeyError, RuntimeError) as err:
            raise RunDirError(
                f"{run.path}: checkpoint weights of agent {agent_id} do not fit its model ({err})"
            ) from None
        slot.model.eval()
        models[int(agent_id)] = slot.model
    if not models:
        raise RunDirError(f"{run.path}: checkpoint at round {ckpt.get('rounds_done')} holds no agents")
    return Population(cfg, int(ckpt["rounds_done"]), scenario, rule, channel, models)


def evaluation_batch(population: Population, n_games: int = DEFAULT_EVAL_GAMES, split: str = "eval") -> Batch:
    """The run's fixed evaluation games (the same for every checkpoint of the run).

    Drawn from the run's evaluation stream (``seeding.EVAL`` with no edge key, so it differs
    from the per-edge sets the runner evaluates on) with the scenario's ``"eval"`` split, as the
    runner's own greedy evaluation does.
    """
    rng = seeding.rng(population.config.seed, seeding.EVAL)
    return population.scenario.sample(rng, n_games, split)


def _speak(population: Population, agent_id: int, batch: Batch) -> Any:
    generator = torch.Generator().manual_seed(0)  # unused when greedy; the rule wants one
    with torch.no_grad():
        obs = torch.from_numpy(batch.speaker_obs)
        return population.rule.speak(
            population.models[agent_id], obs, population.channel, generator, train=False
        )


def greedy_productions(population: Population, batch: Batch) -> pd.DataFrame:
    """Each agent's greedy message for each distinct target of ``batch``.

    Columns agent, object, message (tuples of ints, symbols up to and including end-of-message).
    """
    targets = [tuple(int(x) for x in t) for t in batch.target]
    first = {}
    for k, t in enumerate(targets):
        first.setdefault(t, k)
    keep = sorted(first.values(), key=lambda k: targets[k])
    rows = []
    for agent_id in population.agent_ids:
        utt = _speak(population, agent_id, batch)
        tokens, lengths = utt.tokens.tolist(), utt.lengths.tolist()
        for k in keep:
            rows.append({"agent": agent_id, "object": targets[k], "message": tuple(tokens[k][: lengths[k]])})
    return pd.DataFrame(rows, columns=["agent", "object", "message"])


def _listen_success(population: Population, listener: int, utterance: Any, batch: Batch) -> float:
    """Success rate of ``listener`` on a greedy utterance, read through the run's learning rule.

    A rule's ``evaluate`` (decision on the complete greedy message, no learning) is used when it
    has one; otherwise its ``listen`` runs and the gradients it leaves are thrown away.
    """
    model, rule = population.models[listener], population.rule
    vocab = population.channel.vocab_size
    if callable(getattr(rule, "evaluate", None)):
        decision = rule.evaluate(model, population.scenario, utterance.tokens, batch, vocab)
    else:
        decision = rule.listen(model, population.scenario, utterance.wire, batch, vocab, groups=1).decision
        model.zero_grad(set_to_none=True)
    return float(decision.success[:, 0].float().mean())


def intelligibility_matrix(population: Population, batch: Batch) -> np.ndarray:
    """(N, N) success rates: row i speaks, column j listens, on the evaluation ``batch``."""
    ids = population.agent_ids
    out = np.zeros((len(ids), len(ids)))
    for a, speaker in enumerate(ids):
        utterance = _speak(population, speaker, batch)
        for b, listener in enumerate(ids):
            out[a, b] = _listen_success(population, listener, utterance, batch)
    return out


def intelligibility_table(matrix: np.ndarray, ids: list[int], graph: Any) -> pd.DataFrame:
    """The matrix as rows speaker, listener, success, neighbours (did they share an edge)."""
    rows = []
    for a, speaker in enumerate(ids):
        for b, listener in enumerate(ids):
            linked = graph.has_edge(speaker, listener) or graph.has_edge(listener, speaker)
            rows.append(
                {
                    "speaker": speaker,
                    "listener": listener,
                    "success": float(matrix[a, b]),
                    "neighbours": bool(linked),
                    "self": speaker == listener,
                }
            )
    return pd.DataFrame(rows)
