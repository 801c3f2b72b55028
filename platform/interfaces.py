"""The contracts between the platform and the code it finds by name.

* An agent model (agents/) is an ``nn.Module`` with a perception stack, a production module
  driven one symbol at a time, and a comprehension module (:class:`AgentModel`).
* A scenario (scenarios/) samples games and turns what a listener understood into a decision,
  a loss and a reward (:class:`Scenario`).
* A learning rule (agents/) says how a speaker's message is drawn and how feedback flows back
  to it (:class:`LearningRule`); it wraps the modules, so switching rules never touches a model.

Each of the three declares a frozen ``Params`` dataclass that the config is checked against.
Symbol 0 of the vocabulary is end-of-message.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
from torch import Tensor, nn

EOS = 0


@dataclass(frozen=True)
class ChannelSpec:
    """The shared channel: messages of up to ``max_len`` symbols from ``vocab_size``."""

    vocab_size: int
    max_len: int


@dataclass(frozen=True)
class GameSpec:
    """What a scenario tells every model at build time."""

    obs_dim: int
    n_attributes: int
    n_values: int


@dataclass
class Batch:
    """One batch of games for one directed edge, as numpy arrays (cheap to rebuild anywhere).

    ``speaker_obs`` (B, obs_dim) float32; ``target`` (B, n_attributes) int64 attribute values;
    scenario-specific arrays (candidates, labels, ...) live in ``extra``.
    """

    speaker_obs: np.ndarray
    target: np.ndarray
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.speaker_obs.shape[0])

    @classmethod
    def concat(cls, batches: list[Batch]) -> Batch:
        """The batches one after the other (rows of each kept together)."""
        if len(batches) == 1:
            return batches[0]
        return cls(
            np.concatenate([b.speaker_obs for b in batches]),
            np.concatenate([b.target for b in batches]),
            {k: np.concatenate([b.extra[k] for b in batches]) for k in batches[0].extra},
        )

    def rows(self, index: slice) -> Batch:
        extra = {k: v[index] for k, v in self.extra.items()}
        return Batch(self.speaker_obs[index], self.target[index], extra)


@dataclass
class Decision:
    """A listener's per-game outcome, one entry per game and per message step considered.

    ``loss`` (B, T) is differentiable; ``reward`` (B, T) in [0, 1] is what the speaker is told;
    ``choice`` (B, T) is the listener's answer (an index, logged); ``success`` (B, T) is 0/1.
    """

    loss: Tensor
    reward: Tensor
    choice: Tensor
    success: Tensor


@runtime_checkable
class AgentModel(Protocol):
    """What the platform, the scenarios and the learning rules may call on an agent.

    Construction: ``Model(params, game=GameSpec, channel=ChannelSpec)``.
    """

    hidden_size: int

    def perceive(self, obs: Tensor) -> Tensor:
        """(..., obs_dim) observations → (..., hidden_size) meanings."""

    def production_start(self, meaning: Tensor) -> Any:
        """(B, hidden_size) meaning → the production module's initial recurrent state."""

    def production_step(self, symbol: Tensor | None, state: Any) -> tuple[Tensor, Any]:
        """Previous symbol as a (B, vocab) one-hot or relaxed vector (None at the start)
        → (B, vocab) logits of the next symbol and the new state."""

    def comprehend(self, message: Tensor) -> Tensor:
        """(B, L, vocab) one-hot or relaxed message → (B, L, hidden_size) meaning after each symbol."""

    def reconstruct(self, meaning: Tensor) -> Tensor:
        """(..., hidden_size) meaning → (..., n_attributes, n_values) attribute logits."""


class Scenario(Protocol):
    """A game: what is seen, what counts as success, the reward."""

    spec: GameSpec

    def sample(self, rng: np.random.Generator, batch_size: int, split: str = "train") -> Batch:
        """A batch of games; must depend on ``rng`` alone (the listener rebuilds it)."""

    def decide(self, agent: AgentModel, meaning: Tensor, batch: Batch) -> Decision:
        """(B, T, hidden_size) listener meanings (T message steps) → the listener's decision."""


class LearningRule(Protocol):
    """How messages are drawn and how the listener's feedback reaches the speaker.

    Inputs come in ``groups`` (one per directed edge; rows of a group together). Each group's
    loss is the mean over its games and the groups' losses are summed before back-propagating,
    so the gradients do not depend on how edges are grouped.
    """

    def speak(
        self, agent: AgentModel, obs: Tensor, channel: ChannelSpec,
        noise: Callable[[Sequence[int]], Tensor], *, train: bool = True,
    ) -> Any:
        """→ an utterance: ``wire`` (rows first), ``kept`` (for ``learn``), ``tokens`` (rows, L),
        ``lengths`` and ``entropy`` per row. ``noise(shape)`` gives uniform [0, 1) samples."""

    def listen(
        self, agent: AgentModel, scenario: Scenario, wire: Tensor, batch: Batch, vocab_size: int,
        groups: int = 1,
    ) -> tuple[list[float], list[Any], Decision, Tensor]:
        """Back-propagates the listener's loss → (loss per group, feedback per group for the
        speaker, decision at the message's end, lengths per row)."""

    def learn(self, agent: AgentModel, kept: Any, feedback: list[Any],
              states: list[dict[str, Any]]) -> list[float]:
        """Back-propagates the speaker's loss → loss per group (``states``: each group's speaker's
        rule state, updated in place)."""

    def evaluate(self, agent: AgentModel, scenario: Scenario, tokens: Tensor, batch: Batch,
                 vocab_size: int) -> Decision:
        """The listener's decision on complete token messages, without learning."""


_MODEL_METHODS = ("perceive", "production_start", "production_step", "comprehend", "reconstruct")


def check_model_class(cls: Any) -> str | None:
    """Why ``cls`` cannot serve as an agent model, or None when it fits."""
    if not (inspect.isclass(cls) and issubclass(cls, nn.Module)):
        return f"{getattr(cls, '__qualname__', cls)!r} is not a torch.nn.Module subclass"
    missing = [m for m in _MODEL_METHODS if not callable(getattr(cls, m, None))]
    if missing:
        return f"{cls.__qualname__} does not fit the agent interface: missing {', '.join(missing)}"
    return None
