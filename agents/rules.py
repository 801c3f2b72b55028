"""Learning rules: how a message is drawn and how the listener's feedback trains the speaker.

Both rules train the listener by back-propagating its own loss. They differ in what flows back
to the speaker:

* ``reinforce``: the listener sends back a reward per game; the speaker follows the score-function
  gradient with a running-mean baseline and an entropy bonus (Williams 1992; EGG's
  ``ReinforceWrapper``).
* ``gumbel``: the speaker sends a straight-through Gumbel-softmax message; the listener sends back
  the gradient of its loss with respect to that message, and the speaker back-propagates it
  (Jang et al. 2017; EGG's ``GumbelSoftmaxWrapper``).

Batches come in groups (one per directed edge, ``groups`` of them, rows of a group together):
each group's loss is the mean over its games, and the groups' losses are summed, so an agent's
gradient is the same whether its edges are computed one by one or stacked with other agents'.
Sampling noise comes from ``noise(shape)`` (uniform in [0, 1)), which the platform draws per
edge, so the messages do not depend on how edges are grouped either.

A model may expose a self-monitor (``agent.monitor``, agents/monitoring.py); both rules then let
it pick among several candidate messages and/or add its self-comprehension loss to the speaker's
update, through that hook alone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from neurocomm.agents.monitoring import SelfMonitor
from neurocomm.platform.interfaces import (
    EOS,
    AgentModel,
    Batch,
    ChannelSpec,
    Decision,
    Feedback,
    Heard,
    Scenario,
    Utterance,
    check_row_groups,
)

Noise = Callable[[Sequence[int]], Tensor]


def noise_source(noise: Noise | torch.Generator) -> Noise:
    """A noise callable; a plain ``torch.Generator`` is accepted for one-off use."""
    if isinstance(noise, torch.Generator):
        return lambda shape: torch.rand(tuple(shape), generator=noise)
    return noise


def _carried(value: Tensor | None, what: str) -> Tensor:
    if value is None:
        raise ValueError(f"this rule needs feedback that carries {what}")
    return value


def _group_means(values: Tensor, groups: int) -> Tensor:
    """(rows, ...) → (groups,): the mean of each group's rows."""
    return values.reshape(groups, -1).mean(1)


def _no_eos(logits: Tensor) -> Tensor:
    """Logits with end-of-message ruled out: every message is ``max_len`` symbols long, as with
    EGG's ``PlusOneWrapper`` (Chaabouni et al. 2020 use fixed-length messages)."""
    return logits.index_fill(-1, torch.tensor([EOS], device=logits.device), -1e9)


def _categorical(probs: Tensor, u: Tensor) -> Tensor:
    """Inverse-CDF sampling: one symbol per row from (rows, V) probabilities and (rows, 1) noise."""
    below = (probs.cumsum(-1) < u).sum(-1)
    return below.clamp(max=probs.shape[-1] - 1)


def message_lengths(tokens: Tensor) -> Tensor:
    """Symbols up to and including the first end-of-message (all of them when none)."""
    is_eos = tokens == EOS
    max_len = tokens.shape[1]
    first = torch.where(is_eos.any(1), is_eos.float().argmax(1), torch.full_like(tokens[:, 0], max_len - 1))
    return first + 1


