"""Iterated learning's transmission phase: a newcomer first imitates its predecessor.

After Ren et al. 2020 (*Compositional languages emerge in a neural iterated learning model*,
ICLR): before it interacts, the newcomer learns the current language by supervised imitation
for ``population.turnover.imitation_steps`` steps. At each step the predecessor (the replaced
agent, its weights just before the replacement) names a batch of freshly sampled objects with
its greedy messages; the newcomer

* produces: its production module is trained with cross-entropy on those symbols, read with
  teacher forcing up to and including the end-of-message (the speaker's imitation), and
* comprehends: its comprehension module reads the same messages and the scenario's decision
  loss trains it to recover the object (pick it among candidates, or rebuild its attributes),
  as Ren et al. pre-train the new listener.

Both losses are summed and stepped by the newcomer's own optimiser. Everything uses the
AgentModel interface only (perceive, production_start/step, comprehend) and the scenario's
``sample``/``decide``, so any registered model and scenario can be transmitted. The games of
step ``s`` come from their own stream (``seeding.IMITATION``, agent, generation, step): the
same newcomer on any backend, and again on a resumed run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from neurocomm.platform import seeding
from neurocomm.platform.interfaces import AgentModel, Batch, ChannelSpec, Decision, Scenario


@dataclass
class ImitationStep:
    production_loss: float
    comprehension_loss: float


def greedy_messages(rule: Any, agent: AgentModel, obs: Tensor, channel: ChannelSpec,
                    noise: torch.Generator) -> tuple[Tensor, Tensor]:
    """(B, L) greedy tokens (zero after the end) and (B,) lengths of ``agent`` on ``obs``."""
    with torch.no_grad():
        utt = rule.speak(agent, obs, channel, noise, train=False)
    return utt.tokens, utt.lengths


def _valid(tokens: Tensor, lengths: Tensor) -> Tensor:
    positions = torch.arange(tokens.shape[1], device=tokens.device).unsqueeze(0)
    return positions < lengths.unsqueeze(1)


def production_loss(agent: AgentModel, obs: Tensor, tokens: Tensor, lengths: Tensor,
                    vocab_size: int) -> Tensor:
    """Mean per-game cross-entropy of producing ``tokens`` (teacher forcing), over each game's
    symbols up to its end."""
    state = agent.production_start(agent.perceive(obs))
    symbol: Tensor | None = None
    per_step = []
    for t in range(tokens.shape[1]):
        logits, state = agent.production_step(symbol, state)
        per_step.append(F.cross_entropy(logits, tokens[:, t], reduction="none"))
        symbol = F.one_hot(tokens[:, t], vocab_size).to(logits.dtype)
    mask = _valid(tokens, lengths).to(per_step[0].dtype)
    return ((torch.stack(per_step, 1) * mask).sum(1) / lengths).mean()


def decision_on(agent: AgentModel, scenario: Scenario, tokens: Tensor, lengths: Tensor,
                batch: Batch, vocab_size: int) -> Decision:
    """The scenario's decision (differentiable loss) of ``agent`` reading the complete
    ``tokens`` messages, taken at each message's end."""
    states = agent.comprehend(F.one_hot(tokens, vocab_size).float())
    idx = (lengths - 1).view(-1, 1, 1).expand(-1, 1, states.shape[-1])
    return scenario.decide(agent, states.gather(1, idx), batch)


def comprehension_loss(agent: AgentModel, scenario: Scenario, tokens: Tensor, lengths: Tensor,
                       batch: Batch, vocab_size: int) -> Tensor:
    """The scenario's loss of the listener reading the complete ``tokens`` messages."""
    return decision_on(agent, scenario, tokens, lengths, batch, vocab_size).loss.mean()


def imitate(student: AgentModel, optimizer: torch.optim.Optimizer, teacher: AgentModel, *,
            rule: Any, scenario: Scenario, channel: ChannelSpec, steps: int, batch_size: int,
            seed: int, key: tuple[int, ...], device: torch.device | str = "cpu") -> list[ImitationStep]:
    """``steps`` supervised steps of ``student`` on ``teacher``'s greedy messages."""
    history = []
    for step in range(steps):
        batch = scenario.sample(seeding.rng(seed, seeding.IMITATION, *key, step), batch_size, "train")
        obs = torch.from_numpy(batch.speaker_obs).to(device)
        # greedy speech needs no noise, except for a self-monitor choosing among samples
        noise = seeding.torch_generator(seed, seeding.IMITATION, *key, step, 1)
        tokens, lengths = greedy_messages(rule, teacher, obs, channel, noise)
        speak = production_loss(student, obs, tokens, lengths, channel.vocab_size)
        hear = comprehension_loss(student, scenario, tokens, lengths, batch, channel.vocab_size)
        optimizer.zero_grad(set_to_none=True)
        total = speak + hear
        if total.requires_grad:  # lesions may freeze everything the losses reach
            total.backward()
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        history.append(ImitationStep(float(speak.detach()), float(hear.detach())))
    return history


def message_agreement(rule: Any, a: AgentModel, b: AgentModel, obs: Tensor,
                      channel: ChannelSpec) -> float:
    """Fraction of objects on which ``a`` and ``b`` say exactly the same greedy message."""
    noise = torch.Generator().manual_seed(0)
    ta, la = greedy_messages(rule, a, obs, channel, noise)
    tb, lb = greedy_messages(rule, b, obs, channel, noise)
    same = (la == lb) & ((ta == tb) | ~_valid(ta, la)).all(1)
    return float(same.float().mean())
