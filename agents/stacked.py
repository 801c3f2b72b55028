"""Many ``neuroai-rnn`` agents computed as one model: grouped batched matmuls, no Python loop
over agents.

Rows of every input come in groups of ``rows_per_group`` (one group per directed edge); group
``g`` uses the weights of agent ``owners[g]``. Each agent's parameters are gathered per group
(``torch.stack`` then index), so gradients flow back into every agent's own parameters and
each agent keeps its own optimiser. ``torch.func.vmap`` cannot do this for GRUs (no batching
rule for ``aten::gru``), so the recurrent cells are written out with ``baddbmm``.

Only the plain architecture is stacked; agents with NeuroAI mechanisms switched on (plastic
comprehension, top-down perception) are computed one by one by the platform.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from neurocomm.agents.neuroai import NeuroAIAgent


def _plain_names(cell: str, n_perception: int) -> set[str]:
    names = {"production.symbol_embedding.weight", "production.start",
             "production.to_logits.weight", "production.to_logits.bias",
             "comprehension.symbol_embedding.weight", "comprehension.to_meaning.weight",
             "comprehension.to_meaning.bias", "readout.weight", "readout.bias"}
    names |= {f"production.cell.{w}" for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
    names |= {f"comprehension.rnn.{w}_l0" for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
    for i in range(n_perception):
        names |= {f"perception.net.{2 * i}.weight", f"perception.net.{2 * i}.bias"}
    return names


def can_stack(models: Sequence[Any]) -> bool:
    """Whether these agents share one plain neuroai-rnn architecture (and can be stacked)."""
    if not models or not all(type(m) is NeuroAIAgent for m in models):
        return False
    first = models[0]
    if any(m.params != first.params for m in models):
        return False
    if getattr(first, "monitor", None) is not None:
        return False
    n_layers = len(first.params.perception_layers) + 1
    names = {n for n, _ in first.named_parameters()}
    return names == _plain_names(first.params.cell, n_layers)


def _linear(x: Tensor, weight: Tensor, bias: Tensor | None, groups: int) -> Tensor:
    """Per-group ``x @ weight.T + bias``: x (G*B, ..., in), weight (G, out, in)."""
    lead = x.shape[:-1]
    flat = x.reshape(groups, -1, x.shape[-1])
    if bias is None:
        out = torch.bmm(flat, weight.transpose(1, 2))
    else:
        out = torch.baddbmm(bias.unsqueeze(1), flat, weight.transpose(1, 2))
    return out.reshape(*lead, weight.shape[1])


class StackedNeuroAI:
    """The AgentModel interface over groups of rows, each group with one agent's weights."""

    def __init__(self, models: Sequence[NeuroAIAgent], owners: Sequence[int]) -> None:
        first = models[0]
        self.params = first.params
        self.game = first.game
        self.hidden_size = first.hidden_size
        self.cell = first.params.cell
        self.groups = len(owners)
        index = torch.as_tensor(list(owners), dtype=torch.long)
        named = [dict(m.named_parameters()) for m in models]
        device = next(iter(named[0].values())).device
        self.w = {name: torch.stack([p[name] for p in named])[index.to(device)] for name in named[0]}
        self.n_perception = len(first.params.perception_layers) + 1
        self.monitor = None  # stacked agents never self-monitor (can_stack refuses them)

    def _lin(self, x: Tensor, prefix: str, bias: bool = True) -> Tensor:
        return _linear(x, self.w[f"{prefix}.weight"], self.w[f"{prefix}.bias"] if bias else None,
                       self.groups)

    def perceive(self, obs: Tensor) -> Tensor:
        x = obs
        for i in range(self.n_perception):
            x = self._lin(x, f"perception.net.{2 * i}")
            if i < self.n_perception - 1:
                x = torch.relu(x)
        return x

    def _cell(self, x: Tensor, state: Any, prefix: str, suffix: str = "") -> Any:
        w_ih, w_hh = self.w[f"{prefix}.weight_ih{suffix}"], self.w[f"{prefix}.weight_hh{suffix}"]
        b_ih, b_hh = self.w[f"{prefix}.bias_ih{suffix}"], self.w[f"{prefix}.bias_hh{suffix}"]
        if self.cell == "gru":
            h = state
            gi = _linear(x, w_ih, b_ih, self.groups)
            gh = _linear(h, w_hh, b_hh, self.groups)
            i_r, i_z, i_n = gi.chunk(3, -1)
            h_r, h_z, h_n = gh.chunk(3, -1)
            r = torch.sigmoid(i_r + h_r)
            z = torch.sigmoid(i_z + h_z)
            n = torch.tanh(i_n + r * h_n)
            return (1 - z) * n + z * h
        h, c = state
        gates = _linear(x, w_ih, b_ih, self.groups) + _linear(h, w_hh, b_hh, self.groups)
        i, f, g, o = gates.chunk(4, -1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c

    def production_start(self, meaning: Tensor) -> Any:
        return meaning if self.cell == "gru" else (meaning, torch.zeros_like(meaning))

    def production_step(self, symbol: Tensor | None, state: Any) -> tuple[Tensor, Any]:
        h = state if self.cell == "gru" else state[0]
        if symbol is None:
            rows = h.shape[0] // self.groups
            start = self.w["production.start"]
            inp = start.unsqueeze(1).expand(-1, rows, -1).reshape(h.shape[0], -1)
        else:
            inp = self._lin(symbol, "production.symbol_embedding", bias=False)
        state = self._cell(inp, state, "production.cell")
        h = state if self.cell == "gru" else state[0]
        return self._lin(h, "production.to_logits"), state

    def comprehend(self, message: Tensor) -> Tensor:
        x = self._lin(message, "comprehension.symbol_embedding", bias=False)
        b = x.shape[0]
        h = x.new_zeros(b, self.hidden_size)
        state: Any = h if self.cell == "gru" else (h, h.clone())
        outs = []
        for t in range(x.shape[1]):
            state = self._cell(x[:, t], state, "comprehension.rnn", "_l0")
            outs.append(state if self.cell == "gru" else state[0])
        return self._lin(torch.stack(outs, 1), "comprehension.to_meaning")

    def reconstruct(self, meaning: Tensor) -> Tensor:
        logits = self._lin(meaning, "readout")
        return logits.view(*meaning.shape[:-1], self.game.n_attributes, self.game.n_values)
