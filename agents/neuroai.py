"""``neuroai-rnn``: a layered perception stack, a Broca-like production module and a
Wernicke-like comprehension module, both recurrent.

Speaking: perceive(object) → meaning → ProductionModule emits symbols one at a time.
Listening: ComprehensionModule reads the message → meaning after each symbol; the scenario
compares it with perceived candidates (referential) or decodes attributes (reconstruction).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
from neurocomm.platform.interfaces import ChannelSpec, GameSpec
from torch import Tensor, nn


class PerceptionStack(nn.Module):
    """Observation → meaning through a few fully connected layers."""

    def __init__(self, obs_dim: int, layers: tuple[int, ...], out_dim: int) -> None:
        super().__init__()
        sizes = [obs_dim, *layers]
        blocks: list[nn.Module] = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            blocks += [nn.Linear(a, b), nn.ReLU()]
        blocks.append(nn.Linear(sizes[-1], out_dim))
        self.net = nn.Sequential(*blocks)

    def forward(self, obs: Tensor) -> Tensor:
        return self.net(obs)


def _cell(kind: str, input_size: int, hidden_size: int) -> nn.Module:
    return nn.GRUCell(input_size, hidden_size) if kind == "gru" else nn.LSTMCell(input_size, hidden_size)


class ProductionModule(nn.Module):
    """Meaning → message, one symbol per step (a recurrent decoder)."""

    def __init__(self, channel: ChannelSpec, hidden_size: int, embed_size: int, cell: str) -> None:
        super().__init__()
        self.cell_kind = cell
        self.symbol_embedding = nn.Linear(channel.vocab_size, embed_size, bias=False)
        self.start = nn.Parameter(torch.zeros(embed_size))
        self.cell = _cell(cell, embed_size, hidden_size)
        self.to_logits = nn.Linear(hidden_size, channel.vocab_size)

    def begin(self, meaning: Tensor) -> Any:
        return meaning if self.cell_kind == "gru" else (meaning, torch.zeros_like(meaning))

    def step(self, symbol: Tensor | None, state: Any) -> tuple[Tensor, Any]:
        h = state if self.cell_kind == "gru" else state[0]
        if symbol is None:
            inp = self.start.expand(h.shape[0], -1)
        else:
            inp = self.symbol_embedding(symbol)
        state = self.cell(inp, state)
        h = state if self.cell_kind == "gru" else state[0]
        return self.to_logits(h), state


class ComprehensionModule(nn.Module):
    """Message → meaning after each symbol (a recurrent encoder)."""

    def __init__(self, channel: ChannelSpec, hidden_size: int, embed_size: int, cell: str) -> None:
        super().__init__()
        self.symbol_embedding = nn.Linear(channel.vocab_size, embed_size, bias=False)
        rnn = nn.GRU if cell == "gru" else nn.LSTM
        self.rnn = rnn(embed_size, hidden_size, batch_first=True)
        self.to_meaning = nn.Linear(hidden_size, hidden_size)

    def forward(self, message: Tensor) -> Tensor:
        states, _ = self.rnn(self.symbol_embedding(message))
        return self.to_meaning(states)


class NeuroAIAgent(nn.Module):
    """Every agent both speaks and listens; all parameters are trained by one optimiser."""

    @dataclass(frozen=True)
    class Params:
        hidden_size: int = 64
        embed_size: int = 32
        cell: Literal["gru", "lstm"] = "gru"
        perception_layers: tuple[int, ...] = (64,)

        def check(self) -> None:
            if self.hidden_size < 1 or self.embed_size < 1:
                raise ValueError("hidden_size: sizes must be >= 1")
            if any(n < 1 for n in self.perception_layers):
                raise ValueError("perception_layers: sizes must be >= 1")

    def __init__(self, params: NeuroAIAgent.Params, *, game: GameSpec, channel: ChannelSpec) -> None:
        super().__init__()
        self.params = params
        self.hidden_size = params.hidden_size
        self.game = game
        h, e = params.hidden_size, params.embed_size
        self.perception = PerceptionStack(game.obs_dim, params.perception_layers, h)
        self.production = ProductionModule(channel, h, e, params.cell)
        self.comprehension = ComprehensionModule(channel, h, e, params.cell)
        self.readout = nn.Linear(h, game.n_attributes * game.n_values)

    def perceive(self, obs: Tensor) -> Tensor:
        return self.perception(obs)

    def production_start(self, meaning: Tensor) -> Any:
        return self.production.begin(meaning)

    def production_step(self, symbol: Tensor | None, state: Any) -> tuple[Tensor, Any]:
        return self.production.step(symbol, state)

    def comprehend(self, message: Tensor) -> Tensor:
        return self.comprehension(message)

    def reconstruct(self, meaning: Tensor) -> Tensor:
        logits = self.readout(meaning)
        return logits.view(*meaning.shape[:-1], self.game.n_attributes, self.game.n_values)
