"""Learning rules: how a message is drawn and how the listener's feedback trains the speaker.

Both rules train the listener by back-propagating its own loss. They differ in what flows back
to the speaker:

* ``reinforce``: the listener sends back a reward per game; the speaker follows the score-function
  gradient with a running-mean baseline and an entropy bonus (Williams 1992; EGG's
  ``ReinforceWrapper``).
* ``gumbel``: the speaker sends a straight-through Gumbel-softmax message; the listener sends back
  the gradient of its loss with respect to that message, and the speaker back-propagates it
  (Jang et al. 2017; EGG's ``GumbelSoftmaxWrapper``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from neurocomm.platform.interfaces import EOS, AgentModel, Batch, ChannelSpec, Decision, Scenario
from torch import Tensor


@dataclass
class Utterance:
    """What a speaker produced: the wire message, what it keeps for learning, and stats."""

    wire: Tensor
    kept: Any
    tokens: Tensor
    lengths: Tensor
    entropy: Tensor


def message_lengths(tokens: Tensor) -> Tensor:
    """Symbols up to and including the first end-of-message (all of them when none)."""
    is_eos = tokens == EOS
    max_len = tokens.shape[1]
    first = torch.where(is_eos.any(1), is_eos.float().argmax(1), torch.full_like(tokens[:, 0], max_len - 1))
    return first + 1


def _mask_after_end(tokens: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
    positions = torch.arange(tokens.shape[1]).unsqueeze(0)
    mask = positions < lengths.unsqueeze(1)
    return tokens * mask, mask


def _at_end(decision: Decision, lengths: Tensor) -> Decision:
    """The decision the listener takes when the message ends (one column)."""
    idx = (lengths - 1).unsqueeze(1)
    pick = lambda t: t.gather(1, idx.expand(-1, 1)) if t.dim() == 2 else t  # noqa: E731
    return Decision(pick(decision.loss), pick(decision.reward), pick(decision.choice), pick(decision.success))


def evaluate_tokens(
    agent: AgentModel, scenario: Scenario, tokens: Tensor, batch: Batch, vocab_size: int
) -> Decision:
    """The listener's decision on complete (greedy) messages, read up to their end; no learning."""
    lengths = message_lengths(tokens)
    with torch.no_grad():
        states = agent.comprehend(F.one_hot(tokens, vocab_size).float())
        idx = (lengths - 1).view(-1, 1, 1).expand(-1, 1, states.shape[-1])
        return scenario.decide(agent, states.gather(1, idx), batch)


class Reinforce:
    @dataclass(frozen=True)
    class Params:
        entropy_coeff: float = 0.05
        baseline: Literal["mean", "none"] = "mean"
        length_cost: float = 0.0

        def check(self) -> None:
            if self.entropy_coeff < 0 or self.length_cost < 0:
                raise ValueError("entropy_coeff: must be >= 0")

    evaluate = staticmethod(evaluate_tokens)

    def __init__(self, params: Reinforce.Params | None = None) -> None:
        self.params = params or Reinforce.Params()

    def speak(
        self, agent: AgentModel, obs: Tensor, channel: ChannelSpec, generator: torch.Generator,
        *, train: bool = True,
    ) -> Utterance:
        state = agent.production_start(agent.perceive(obs))
        symbol: Tensor | None = None
        tokens, logps, ents = [], [], []
        for _ in range(channel.max_len):
            logits, state = agent.production_step(symbol, state)
            logp_all = F.log_softmax(logits, dim=-1)
            if train:
                tok = torch.multinomial(logp_all.exp(), 1, generator=generator).squeeze(1)
            else:
                tok = logits.argmax(-1)
            logps.append(logp_all.gather(1, tok.unsqueeze(1)).squeeze(1))
            ents.append(-(logp_all.exp() * logp_all).sum(-1))
            tokens.append(tok)
            symbol = F.one_hot(tok, channel.vocab_size).to(logits.dtype)
        raw = torch.stack(tokens, 1)
        lengths = message_lengths(raw)
        tokens_t, mask = _mask_after_end(raw, lengths)
        logp = (torch.stack(logps, 1) * mask).sum(1)
        entropy = (torch.stack(ents, 1) * mask).sum(1) / lengths
        return Utterance(tokens_t, (logp, entropy, lengths), tokens_t, lengths, entropy.detach())

    def listen(
        self, agent: AgentModel, scenario: Scenario, wire: Tensor, batch: Batch, vocab_size: int
    ) -> tuple[float, Tensor, Decision, Tensor]:
        lengths = message_lengths(wire)
        states = agent.comprehend(F.one_hot(wire, vocab_size).float())
        idx = (lengths - 1).view(-1, 1, 1).expand(-1, 1, states.shape[-1])
        decision = scenario.decide(agent, states.gather(1, idx), batch)
        loss = decision.loss.mean()
        loss.backward()
        return float(loss.detach()), decision.reward[:, 0].detach(), decision, lengths

    def learn(self, agent: AgentModel, kept: Any, feedback: Tensor, state: dict[str, Any]) -> float:
        logp, entropy, lengths = kept
        reward = feedback
        if self.params.length_cost:
            reward = reward - self.params.length_cost * lengths.float()
        if self.params.baseline == "mean":
            baseline = state.get("baseline", 0.0)
            n = state.get("n", 0) + 1
            state["baseline"] = baseline + (float(reward.mean()) - baseline) / n
            state["n"] = n
        else:
            baseline = 0.0
        loss = -((reward - baseline) * logp).mean() - self.params.entropy_coeff * entropy.mean()
        loss.backward()
        return float(loss.detach())