def _mask_after_end(tokens: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
    positions = torch.arange(tokens.shape[1], device=tokens.device).unsqueeze(0)
    mask = positions < lengths.unsqueeze(1)
    return tokens * mask, mask


def _at_end(decision: Decision, lengths: Tensor) -> Decision:
    """The decision the listener takes when the message ends (one column)."""
    def pick(t: Tensor) -> Tensor:
        idx = (lengths - 1).view(-1, 1, *([1] * (t.dim() - 2))).expand(-1, 1, *t.shape[2:])
        return t.gather(1, idx)

    return Decision(pick(decision.loss), pick(decision.reward), pick(decision.choice), pick(decision.success))


def _backward(loss: Tensor) -> None:
    # With lesions, a loss can depend on frozen parameters only: then there is nothing to train.
    if loss.requires_grad:
        loss.backward()


def _monitor(agent: AgentModel) -> SelfMonitor | None:
    return getattr(agent, "monitor", None)


def _samples(monitor: SelfMonitor | None) -> int:
    return 1 if monitor is None else monitor.samples


def _candidates(meaning: Tensor, monitor: SelfMonitor | None) -> Tensor:
    """The meaning once per candidate message: (B, H) → (B * K, H), the K rows of a game together."""
    k = _samples(monitor)
    return meaning if k == 1 else meaning.repeat_interleave(k, 0)


def _greedy_rows(batch_size: int, monitor: SelfMonitor | None, train: bool) -> Tensor | None:
    """Out of training, which of the (B * K) rows are greedy: None for all of them, else the
    first candidate of each game (the others are sampled, so the monitor has a choice)."""
    k = _samples(monitor)
    if train or k == 1:
        return None
    return torch.arange(batch_size * k) % k == 0


def _chosen_rows(
    agent: AgentModel, monitor: SelfMonitor | None, meaning: Tensor, message: Tensor, lengths: Tensor
) -> Tensor | None:
    """Row of the kept candidate of each game in the (B * K) stack, or None without a choice."""
    if monitor is None or monitor.samples == 1:
        return None
    b, k = len(meaning), monitor.samples
    pick = monitor.choose(agent, meaning, message.view(b, k, *message.shape[1:]), lengths.view(b, k))
    return torch.arange(b, device=pick.device) * k + pick


def _self_loss(
    agent: AgentModel, monitor: SelfMonitor | None, meaning: Tensor, message: Tensor, lengths: Tensor,
    train: bool,
) -> Tensor | None:
    if monitor is None or monitor.weight == 0 or not train:
        return None
    return monitor.loss(agent, meaning, message, lengths)


def _start_speaking(
    agent: AgentModel, obs: Tensor, train: bool
) -> tuple[Tensor, SelfMonitor | None, Any, Tensor | None]:
    """The speaker's meaning, its self-monitor, the production state (one row per candidate
    message) and which rows are greedy."""
    meaning = agent.perceive(obs)
    monitor = _monitor(agent)
    state = agent.production_start(_candidates(meaning, monitor))
    return meaning, monitor, state, _greedy_rows(len(meaning), monitor, train)


def evaluate_tokens(
    agent: AgentModel, scenario: Scenario, tokens: Tensor, batch: Batch, vocab_size: int
) -> Decision:
    """The listener's decision on complete (greedy) messages, read up to their end; no learning."""
    with torch.no_grad():
        return _decide_at_end(agent, scenario, tokens, batch, vocab_size)[0]


def _decide_at_end(
    agent: AgentModel, scenario: Scenario, tokens: Tensor, batch: Batch, vocab_size: int
) -> tuple[Decision, Tensor]:
    """The listener reads token messages and decides at each one's end → (decision, lengths)."""
    lengths = message_lengths(tokens)
    states = agent.comprehend(F.one_hot(tokens, vocab_size).float())
    idx = (lengths - 1).view(-1, 1, 1).expand(-1, 1, states.shape[-1])
    return scenario.decide(agent, states.gather(1, idx), batch), lengths


class Reinforce:
    @dataclass(frozen=True)
    class Params:
        entropy_coeff: float = 0.05
        baseline: Literal["mean", "none"] = "mean"
        length_cost: float = 0.0
        # What the speaker is told per game: the scenario's reward (e.g. the fraction of
        # attributes right), or the listener's negative loss, as EGG's REINFORCE games do. The
        # latter is dense: with many values per attribute the fraction right is 0 for most
        # early games and gives the speaker almost no signal.
        reward: Literal["decision", "neg_loss"] = "decision"
        # true: no end-of-message symbol, every message is max_len symbols long
        fixed_length: bool = False

        def check(self) -> None:
            if self.entropy_coeff < 0:
                raise ValueError("entropy_coeff: must be >= 0")
            if self.length_cost < 0:
                raise ValueError("length_cost: must be >= 0")

    evaluate = staticmethod(evaluate_tokens)

    def __init__(self, params: Reinforce.Params | None = None) -> None:
        self.params = params or Reinforce.Params()

    def speak(
        self, agent: AgentModel, obs: Tensor, channel: ChannelSpec, noise: Noise | torch.Generator,
        *, train: bool = True,
    ) -> Utterance:
        noise = noise_source(noise)
        meaning, monitor, state, greedy_rows = _start_speaking(agent, obs, train)
        symbol: Tensor | None = None
        tokens, logps, ents = [], [], []
        for _ in range(channel.max_len):
            logits, state = agent.production_step(symbol, state)
            if self.params.fixed_length:
                logits = _no_eos(logits)
            logp_all = F.log_softmax(logits, dim=-1)
            if train:
                tok = _categorical(logp_all.exp(), noise((len(logits), 1)).to(logits.device))
            elif greedy_rows is None:
                tok = logits.argmax(-1)
            else:
                sampled = _categorical(logp_all.exp(), noise((len(logits), 1)).to(logits.device))
                tok = torch.where(greedy_rows.to(logits.device), logits.argmax(-1), sampled)
            logps.append(logp_all.gather(1, tok.unsqueeze(1)).squeeze(1))
            ents.append(-(logp_all.exp() * logp_all).sum(-1))
            tokens.append(tok)
            symbol = F.one_hot(tok, channel.vocab_size).to(logits.dtype)
        raw = torch.stack(tokens, 1)
        lengths = message_lengths(raw)
        tokens_t, mask = _mask_after_end(raw, lengths)
        logp = (torch.stack(logps, 1) * mask).sum(1)
        entropy = (torch.stack(ents, 1) * mask).sum(1) / lengths
        if monitor is not None:
            one_hot = F.one_hot(tokens_t, channel.vocab_size).float()
            rows = _chosen_rows(agent, monitor, meaning, one_hot, lengths)
            if rows is not None:
                tokens_t, lengths, logp, entropy, one_hot = (
                    t[rows] for t in (tokens_t, lengths, logp, entropy, one_hot)
                )
            self_loss = _self_loss(agent, monitor, meaning, one_hot, lengths, train)
            kept: tuple = (logp, entropy, lengths, self_loss)
        else:
            kept = (logp, entropy, lengths)
        return Utterance(tokens_t, kept, tokens_t, lengths, entropy.detach())

    def listen(
        self, agent: AgentModel, scenario: Scenario, wire: Tensor, batch: Batch, vocab_size: int,
        groups: int,
    ) -> Heard:
        check_row_groups(len(wire), groups)
        decision, lengths = _decide_at_end(agent, scenario, wire, batch, vocab_size)
        losses = _group_means(decision.loss, groups)
        _backward(losses.sum())
        values = losses.detach().tolist()
        told = -decision.loss if self.params.reward == "neg_loss" else decision.reward
        rewards = told[:, 0].detach().chunk(groups)
        return Heard(values, [Feedback(v, reward=r) for v, r in zip(values, rewards)], decision, lengths)

    def learn(
        self, agent: AgentModel, kept: Any, feedback: Sequence[Feedback], states: Sequence[dict[str, Any]]
    ) -> list[float]:
        logp, entropy, lengths, *rest = kept
        self_loss = rest[0] if rest else None
        groups = len(feedback)
        reward = torch.cat([_carried(f.reward, "reward") for f in feedback])
        if self.params.length_cost:
            reward = reward - self.params.length_cost * lengths.float()
        # every group uses its speaker's baseline from before this round; the baselines are
        # then updated group by group (edge order), the same whatever the grouping
        size = len(reward) // groups
        if self.params.baseline == "mean":
            baseline = torch.tensor([s.get("baseline", 0.0) for s in states], device=reward.device)
            baseline = baseline.repeat_interleave(size)
        else:
            baseline = torch.zeros_like(reward)
        per_row = -(reward - baseline) * logp - self.params.entropy_coeff * entropy
        if self_loss is not None:
            # The self-comprehension loss trains comprehension (and perception) directly; the
            # symbols are discrete, so it reaches production as a score-function term, a cost
            # on each message with its group's mean as baseline.
            cost = self_loss.detach().reshape(groups, -1)
            centred = (cost - cost.mean(1, keepdim=True)).reshape(-1)
            per_row = per_row + self_loss + centred * logp
        losses = _group_means(per_row, groups)
        _backward(losses.sum())
        if self.params.baseline == "mean":
            for state, mean_reward in zip(states, _group_means(reward, groups).tolist()):
                n = state.get("n", 0) + 1
                old = state.get("baseline", 0.0)
                state["baseline"] = old + (mean_reward - old) / n
                state["n"] = n
        return losses.detach().tolist()


def _gumbel_sample(logits: Tensor, tau: float, noise: Noise) -> Tensor:
    u = noise(logits.shape).to(logits.device).clamp_(1e-10, 1.0 - 1e-7)
    return F.softmax((logits - torch.log(-torch.log(u))) / tau, dim=-1)


class GumbelSoftmax:
    @dataclass(frozen=True)
    class Params:
        temperature: float = 1.0
        # false: the listener reads the relaxed (soft) symbols while training, as EGG's
        # RnnSenderGS does by default; true: hard one-hot forward, soft gradient.
        straight_through: bool = False
        # true: no end-of-message symbol, every message is max_len symbols long
        fixed_length: bool = False

        def check(self) -> None:
            if not self.temperature > 0:
                raise ValueError("temperature: must be > 0")

    evaluate = staticmethod(evaluate_tokens)

    def __init__(self, params: GumbelSoftmax.Params | None = None) -> None:
        self.params = params or GumbelSoftmax.Params()

    def speak(
        self, agent: AgentModel, obs: Tensor, channel: ChannelSpec, noise: Noise | torch.Generator,
        *, train: bool = True,
    ) -> Utterance:
        noise = noise_source(noise)
        meaning, monitor, state, greedy_rows = _start_speaking(agent, obs, train)
        symbol: Tensor | None = None
        steps, ents = [], []
        for _ in range(channel.max_len):
            logits, state = agent.production_step(symbol, state)
            if self.params.fixed_length:
                logits = _no_eos(logits)
            probs = F.softmax(logits, -1)
            ents.append(-(probs * F.log_softmax(logits, -1)).sum(-1))
            if train:
                soft = _gumbel_sample(logits, self.params.temperature, noise)
            elif greedy_rows is None:
                soft = probs
            else:
                noisy = _gumbel_sample(logits, self.params.temperature, noise)
                soft = torch.where(greedy_rows.to(probs.device).unsqueeze(1), probs, noisy)
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
        if monitor is None:
            return Utterance(message.detach(), message, tokens, lengths, entropy.detach())
        rows = _chosen_rows(agent, monitor, meaning, message, lengths)
        if rows is not None:
            message, tokens, lengths, entropy = (t[rows] for t in (message, tokens, lengths, entropy))
        # The relaxed message carries the self-comprehension loss back into production.
        self_loss = _self_loss(agent, monitor, meaning, message, lengths, train)
        return Utterance(message.detach(), (message, self_loss), tokens, lengths, entropy.detach())

    def listen(
        self, agent: AgentModel, scenario: Scenario, wire: Tensor, batch: Batch, vocab_size: int,
        groups: int,
    ) -> Heard:
        check_row_groups(len(wire), groups)
        message = wire.clone().requires_grad_(True)
        decision = scenario.decide(agent, agent.comprehend(message), batch)
        # Expected loss over where the message ends (EGG's SenderReceiverRnnGS): the listener
        # is scored after each symbol, weighted by the chance that the message ended there.
        eos = message[:, :, EOS]
        alive = torch.cumprod(torch.cat([torch.ones_like(eos[:, :1]), 1 - eos[:, :-1]], 1), 1)
        weight = torch.cat([(eos * alive)[:, :-1], alive[:, -1:]], 1)
        losses = _group_means((weight * decision.loss).sum(1), groups)
        _backward(losses.sum())
        lengths = message_lengths(wire.argmax(-1))
        values = losses.detach().tolist()
        grad = message.grad if message.grad is not None else torch.zeros_like(message)
        feedback = [Feedback(v, message_grad=g) for g, v in zip(grad.detach().chunk(groups), values)]
        return Heard(values, feedback, _at_end(decision, lengths), lengths)

    def learn(
        self, agent: AgentModel, kept: Any, feedback: Sequence[Feedback], states: Sequence[dict[str, Any]]
    ) -> list[float]:
        grad = torch.cat([_carried(f.message_grad, "message_grad") for f in feedback])
        message, self_loss = kept if isinstance(kept, tuple) else (kept, None)
        if self_loss is None:
            if message.requires_grad:
                message.backward(grad)
        else:
            total = (message * grad).sum() + _group_means(self_loss, len(feedback)).sum()
            _backward(total)
        return [f.loss for f in feedback]
