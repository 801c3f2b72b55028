"""The contracts between the platform and the code it finds by name.

* An agent model (agents/) is an ``nn.Module`` with a perception stack, a production module
  driven one symbol at a time, and a comprehension module (:class:`AgentModel`).
* A scenario (scenarios/) samples games and turns what a listener understood into a decision,
  a loss and a reward (:class:`Scenario`).
* A learning rule (agents/) says how a speaker's message is drawn and how feedback flows back
  to it (:class:`LearningRule`); it wraps the modules, so switching rules never touches a model.

Each of the three declares a frozen ``Params`` dataclass that the config is checked against.
Symbol 0 of the vocabulary is end-of-message.

Rows come in groups: inputs to a model, a rule or a scenario may hold the games of several
directed edges, one after the other, every edge with as many rows (:func:`check_row_groups`).
The optional hooks a plug-in may offer are declared here too (:class:`Stackable`,
:class:`Monitored`, :class:`ScenarioHooks`); the platform looks for nothing else. A tracker
sink (TensorBoard, MLflow, W&B or a user's own) fits :class:`TrackerSink`.
``neurocomm.platform.checks`` plays tiny rounds to check a plug-in against these contracts.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
from torch import Tensor, nn

EOS = 0


def check_row_groups(rows: int, groups: int) -> int:
    """The row-group invariant: ``rows`` rows hold ``groups`` edges' games, each edge's rows
    contiguous and equally many. Returns the rows per group; ValueError when they do not divide."""
    if groups < 1 or rows % groups:
        raise ValueError(f"{rows} rows cannot be {groups} equal groups of rows (one per edge)")
    return rows // groups


def group_rows(groups: int, size: int, g: int) -> slice:
    """The rows of group ``g`` when every group has ``size`` rows."""
    return slice(g * size, (g + 1) * size)


@dataclass(frozen=True)
class ChannelSpec:
    """The shared channel: messages of up to ``max_len`` symbols from ``vocab_size``."""

    vocab_size: int
    max_len: int


@dataclass(frozen=True)
class GameSpec:
    """What a scenario tells every model at build time.

    ``image_shape`` (channels, height, width): the observations are images, flattened in that
    order to ``obs_dim`` values (None: a plain vector). A model with a convolutional perception
    stack reads it; a model's ``Params.check_game(game)``, when it has one, refuses a game it
    cannot play (run once on the driver, before anything is built).
    """

    obs_dim: int
    n_attributes: int
    n_values: int
    image_shape: tuple[int, int, int] | None = None


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
    ``choice`` (B, T) is the listener's answer (an index, logged; (B, T, ...) for an answer that is
    not one index, e.g. reconstructed attributes); ``success`` (B, T) is 0/1.
    """

    loss: Tensor
    reward: Tensor
    choice: Tensor
    success: Tensor


@dataclass
class Utterance:
    """What a speaker produced for a batch of rows: ``wire`` (what is sent: (rows, L) tokens or
    (rows, L, vocab) relaxed symbols), ``kept`` (the rule's own record for ``learn``), ``tokens``
    (rows, L) int64, ``lengths`` (rows,) and ``entropy`` (rows,) per message."""

    wire: Tensor
    kept: Any
    tokens: Tensor
    lengths: Tensor
    entropy: Tensor


@dataclass
class Feedback:
    """What a listener sends back to the speaker of one edge, saying what it carries.

    ``loss``: the listener's loss on the edge. ``reward`` (B,): a reward per game, for
    score-function rules. ``message_grad`` (B, L, vocab): the gradient of the listener's loss
    with respect to the received message, for rules that back-propagate through the channel
    (the platform maps it back through channel noise before the speaker sees it).
    """

    loss: float
    reward: Tensor | None = None
    message_grad: Tensor | None = None


@dataclass
class Heard:
    """What ``LearningRule.listen`` returns: the listener's loss and feedback per group, its
    decision at each message's end (one column), and the messages' lengths per row."""

    losses: list[float]
    feedback: list[Feedback]
    decision: Decision
    lengths: Tensor


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
    ) -> Utterance:
        """The speaker's messages; ``noise(shape)`` gives uniform [0, 1) samples."""

    def listen(
        self, agent: AgentModel, scenario: Scenario, wire: Tensor, batch: Batch, vocab_size: int,
        groups: int,
    ) -> Heard:
        """Back-propagates the listener's loss; feedback per group for the speaker."""

    def learn(self, agent: AgentModel, kept: Any, feedback: list[Feedback],
              states: list[dict[str, Any]]) -> list[float]:
        """Back-propagates the speaker's loss → loss per group (``states``: each group's speaker's
        rule state, updated in place)."""

    def evaluate(self, agent: AgentModel, scenario: Scenario, tokens: Tensor, batch: Batch,
                 vocab_size: int) -> Decision:
        """The listener's decision on complete token messages, without learning."""


