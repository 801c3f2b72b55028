"""The transmission test: how fast do fresh listeners learn a frozen speaker's language?

Used by Li & Bowling 2019 (a compositional language is easier to teach) and Chaabouni et al.
2020 (languages with higher posdis are learned faster). The speakers of a checkpoint are frozen
and name freshly sampled objects with their greedy messages; ``listeners`` new agents (built
from the run's agent spec, with weights from their own stream) are trained for ``steps``
supervised steps to decode those messages into the object through the scenario's own decision
(pick it among candidates, or rebuild its attributes). The learning curve is each step's
success on that step's games, measured before the step's update, averaged over the listeners;
learnability is the area under it (its mean): higher is learned faster.

The fresh listeners' weights and games come from ``seed`` alone (``seeding.TRANSMISSION``),
not from the run, so two runs' languages are taught to the same listeners on the same objects:
a paired comparison. With several speakers, step ``s`` of listener ``k`` hears speaker
``ids[(s + k) % n]`` (the population's language as a whole), or only ``speaker`` when given.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from neurocomm.platform import registry, seeding
from neurocomm.platform.building import build_scenario, make_optimizer
from neurocomm.platform.config import RunConfig
from neurocomm.platform.imitation import decision_on, greedy_messages
from neurocomm.platform.interfaces import Batch, ChannelSpec
from neurocomm.platform.rundir import RunDir
from neurocomm.platform.typed import from_mapping

# (step, games) → ((B, L) int64 tokens, zero after the end; (B,) lengths up to and including it)
Language = Callable[[int, Batch], tuple[torch.Tensor, torch.Tensor]]


def fresh_listener(cfg: RunConfig, scenario: object, index: int, seed: int
                   ) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    """A new agent with the run's default agent spec and weights from ``(seed, index)``."""
    spec = cfg.population.agent
    cls = registry.resolve("models", spec.model)
    params = from_mapping(cls.Params, dict(spec.params), "population.agent.params")
    channel = ChannelSpec(cfg.population.vocab_size, cfg.population.max_len)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seeding.int_seed(seed, seeding.TRANSMISSION, index))
        model = cls(params, game=scenario.spec, channel=channel)  # type: ignore[attr-defined]
    return model, make_optimizer(cfg.training.optimizer, model, spec.lr)


def transmission_curve(cfg: RunConfig, language: Language, *, listeners: int = 3, steps: int = 200,
                       batch_size: int | None = None, seed: int = 0) -> np.ndarray:
    """(steps,) mean success of ``listeners`` fresh listeners learning ``language``."""
    if listeners < 1 or steps < 1:
        raise ValueError("listeners and steps must be >= 1")
    scenario = build_scenario(cfg)
    vocab = cfg.population.vocab_size
    size = batch_size or cfg.training.batch_size
    curve = np.zeros((listeners, steps))
    for k in range(listeners):
        model, optimizer = fresh_listener(cfg, scenario, k, seed)
        for step in range(steps):
            batch = scenario.sample(seeding.rng(seed, seeding.TRANSMISSION, k, step), size, "train")
            with torch.no_grad():
                tokens, lengths = language(step + k, batch)
            decision = decision_on(model, scenario, tokens, lengths, batch, vocab)
            curve[k, step] = float(decision.success[:, 0].float().mean())
            optimizer.zero_grad(set_to_none=True)
            decision.loss.mean().backward()
            optimizer.step()
    return curve.mean(0)


def speaker_language(run_dir: str | Path, *, checkpoint: int | None = None,
                     speaker: int | None = None) -> tuple[RunConfig, Language]:
    """The frozen greedy language of a run's speaker(s) at ``checkpoint`` (latest when None)."""
    from neurocomm.platform.analysis.intelligibility import load_population

    population = load_population(RunDir(Path(run_dir)), checkpoint)
    ids = population.agent_ids if speaker is None else [speaker]
    if speaker is not None and speaker not in population.models:
        raise ValueError(f"speaker {speaker} is not an agent of the run (agents {population.agent_ids})")
    noise = torch.Generator().manual_seed(0)  # greedy speech draws nothing

    def language(turn: int, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        model = population.models[ids[turn % len(ids)]]
        obs = torch.from_numpy(batch.speaker_obs)
        return greedy_messages(population.rule, model, obs, population.channel, noise)

    return population.config, language


def learning_curve(run_dir: str | Path, *, checkpoint: int | None = None, listeners: int = 3,
                   steps: int = 200, batch_size: int | None = None, seed: int = 0,
                   speaker: int | None = None) -> np.ndarray:
    """(steps,) mean success of fresh listeners on the run's frozen language, step by step."""
    cfg, language = speaker_language(run_dir, checkpoint=checkpoint, speaker=speaker)
    return transmission_curve(cfg, language, listeners=listeners, steps=steps,
                              batch_size=batch_size, seed=seed)


def learnability(run_dir: str | Path, *, checkpoint: int | None = None, listeners: int = 3,
                 steps: int = 200, batch_size: int | None = None, seed: int = 0,
                 speaker: int | None = None) -> float:
    """Area under the fresh listeners' learning curve (mean success over the steps)."""
    return float(learning_curve(run_dir, checkpoint=checkpoint, listeners=listeners, steps=steps,
                                batch_size=batch_size, seed=seed, speaker=speaker).mean())
