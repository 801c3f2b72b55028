"""Partial turnover: a newcomer that inherits some of its predecessor's modules.

Li & Bowling 2019 (*Ease-of-teaching and language structure from emergent communication*)
replace only the listener; ``population.turnover.modules`` says which modules of the chosen
agents are reset (``perception``, ``production``, ``comprehension``, ``readout``). The reset
modules take the weights of a fresh draw of the newcomer's generation (the same draw a
whole-agent turnover would give), the other modules keep their trained weights, and the
optimiser forgets its state (Adam's moments and step count) for the reset parameters only.

A module is a child of the model by that name (``model.comprehension``); a model without one
cannot be reset partially, which is a programming error rather than a config error.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def module_prefixes(model: nn.Module, modules: Sequence[str]) -> tuple[str, ...]:
    """``"name."`` for each module; ValueError when the model has no child of that name."""
    children = dict(model.named_children())
    missing = [m for m in modules if m not in children]
    if missing:
        raise ValueError(f"{type(model).__name__} has no module {missing[0]!r} to reset "
                         f"(its modules: {', '.join(children)})")
    return tuple(f"{m}." for m in modules)


def reset_modules(model: nn.Module, optimizer: torch.optim.Optimizer, fresh: nn.Module,
                  modules: Sequence[str]) -> list[str]:
    """Copy ``modules`` (parameters and buffers) from ``fresh`` into ``model`` in place and drop
    the optimiser state of the copied parameters; → the names of the reset entries."""
    prefixes = module_prefixes(model, modules)
    new_state = fresh.state_dict()
    params = dict(model.named_parameters())
    reset = []
    with torch.no_grad():
        for name, value in model.state_dict(keep_vars=True).items():
            if not name.startswith(prefixes):
                continue
            value.copy_(new_state[name])
            reset.append(name)
            if name in params:
                # the same Parameter object stays in the optimiser's groups; without its
                # state, the next step treats it as never stepped
                optimizer.state.pop(params[name], None)
    return reset
