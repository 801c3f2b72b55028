"""Lesions for ablations: freeze a module (it keeps its initial weights) or cut a pathway.

A frozen module still computes (a speaker with frozen production still speaks, with its initial
weights) and gradients still pass *through* it to whatever feeds it; only its own parameters get
no gradient, so an optimiser leaves them bit-identical.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from torch import nn

Lesion = Literal["freeze_perception", "freeze_production", "freeze_comprehension", "cut_monitor"]

# The submodules each freeze covers. The readout decodes a listener's meaning into attributes,
# so it counts as comprehension; the top-down projection lives inside perception.
FROZEN_MODULES: dict[str, tuple[str, ...]] = {
    "freeze_perception": ("perception",),
    "freeze_production": ("production",),
    "freeze_comprehension": ("comprehension", "readout"),
}


def freeze(model: nn.Module, lesions: Iterable[str]) -> None:
    """Stop gradient to the parameters of every module that ``lesions`` freezes."""
    for lesion in lesions:
        for name in FROZEN_MODULES.get(lesion, ()):
            getattr(model, name).requires_grad_(False)
