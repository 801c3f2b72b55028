"""The conformance kit (platform/checks.py): every shipped plug-in passes it, and it catches
plug-ins that break a contract (real broken plug-ins, played through the real checks)."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
import torch

from neurocomm.agents.neuroai import NeuroAIAgent
from neurocomm.agents.rules import GumbelSoftmax
from neurocomm.platform import checks, registry
from neurocomm.platform.checks import CheckFailed
from neurocomm.platform.cli import main
from neurocomm.platform.interfaces import Batch
from neurocomm.scenarios.referential import ReferentialGame

REGISTERED = [(group, name) for group in checks.CHECKS for name in registry.names(group)]


@pytest.mark.parametrize(("group", "name"), REGISTERED, ids=[f"{g}:{n}" for g, n in REGISTERED])
def test_every_registered_plugin_conforms(group: str, name: str) -> None:
    results = checks.check(name)
    assert group in [g for g, _ in results]
    assert all(played for _, played in results)


def test_cli_check_passes_names_and_refuses_unknown_ones(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "gumbel"]) == 0
    assert "gumbel: conforms as one of the rules" in capsys.readouterr().out
    assert main(["check", "no-such-plugin"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "unknown name 'no-such-plugin'" in err and "neuroai-rnn" in err
    assert main(["check", "tests.test_checks:Unrelated"]) == 1
    assert "is no agent model" in capsys.readouterr().err


class Unrelated:
    pass


# ---------------------------------------------------------------------------- broken plug-ins


class StackedWrongOwners(NeuroAIAgent):
    """Stacks its agents with the owners reversed: every group gets another agent's weights."""

    @classmethod
    def stacked(cls, models: list[NeuroAIAgent], owners: list[int]) -> Any:
        return super().stacked(models, [len(models) - 1 - o for o in owners])


class DeadParameter(NeuroAIAgent):
    """A parameter that nothing reads: it can never learn."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.unused = torch.nn.Parameter(torch.zeros(3))


class UnhashableParams(NeuroAIAgent):
    """Params with a list field: agents with equal params could not be found together."""

    @dataclasses.dataclass(frozen=True)
    class Params(NeuroAIAgent.Params):
        notes: list[str] = dataclasses.field(default_factory=list)


class GlobalRandomGame(ReferentialGame):
    """Samples from numpy's global generator instead of the one it is given."""

    def sample(self, rng: np.random.Generator, batch_size: int, split: str = "train") -> Batch:
        return super().sample(np.random.default_rng(np.random.randint(1 << 30)), batch_size, split)


class TupleListener(GumbelSoftmax):
    """Returns the listen result as a bare tuple, as the rules once did."""

    def listen(self, *args: Any, **kwargs: Any) -> Any:
        heard = super().listen(*args, **kwargs)
        return heard.losses, heard.feedback, heard.decision, heard.lengths


@pytest.mark.parametrize(("run", "broken", "message"), [
    (checks.check_agent_model, StackedWrongOwners, "grouping"),
    (checks.check_agent_model, DeadParameter, "gradient flow: no scenario or rule trains unused"),
    (checks.check_agent_model, UnhashableParams, "params: Params must be hashable"),
    (checks.check_scenario, GlobalRandomGame, "determinism"),
    (checks.check_rule, TupleListener, "listen: must return an interfaces.Heard"),
], ids=["wrong-stacking", "dead-parameter", "unhashable-params", "global-random", "tuple-listen"])
def test_kit_catches_a_broken_plugin(run: Any, broken: type, message: str) -> None:
    with pytest.raises(CheckFailed, match=message):
        run(broken)
