"""``neuroai-rnn``: a layered perception stack, a Broca-like production module and a
Wernicke-like comprehension module, both recurrent.

Speaking: perceive(object) → meaning → ProductionModule emits symbols one at a time.
Listening: ComprehensionModule reads the message → meaning after each symbol; the scenario
compares it with perceived candidates (referential) or decodes attributes (reconstruction).

Mechanisms for ablations, all off by default (docs/mechanisms.md): self-monitoring of production
by comprehension (agents/monitoring.py), Hebbian fast weights in comprehension
(agents/plasticity.py), top-down feedback in perception, and lesions (agents/lesions.py).

The modules below hold the parameters (their names are the checkpoints' keys); the computation,
for one agent and for many stacked, is agents/grouped.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn

from neurocomm.agents.grouped import GroupedNeuroAI, one_group, stacked_weights
from neurocomm.agents.lesions import Lesion, freeze
from neurocomm.agents.monitoring import SelfMonitor
from neurocomm.agents.plasticity import PlasticRNN
from neurocomm.platform.interfaces import ChannelSpec, GameSpec


@dataclass(frozen=True)
class PerceptionParams:
    """The front of the perception stack. ``mlp``: the observation vector goes straight into
    the fully connected layers. ``conv``: the observation is an image (the game's
    ``image_shape``) that goes through one convolution per entry of ``channels`` (``kernel`` x
    ``kernel``, ``stride``, zero padding ``kernel // 2``, a ReLU after each), flattened into the
    fully connected layers."""

    kind: Literal["mlp", "conv"] = "mlp"
    channels: tuple[int, ...] = (16, 32)
    kernel: int = 3
    stride: int = 1

    def check(self) -> None:
        if not self.channels or any(c < 1 for c in self.channels):
            raise ValueError("channels: at least one convolution, each with >= 1 channels")
        if self.kernel < 1:
            raise ValueError("kernel: must be >= 1")
        if self.stride < 1:
            raise ValueError("stride: must be >= 1")

    def image_sizes(self, image_shape: tuple[int, int, int]) -> list[tuple[int, int, int]]:
        """(channels, height, width) of the input and after each convolution."""
        sizes = [image_shape]
        pad = self.kernel // 2
        for c in self.channels:
            _, h, w = sizes[-1]
            sizes.append((c, (h + 2 * pad - self.kernel) // self.stride + 1,
                          (w + 2 * pad - self.kernel) // self.stride + 1))
        return sizes


class PerceptionStack(nn.Module):
    """Observation → meaning through a few fully connected layers (ReLU between them), after
    convolutions over the image when ``front.kind`` is ``conv`` (``self.conv``, Conv2d/ReLU
    pairs, torch's reference for them in tests/test_model_equivalence.py).

    With ``topdown_iterations`` > 0, the top layer's output is fed back through a learned
    projection into the first layer's input, and the stack above it is run again, that many
    times: the bottom-up drive stays fixed, the top-down context changes what the upper
    layers see. The computation is ``GroupedNeuroAI.perceive`` (agents/grouped.py); the
    ``nn.Sequential`` keeps the parameter names of checkpoints and is torch's reference for
    the plain stack in tests/test_model_equivalence.py.
    """

    def __init__(
        self, obs_dim: int, layers: tuple[int, ...], out_dim: int, topdown_iterations: int = 0,
        front: PerceptionParams | None = None, image_shape: tuple[int, int, int] | None = None,
    ) -> None:
        super().__init__()
        if front is not None and front.kind == "conv":
            if image_shape is None:
                raise ValueError("perception.kind: conv needs a game whose observations are images")
            images = front.image_sizes(image_shape)
            convs: list[nn.Module] = []
            for (c_in, _, _), (c_out, _, _) in zip(images[:-1], images[1:]):
                convs += [nn.Conv2d(c_in, c_out, front.kernel, front.stride, front.kernel // 2), nn.ReLU()]
            self.conv = nn.Sequential(*convs)
            c, h, w = images[-1]
            obs_dim = c * h * w
        sizes = [obs_dim, *layers]
        blocks: list[nn.Module] = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            blocks += [nn.Linear(a, b), nn.ReLU()]
        blocks.append(nn.Linear(sizes[-1], out_dim))
        self.net = nn.Sequential(*blocks)
        if topdown_iterations:
            if not layers:
                raise ValueError("topdown_iterations: needs at least one perception layer")
            # Zeros (no random draw): the stack starts as the plain feed-forward one, with the
            # same initial weights, and learns how much to use the feedback.
            self.feedback_weight = nn.Parameter(torch.zeros(layers[0], out_dim))
            self.feedback_bias = nn.Parameter(torch.zeros(layers[0]))


def _cell(kind: str, input_size: int, hidden_size: int) -> nn.Module:
    return nn.GRUCell(input_size, hidden_size) if kind == "gru" else nn.LSTMCell(input_size, hidden_size)


class ProductionModule(nn.Module):
    """Meaning → message, one symbol per step (a recurrent decoder); the parameters of
    ``GroupedNeuroAI.production_step``."""

    def __init__(self, channel: ChannelSpec, hidden_size: int, embed_size: int, cell: str) -> None:
        super().__init__()
        self.symbol_embedding = nn.Linear(channel.vocab_size, embed_size, bias=False)
        self.start = nn.Parameter(torch.zeros(embed_size))
        self.cell = _cell(cell, embed_size, hidden_size)
        self.to_logits = nn.Linear(hidden_size, channel.vocab_size)


class ComprehensionModule(nn.Module):
    """Message → meaning after each symbol (a recurrent encoder); the parameters of
    ``GroupedNeuroAI.comprehend``.

    ``plasticity=(alpha, eta)`` replaces the GRU/LSTM by a plastic tanh RNN (Hebbian fast
    weights, agents/plasticity.py) with those initial values.
    """

    def __init__(
        self, channel: ChannelSpec, hidden_size: int, embed_size: int, cell: str,
        plasticity: tuple[float, float] | None = None,
    ) -> None:
        super().__init__()
        self.symbol_embedding = nn.Linear(channel.vocab_size, embed_size, bias=False)
        if plasticity is not None:
            self.rnn: nn.Module = PlasticRNN(embed_size, hidden_size, *plasticity)
        else:
            rnn = nn.GRU if cell == "gru" else nn.LSTM
            self.rnn = rnn(embed_size, hidden_size, batch_first=True)
        self.to_meaning = nn.Linear(hidden_size, hidden_size)


class NeuroAIAgent(nn.Module):
    """Every agent both speaks and listens; all parameters are trained by one optimiser."""

    @dataclass(frozen=True)
    class Params:
        hidden_size: int = 64
        embed_size: int = 32
        cell: Literal["gru", "lstm"] = "gru"
        perception_layers: tuple[int, ...] = (64,)
        # Self-monitoring (agents/monitoring.py). select: keep the best of monitor_samples
        # candidate messages by self-comprehension; loss: add a self-comprehension loss of
        # weight monitor_weight to the speaker's update.
        self_monitor: Literal["off", "select", "loss"] = "off"
        monitor_samples: int = 8
        monitor_weight: float = 0.5
        # Hebbian fast weights in the comprehension RNN (a plastic tanh RNN replaces the
        # GRU/LSTM there; production keeps `cell`). alpha: initial plasticity of every
        # connection; eta: initial Hebbian rate. Both are learned.
        plasticity: bool = False
        plasticity_alpha: float = 0.01
        plasticity_eta: float = 0.1
        # Top-down feedback passes in perception; 0: feed-forward only.
        topdown_iterations: int = 0
        lesions: tuple[Lesion, ...] = ()
        # The front of the perception stack: mlp, or conv over image observations
        # (PerceptionParams); perception_layers follow it.
        perception: PerceptionParams = PerceptionParams()

        def check(self) -> None:
            if self.hidden_size < 1 or self.embed_size < 1:
                raise ValueError("hidden_size: sizes must be >= 1")
            if any(n < 1 for n in self.perception_layers):
                raise ValueError("perception_layers: sizes must be >= 1")
            if self.self_monitor == "select" and self.monitor_samples < 2:
                raise ValueError("monitor_samples: select needs at least 2 candidates")
            if self.self_monitor == "loss" and not self.monitor_weight > 0:
                raise ValueError("monitor_weight: must be > 0 with self_monitor: loss")
            if not 0.0 < self.plasticity_eta < 1.0:
                raise ValueError("plasticity_eta: must be in (0, 1)")
            if self.topdown_iterations < 0:
                raise ValueError("topdown_iterations: must be >= 0")
            if self.topdown_iterations and not self.perception_layers:
                raise ValueError("topdown_iterations: needs at least one perception layer")
            if len(set(self.lesions)) != len(self.lesions):
                raise ValueError("lesions: each lesion at most once")

        def check_game(self, game: GameSpec) -> None:
            """Whether these agents can play ``game`` (interfaces.GameSpec): a conv front needs
            image observations (with padding ``kernel // 2`` every convolution keeps at least
            one pixel, so any image size fits)."""
            if self.perception.kind == "conv" and game.image_shape is None:
                raise ValueError("perception.kind: conv needs a scenario whose observations are images "
                                 "(e.g. digits); this scenario's are vectors, use kind: mlp")

    def __init__(self, params: NeuroAIAgent.Params, *, game: GameSpec, channel: ChannelSpec) -> None:
        super().__init__()
        self.params = params
        self.hidden_size = params.hidden_size
        self.game = game
        h, e = params.hidden_size, params.embed_size
        params.check_game(game)
        self.perception = PerceptionStack(game.obs_dim, params.perception_layers, h,
                                          params.topdown_iterations, params.perception, game.image_shape)
        self.production = ProductionModule(channel, h, e, params.cell)
        plastic = (params.plasticity_alpha, params.plasticity_eta) if params.plasticity else None
        self.comprehension = ComprehensionModule(channel, h, e, params.cell, plastic)
        self.readout = nn.Linear(h, game.n_attributes * game.n_values)
        freeze(self, params.lesions)
        # The hook the learning rules look for (None: they speak as without it).
        self.monitor: SelfMonitor | None = None
        if params.self_monitor != "off" and "cut_monitor" not in params.lesions:
            select = params.self_monitor == "select"
            self.monitor = SelfMonitor(
                samples=params.monitor_samples if select else 1,
                weight=0.0 if select else params.monitor_weight,
            )

    @classmethod
    def stacked(cls, models: list[NeuroAIAgent], owners: list[int]) -> GroupedNeuroAI | None:
        """These agents as one model over groups of rows (group g: ``models[owners[g]]``), or
        None when they cannot be stacked: different parameters, or a self-monitor (its
        auxiliary loss compares a speaker's messages across the whole batch, so stacking
        other agents' rows into that batch would change it)."""
        first = models[0]
        if any(type(m) is not cls or m.params != first.params for m in models):
            return None
        if first.monitor is not None:
            return None
        return GroupedNeuroAI(first.params, first.game, stacked_weights(models, owners), len(owners))

    def parameters_by_name(self) -> dict[str, nn.Parameter]:
        """``dict(self.named_parameters())``, kept between calls: the module walk costs more
        than the stacking it feeds (agents/grouped.py). Moving the model or loading a state
        dict drops it, since either may replace Parameter objects."""
        named = self.__dict__.get("_by_name")
        if named is None:
            named = self.__dict__["_by_name"] = dict(self.named_parameters())
        return named

    def _apply(self, fn: Any, recurse: bool = True) -> NeuroAIAgent:
        self.__dict__.pop("_by_name", None)
        return super()._apply(fn, recurse)

    def load_state_dict(self, *args: Any, **kwargs: Any) -> Any:
        self.__dict__.pop("_by_name", None)
        return super().load_state_dict(*args, **kwargs)

    def _one(self) -> GroupedNeuroAI:
        return GroupedNeuroAI(self.params, self.game, one_group(self), 1, self.monitor)

    def perceive(self, obs: Tensor) -> Tensor:
        return self._one().perceive(obs)

    def production_start(self, meaning: Tensor) -> Any:
        return self._one().production_start(meaning)

    def production_step(self, symbol: Tensor | None, state: Any) -> tuple[Tensor, Any]:
        return self._one().production_step(symbol, state)

    def comprehend(self, message: Tensor) -> Tensor:
        return self._one().comprehend(message)

    def reconstruct(self, meaning: Tensor) -> Tensor:
        return self._one().reconstruct(meaning)
