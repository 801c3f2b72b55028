"""Self-monitoring: a speaker listens to its own messages with its own comprehension module.

A model that wants it exposes ``agent.monitor`` (a :class:`SelfMonitor`, or None when off); the
learning rules look it up with ``getattr(agent, "monitor", None)`` and call only what is here,
so a rule never needs to know a model's insides and any model can opt in.

* ``samples > 1`` (obverter-style selection; Choi, Lazaridou & de Freitas 2018): the rule draws
  ``samples`` candidate messages per game and :meth:`SelfMonitor.choose` keeps the one whose
  self-comprehended meaning best matches the speaker's own meaning of the target (the dot
  product the referential listener uses).
* ``weight > 0`` (auxiliary loss): :meth:`SelfMonitor.loss` scores the speaker's comprehension of
  its own message against its meanings of the other targets of the batch (the speaker never
  sees the listener's candidates, so the batch stands in for them); the rule adds it to the
  speaker's update.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from neurocomm.platform.interfaces import AgentModel


def understood_at_end(agent: AgentModel, message: Tensor, lengths: Tensor) -> Tensor:
    """(N, L, vocab) messages, (N,) lengths → (N, hidden) meaning after each message's last symbol."""
    states = agent.comprehend(message)
    idx = (lengths - 1).view(-1, 1, 1).expand(-1, 1, states.shape[-1])
    return states.gather(1, idx).squeeze(1)


@dataclass(frozen=True)
class SelfMonitor:
    samples: int = 1  # candidate messages per game to choose among; 1: no choice
    weight: float = 0.0  # weight of the self-comprehension loss; 0: none

    def choose(self, agent: AgentModel, meaning: Tensor, messages: Tensor, lengths: Tensor) -> Tensor:
        """(B, H) meanings, (B, K, L, vocab) candidates, (B, K) lengths → (B,) index of the best.

        A choice, not a learning signal: no gradient flows through it.
        """
        b, k = lengths.shape
        with torch.no_grad():
            understood = understood_at_end(agent, messages.flatten(0, 1), lengths.flatten())
            scores = torch.einsum("bkh,bh->bk", understood.view(b, k, -1), meaning)
        return scores.argmax(-1)

    def loss(self, agent: AgentModel, meaning: Tensor, message: Tensor, lengths: Tensor) -> Tensor:
        """(B,) weighted cross-entropy of picking each game's own target among the batch's targets
        from the speaker's comprehension of its own message; differentiable in the message."""
        understood = understood_at_end(agent, message, lengths)
        scores = understood @ meaning.T  # (B, B): message i against the meaning of target j
        # The same object can be the target of several games; its copies are not distractors.
        same = (meaning.unsqueeze(1) == meaning.unsqueeze(0)).all(-1)
        own = torch.eye(len(meaning), dtype=torch.bool)
        scores = scores.masked_fill(same & ~own, float("-inf"))
        labels = torch.arange(len(meaning), device=meaning.device)
        return self.weight * F.cross_entropy(scores, labels, reduction="none")
