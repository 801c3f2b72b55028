"""Differentiable plasticity (Miconi, Clune & Stanley 2018): a tanh RNN layer whose recurrent
weights have a Hebbian fast part that is rebuilt within every message.

    h_t      = tanh(x_t W_ih + b_ih + h_{t-1} W_hh + b_hh + h_{t-1} (alpha * Hebb_t))
    Hebb_t+1 = (1 - eta) Hebb_t + eta h_{t-1}^T h_t          (one Hebb per batch element)

``W`` (slow weights), ``alpha`` (how plastic each connection is) and ``eta`` (the Hebbian rate)
are learned by back-propagation through the whole episode (``eta`` through a sigmoid, so it
stays a rate in (0, 1)); ``Hebb`` starts at zero for every message. Matrices are in the
(from, to) orientation of the formula, except the slow weights, which keep ``nn.RNN``'s
(to, from) layout so the two can be compared weight for weight.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class PlasticRNN(nn.Module):
    """The parameters of a plastic layer; ``agents.grouped.plastic_rnn`` computes it:
    (B, L, in) → ((B, L, hidden) states, (B, L, hidden, hidden) Hebb after each step)."""

    def __init__(self, input_size: int, hidden_size: int, alpha: float, eta: float) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.weight_ih = nn.Parameter(torch.empty(hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(hidden_size, hidden_size))
        self.bias_ih = nn.Parameter(torch.empty(hidden_size))
        self.bias_hh = nn.Parameter(torch.empty(hidden_size))
        # nn.RNN's initialisation, so a plastic and a plain layer start from the same distribution.
        bound = 1.0 / math.sqrt(hidden_size)
        for w in (self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh):
            nn.init.uniform_(w, -bound, bound)
        self.alpha = nn.Parameter(torch.full((hidden_size, hidden_size), float(alpha)))
        # eta is a rate in (0, 1), learned through its logit: a clamped raw eta that drifts
        # below 0 gets no gradient and switches plasticity off for good (seen in training).
        self.eta_logit = nn.Parameter(torch.logit(torch.tensor(float(eta), dtype=torch.float64)).float())

    @property
    def eta(self) -> Tensor:
        return torch.sigmoid(self.eta_logit)