# ---------------------------------------------------------------------------- optional hooks


class Stackable(Protocol):
    """A model class may compute many agents as one: ``stacked(models, owners)`` returns an
    :class:`AgentModel` over ``len(owners)`` groups of rows, group ``g`` with the weights of
    ``models[owners[g]]``, or None when these models cannot be stacked. The platform only asks
    it for models of the same class with equal ``params`` (a frozen, hashable dataclass)."""

    params: Any

    @classmethod
    def stacked(cls, models: list[Any], owners: list[int]) -> AgentModel | None: ...


class Monitored(Protocol):
    """A model may expose ``monitor`` (agents/monitoring.py's SelfMonitor, or None): the learning
    rules then let it choose among candidate messages and add a self-comprehension loss."""

    monitor: Any


class ScenarioHooks(Protocol):
    """Optional scenario attributes: ``splits``, the sample splits it knows (a ``"heldout"`` split
    is evaluated besides ``"eval"``); ``standalone = True`` for a scenario that simulates its
    own population (``simulate_population``, ``record_schema``) instead of neural agents."""

    splits: ClassVar[tuple[str, ...]]
    standalone: ClassVar[bool]


DEFAULT_SPLITS = ("train", "eval")


def scenario_splits(scenario: Any) -> tuple[str, ...]:
    return tuple(getattr(scenario, "splits", DEFAULT_SPLITS))


def is_standalone_scenario(cls: Any) -> bool:
    return bool(getattr(cls, "standalone", False))


def stacker(model: Any) -> Any:
    """The model class's ``stacked`` hook, or None."""
    return getattr(type(model), "stacked", None)


def model_family(model: Any) -> Any:
    """Models that may be stacked together share this key: their class and their ``params``
    (a hashable frozen dataclass); a model without hashable params is a family of its own
    (``neurocomm check`` tells the author)."""
    params = getattr(model, "params", None)
    try:
        hash(params)
    except TypeError:
        params = None
    return (type(model), params) if params is not None else (type(model), id(model))


# ---------------------------------------------------------------------------- backends


class Backend(Protocol):
    """Where the shards run (platform/backends.py): every backend gives the same numbers."""

    name: str

    def submit_round(self, round_: int, edges: list[tuple[int, int]]) -> Any: ...

    def collect(self, pending: Any) -> Any:
        """The round's ShardReport (platform/shard.py)."""

    def get_state(self) -> dict[int, Any]: ...

    def set_state(self, state: dict[int, Any]) -> None: ...

    def replace_agents(self, generations: dict[int, int]) -> None: ...

    def placement(self) -> list[dict[str, Any]]: ...

    def dead_shards(self) -> list[int]: ...

    def replace(self, shards: list[int]) -> None:
        """Fresh shards in place of ``shards``; the caller restores their state."""

    def close(self) -> None: ...


# ---------------------------------------------------------------------------- trackers


@dataclass(frozen=True)
class SinkRun:
    """What a tracker sink is told about the run it watches, when the run starts or resumes."""

    run_dir: Path
    run_id: str  # the id recorded in run.json at creation (kept when the folder is renamed)
    name: str  # the config's name
    config: dict[str, Any]  # the resolved config as plain data: the run's hyperparameters
    resuming: bool


class TrackerSink(Protocol):
    """A tracker that sees every round (platform/sinks.py, docs/trackers.md).

    Built as ``cls(params, run)`` (``params``: an instance of its ``Params``) when the run
    starts or resumes; ``log`` once per round with the round as step and the values named as
    platform/sinks.py names them; ``close`` once, with the run's status (finished, interrupted,
    crashed). ``requires``, when set, is (module the sink imports, extra that installs it)."""

    Params: ClassVar[type]

    def log(self, step: int, values: dict[str, float]) -> None: ...

    def close(self, status: str) -> None: ...


_MODEL_METHODS = ("perceive", "production_start", "production_step", "comprehend", "reconstruct")


def check_model_class(cls: Any) -> str | None:
    """Why ``cls`` cannot serve as an agent model, or None when it fits."""
    if not (inspect.isclass(cls) and issubclass(cls, nn.Module)):
        return f"{getattr(cls, '__qualname__', cls)!r} is not a torch.nn.Module subclass"
    missing = [m for m in _MODEL_METHODS if not callable(getattr(cls, m, None))]
    if missing:
        return f"{cls.__qualname__} does not fit the agent interface: missing {', '.join(missing)}"
    return None
