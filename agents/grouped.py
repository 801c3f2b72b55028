"""The ``neuroai-rnn`` computation, written once, over groups of rows.

Rows of every input come in ``groups`` groups of equal size (one group per directed edge);
group ``g`` uses weights ``w[name][g]``. One agent is the case of one group (its parameters with
a leading dimension of 1), many agents are stacked (each group's agent's parameters stacked in
group order with ``torch.stack``), so the per-agent and the batched paths run these same
functions and there is nothing to keep in sync. Gradients flow back into every agent's own
parameters, and each agent keeps its own optimiser. ``torch.func.vmap`` cannot do this for GRUs
(no batching rule for ``aten::gru``), so the recurrent cells are written out with ``baddbmm``.

Parameter names are those of :class:`neurocomm.agents.neuroai.NeuroAIAgent`'s modules (which
hold the parameters and keep checkpoints loadable); tests/test_model_equivalence.py checks these
functions against torch's own ``nn.Linear``/``nn.ReLU``/``nn.GRUCell``/``nn.GRU``/``nn.LSTM``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from neurocomm.platform.interfaces import GameSpec, check_row_groups

Weights = Mapping[str, Tensor]


class GroupWeights(dict[str, Tensor]):
    """The weights of ``groups`` groups, made on first use from per-model parameter mappings:
    group ``g`` gets ``named[owners[g]]``'s (one ``torch.stack`` per parameter), or, with
    ``owners`` None, the single model ``named[0]``'s with a leading dimension of 1.

    A role reads about half of an agent's parameters (a speaker never its comprehension, a
    referential listener never its production), so only those are stacked, each once per
    phase however many times it is read. Weights made while gradients are off (evaluation, a
    self-monitor's choice) are kept apart: a later read with gradients on makes its own, through
    which the gradient reaches the parameters."""

    def __init__(self, named: Sequence[Mapping[str, Tensor]], owners: Sequence[int] | None) -> None:
        super().__init__()
        self._named = named
        self._owners = owners
        self._untracked: dict[str, Tensor] = {}

    def _make(self, name: str) -> Tensor:
        if self._owners is None:
            return self._named[0][name].unsqueeze(0)
        return torch.stack([self._named[o][name] for o in self._owners])

    def __missing__(self, name: str) -> Tensor:
        if torch.is_grad_enabled():
            weight = self[name] = self._make(name)
            return weight
        weight = self._untracked.get(name)
        if weight is None:
            weight = self._untracked[name] = self._make(name)
        return weight


def parameter_dict(module: nn.Module) -> Mapping[str, Tensor]:
    """``module``'s parameters by name: its own cached mapping when it keeps one
    (``parameters_by_name``, as NeuroAIAgent does), else a fresh walk of its modules."""
    by_name = getattr(module, "parameters_by_name", None)
    return by_name() if by_name is not None else dict(module.named_parameters())


def one_group(module: nn.Module, prefix: str = "") -> GroupWeights:
    """``module``'s parameters as the weights of a single group (a leading dimension of 1)."""
    named = parameter_dict(module)
    return GroupWeights([{f"{prefix}{k}": p for k, p in named.items()} if prefix else named], None)


def stacked_weights(models: Sequence[nn.Module], owners: Sequence[int]) -> GroupWeights:
    """Group ``g`` gets ``models[owners[g]]``'s parameters (stacked, so gradients reach each)."""
    # One stack per parameter in group order, an agent repeated where it owns several groups:
    # 2-3x faster, forward and backward, than stacking each agent once and then gathering the
    # groups with an index (measured at 2 and 16 agents; docs/performance.md).
    return GroupWeights([parameter_dict(m) for m in models], owners)


def linear(x: Tensor, weight: Tensor, bias: Tensor | None, groups: int) -> Tensor:
    """Per-group ``x @ weight.T + bias``: x (G*B, ..., in), weight (G, out, in), bias (G, out)."""
    lead = x.shape[:-1]
    flat = x.reshape(groups, -1, x.shape[-1])
    if bias is None:
        out = torch.bmm(flat, weight.transpose(1, 2))
    else:
        out = torch.baddbmm(bias.unsqueeze(1), flat, weight.transpose(1, 2))
    return out.reshape(*lead, weight.shape[1])


def conv2d(x: Tensor, weight: Tensor, bias: Tensor, groups: int, stride: int, padding: int) -> Tensor:
    """Per-group 2-d convolution: x (G*N, c, h, w), weight (G, out, c, k, k), bias (G, out).
    The groups become channel groups of one ``conv2d(groups=G)`` call, each seeing only its own
    rows' channels and its own weights."""
    _, c, h, w = x.shape
    n = x.shape[0] // groups
    stacked = x.reshape(groups, n, c, h, w).transpose(0, 1).reshape(n, groups * c, h, w)
    out = torch.nn.functional.conv2d(stacked, weight.reshape(-1, *weight.shape[2:]), bias.reshape(-1),
                                     stride, padding, groups=groups)
    _, _, oh, ow = out.shape
    return out.view(n, groups, -1, oh, ow).transpose(0, 1).reshape(groups * n, -1, oh, ow)


def recurrent_cell(kind: str, x: Tensor, state: Any, w: Weights, prefix: str, suffix: str,
                   groups: int) -> Any:
    """One step of a GRU (state ``h``) or LSTM (state ``(h, c)``) cell, torch's equations and
    gate order, with weights ``{prefix}.weight_ih{suffix}`` etc."""
    w_ih, w_hh = w[f"{prefix}.weight_ih{suffix}"], w[f"{prefix}.weight_hh{suffix}"]
    b_ih, b_hh = w[f"{prefix}.bias_ih{suffix}"], w[f"{prefix}.bias_hh{suffix}"]
    if kind == "gru":
        h = state
        gi = linear(x, w_ih, b_ih, groups)
        gh = linear(h, w_hh, b_hh, groups)
        i_r, i_z, i_n = gi.chunk(3, -1)
        h_r, h_z, h_n = gh.chunk(3, -1)
        r = torch.sigmoid(i_r + h_r)
        z = torch.sigmoid(i_z + h_z)
        n = torch.tanh(i_n + r * h_n)
        return (1 - z) * n + z * h
    h, c = state
    gates = linear(x, w_ih, b_ih, groups) + linear(h, w_hh, b_hh, groups)
    i, f, g, o = gates.chunk(4, -1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def plastic_rnn(x: Tensor, w: Weights, prefix: str, groups: int) -> tuple[Tensor, Tensor]:
    """The plastic tanh RNN of agents/plasticity.py (formula there): (B, L, in) →
    ((B, L, hidden) states, (B, L, hidden, hidden) Hebb after each step)."""
    b, steps, _ = x.shape
    alpha = w[f"{prefix}.alpha"]  # (G, H, H)
    hidden = alpha.shape[-1]
    eta = torch.sigmoid(w[f"{prefix}.eta_logit"]).repeat_interleave(b // groups).view(b, 1, 1)
    drive = linear(x, w[f"{prefix}.weight_ih"], w[f"{prefix}.bias_ih"], groups)
    h = x.new_zeros(b, hidden)
    hebb = x.new_zeros(b, hidden, hidden)
    states, traces = [], []
    for t in range(steps):
        plastic = (alpha.unsqueeze(1) * hebb.view(groups, -1, hidden, hidden)).view(b, hidden, hidden)
        fast = torch.bmm(h.unsqueeze(1), plastic).squeeze(1)
        new_h = torch.tanh(drive[:, t] + (linear(h, w[f"{prefix}.weight_hh"], w[f"{prefix}.bias_hh"],
                                                 groups) + fast))
        hebb = (1 - eta) * hebb + eta * torch.bmm(h.unsqueeze(2), new_h.unsqueeze(1))
        h = new_h
        states.append(h)
        traces.append(hebb)
    return torch.stack(states, 1), torch.stack(traces, 1)


class GroupedNeuroAI:
    """The AgentModel interface of ``neuroai-rnn`` over ``groups`` groups of rows.

    ``NeuroAIAgent`` computes through this class with one group; ``NeuroAIAgent.stacked`` gives
    one over many agents. ``monitor`` is the self-monitor hook the learning rules look for.
    """

    def __init__(self, params: Any, game: GameSpec, weights: Weights, groups: int,
                 monitor: Any = None) -> None:
        self.params = params
        self.game = game
        self.hidden_size = params.hidden_size
        self.cell = params.cell
        self.groups = groups
        self.w = weights
        self.n_perception = len(params.perception_layers) + 1
        self.monitor = monitor

    def _lin(self, x: Tensor, prefix: str, bias: bool = True) -> Tensor:
        check_row_groups(x.shape[0], self.groups)
        return linear(x, self.w[f"{prefix}.weight"], self.w[f"{prefix}.bias"] if bias else None,
                      self.groups)

    def _above_first_layer(self, x: Tensor) -> Tensor:
        for i in range(1, self.n_perception):
            x = self._lin(torch.relu(x), f"perception.net.{2 * i}")
        return x

    def _convolved(self, obs: Tensor) -> Tensor:
        """(..., obs_dim) images → (..., features) after the conv front (``perception.conv``)."""
        front = self.params.perception
        check_row_groups(obs.shape[0], self.groups)
        x = obs.reshape(-1, *self.game.image_shape)
        for i in range(len(front.channels)):
            x = torch.relu(conv2d(x, self.w[f"perception.conv.{2 * i}.weight"],
                                  self.w[f"perception.conv.{2 * i}.bias"], self.groups, front.stride,
                                  front.kernel // 2))
        return x.reshape(*obs.shape[:-1], -1)

    def perceive(self, obs: Tensor) -> Tensor:
        if self.params.perception.kind == "conv":
            obs = self._convolved(obs)
        # Top-down feedback: the top layer's output is fed back through a learned projection into
        # the first layer's input and the stack above it is run again; the bottom-up drive stays.
        bottom_up = self._lin(obs, "perception.net.0")
        top = self._above_first_layer(bottom_up)
        for _ in range(self.params.topdown_iterations):
            feedback = linear(top, self.w["perception.feedback_weight"],
                              self.w["perception.feedback_bias"], self.groups)
            top = self._above_first_layer(bottom_up + feedback)
        return top

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
        state = recurrent_cell(self.cell, inp, state, self.w, "production.cell", "", self.groups)
        h = state if self.cell == "gru" else state[0]
        return self._lin(h, "production.to_logits"), state

    def comprehend(self, message: Tensor) -> Tensor:
        x = self._lin(message, "comprehension.symbol_embedding", bias=False)
        if self.params.plasticity:
            states, _ = plastic_rnn(x, self.w, "comprehension.rnn", self.groups)
            return self._lin(states, "comprehension.to_meaning")
        h = x.new_zeros(x.shape[0], self.hidden_size)
        state: Any = h if self.cell == "gru" else (h, h.clone())
        outs = []
        for t in range(x.shape[1]):
            state = recurrent_cell(self.cell, x[:, t], state, self.w, "comprehension.rnn", "_l0",
                                   self.groups)
            outs.append(state if self.cell == "gru" else state[0])
        return self._lin(torch.stack(outs, 1), "comprehension.to_meaning")

    def reconstruct(self, meaning: Tensor) -> Tensor:
        logits = self._lin(meaning, "readout")
        return logits.view(*meaning.shape[:-1], self.game.n_attributes, self.game.n_values)
