"""Plug-ins that fail on purpose, for the sweep and validation tests (named by import path)."""

from __future__ import annotations

from typing import Any

import torch

from neurocomm.agents.neuroai import NeuroAIAgent


class BrokenAgent(NeuroAIAgent):
    """Validates like the shipped model, then fails to build when a run starts."""

    Params = NeuroAIAgent.Params

    def __init__(self, params: Any, *, game: Any, channel: Any) -> None:
        super().__init__(params, game=game, channel=channel)
        raise RuntimeError("deliberate failure of this point")


class HugeBufferAgent(NeuroAIAgent):
    """Asks torch for more memory than any machine has once built for real (on the meta
    device used by the estimate the request is placed on the CPU explicitly, so the estimate
    cannot size it): a real allocation failure at run start."""

    Params = NeuroAIAgent.Params

    def __init__(self, params: Any, *, game: Any, channel: Any) -> None:
        super().__init__(params, game=game, channel=channel)
        self.register_buffer("scratch", torch.empty(2**46, device="cpu"))
