"""A noisy channel between a speaker and a listener: symbol substitution and deletion.

Applied on the listener's side with a random stream keyed by (round, speaker, listener), so
both backends corrupt the same symbols. End-of-message symbols are never corrupted; a deleted
symbol closes the gap and the message is padded with end-of-message. Works on token messages
(B, L) and on one-hot or relaxed messages (B, L, V); for the latter, ``backmap`` routes a
gradient with respect to the received message to the symbols that were sent.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from neurocomm.platform.interfaces import EOS


@dataclass
class Corruption:
    """Where each received position came from (-1: padding) and which were substituted."""

    source: np.ndarray  # (B, L) int
    substituted: np.ndarray  # (B, L) bool
    replacement: np.ndarray  # (B, L) int, the symbol written where substituted


def plan_corruption(tokens: np.ndarray, vocab_size: int, substitution: float, deletion: float,
                    rng: np.random.Generator) -> Corruption:
    b, length = tokens.shape
    ends = np.where((tokens == EOS).any(1), (tokens == EOS).argmax(1), length)  # first EOS or L
    positions = np.arange(length)[None, :]
    content = positions < ends[:, None]
    deleted = content & (rng.random((b, length)) < deletion)
    source = np.full((b, length), -1, dtype=np.int64)
    for row in range(b):
        kept = np.flatnonzero(~deleted[row])
        source[row, : len(kept)] = kept
    src_content = np.take_along_axis(content, np.clip(source, 0, None), 1) & (source >= 0)
    substituted = src_content & (rng.random((b, length)) < substitution)
    # a substitute is a different non-EOS symbol: draw from 1..V-1, skipping the original
    original = np.take_along_axis(tokens, np.clip(source, 0, None), 1)
    draw = rng.integers(1, max(vocab_size - 1, 2), size=(b, length))
    replacement = np.where(draw >= original, draw + 1, draw) if vocab_size > 2 else np.ones_like(draw)
    return Corruption(source, substituted, np.clip(replacement, 1, vocab_size - 1))


def transmit(wire: Tensor, vocab_size: int, substitution: float, deletion: float,
             rng: np.random.Generator) -> tuple[Tensor, Corruption | None]:
    """The message as received, and how it was corrupted (None when the channel is clean)."""
    if substitution <= 0 and deletion <= 0:
        return wire, None
    tokens = (wire.argmax(-1) if wire.is_floating_point() else wire).cpu().numpy()
    plan = plan_corruption(tokens, vocab_size, substitution, deletion, rng)
    src = torch.from_numpy(np.clip(plan.source, 0, None))
    pad = torch.from_numpy(plan.source < 0)
    sub = torch.from_numpy(plan.substituted)
    rep = torch.from_numpy(plan.replacement)
    if wire.is_floating_point():
        moved = wire.gather(1, src.unsqueeze(-1).expand(-1, -1, wire.shape[-1]))
        eos = torch.zeros_like(moved)
        eos[..., EOS] = 1.0
        moved = torch.where(pad.unsqueeze(-1), eos, moved)
        onehot = torch.nn.functional.one_hot(rep, vocab_size).to(wire.dtype)
        return torch.where(sub.unsqueeze(-1), onehot, moved), plan
    moved = wire.gather(1, src)
    moved = torch.where(pad, torch.full_like(moved, EOS), moved)
    return torch.where(sub, rep, moved), plan


def backmap(grad: Tensor, plan: Corruption) -> Tensor:
    """A gradient w.r.t. the received (B, L, V) message, mapped to the sent message."""
    live = torch.from_numpy((plan.source >= 0) & ~plan.substituted).unsqueeze(-1)
    out = torch.zeros_like(grad)
    src = torch.from_numpy(np.clip(plan.source, 0, None)).unsqueeze(-1).expand_as(grad)
    return out.scatter_add(1, src, torch.where(live, grad, torch.zeros_like(grad)))