def _gumbel_sample(logits: Tensor, tau: float, generator: torch.Generator) -> Tensor:
    u = torch.rand(logits.shape, generator=generator).clamp_(1e-10, 1.0 - 1e-7)
    return F.softmax((logits - torch.log(-torch.log(u))) / tau, dim=-1)


class GumbelSoftmax:
    @dataclass(frozen=True)
    class Params:
        temperature: float = 1.0
        # false: the listener reads the relaxed (soft) symbols while training, as EGG's
        # RnnSenderGS does by default; true: hard one-hot forward, soft gradient.
        straight_through: bool = False

        def check(self) -> None:
            if not self.temperature > 0:
                raise ValueError("temperature: must be > 0")

    evaluate = staticmethod(evaluate_tokens)

    def __init__(self, params: GumbelSoftmax.Params | None = None) -> None:
        self.params = params or GumbelSoftmax.Params()

    def speak(
        self, agent: AgentModel, obs: Tensor, channel: ChannelSpec, generator: torch.Generator,
        *, train: bool = True,
    ) -> Utterance:
        state = agent.production_start(agent.perceive(obs))
        symbol: Tensor | None = None
        steps, ents = [], []
        for _ in range(channel.max_len):
            logits, state = agent.production_step(symbol, state)
            probs = F.softmax(logits, -1)
            ents.append(-(probs * F.log_softmax(logits, -1)).sum(-1))
            soft = _gumbel_sample(logits, self.params.temperature, generator) if train else probs
            if self.params.straight_through or not train:
                hard = F.one_hot(soft.argmax(-1), channel.vocab_size).to(soft.dtype)
                symbol = hard - soft.detach() + soft
            else:
                symbol = soft
            steps.append(symbol)
        message = torch.stack(steps, 1)
        tokens = message.argmax(-1)
        lengths = message_lengths(tokens)
        tokens, mask = _mask_after_end(tokens, lengths)
        entropy = (torch.stack(ents, 1) * mask).sum(1) / lengths
        return Utterance(message.detach(), message, tokens, lengths, entropy.detach())

    def listen(
        self, agent: AgentModel, scenario: Scenario, wire: Tensor, batch: Batch, vocab_size: int
    ) -> tuple[float, Any, Decision, Tensor]:
        message = wire.clone().requires_grad_(True)
        decision = scenario.decide(agent, agent.comprehend(message), batch)
        # Expected loss over where the message ends (EGG's SenderReceiverRnnGS): the listener
        # is scored after each symbol, weighted by the chance that the message ended there.
        eos = message[:, :, EOS]
        alive = torch.cumprod(torch.cat([torch.ones_like(eos[:, :1]), 1 - eos[:, :-1]], 1), 1)
        weight = torch.cat([(eos * alive)[:, :-1], alive[:, -1:]], 1)
        loss = (weight * decision.loss).sum(1).mean()
        loss.backward()
        lengths = message_lengths(wire.argmax(-1))
        value = float(loss.detach())
        return value, (message.grad.detach(), value), _at_end(decision, lengths), lengths

    def learn(self, agent: AgentModel, kept: Any, feedback: Any, state: dict[str, Any]) -> float:
        grad, listener_loss = feedback
        kept.backward(grad)
        return listener_loss
