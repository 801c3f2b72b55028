"""A cohort's weights are stacked on first use (agents/grouped.py ``GroupWeights``) and an
agent's parameters by name are kept between phases (``NeuroAIAgent.parameters_by_name``):

* a role stacks only what it reads (a referential speaker never its comprehension), each
  parameter once per phase;
* a weight first read with gradients off (a self-monitor's choice, evaluation) is not the one a
  later read with gradients on gets, so the gradient still reaches the parameters;
* the cached names follow the model when its Parameter objects are replaced (``.to()``,
  ``load_state_dict(assign=True)``), so a stale cache cannot train orphaned tensors.
"""

from __future__ import annotations

import torch

from neurocomm.agents.grouped import GroupWeights, stacked_weights
from neurocomm.agents.neuroai import NeuroAIAgent
from neurocomm.agents.rules import GumbelSoftmax
from neurocomm.platform.interfaces import ChannelSpec, GameSpec
from neurocomm.platform.typed import from_mapping

GAME = GameSpec(obs_dim=9, n_attributes=3, n_values=3)
CHANNEL = ChannelSpec(vocab_size=7, max_len=3)


def agents(n: int) -> list[NeuroAIAgent]:
    params = from_mapping(NeuroAIAgent.Params, {"hidden_size": 12, "embed_size": 6,
                                                "perception_layers": [8]})
    out = []
    for seed in range(n):
        torch.manual_seed(seed)
        out.append(NeuroAIAgent(params, game=GAME, channel=CHANNEL))
    return out


def test_a_speaker_stacks_what_it_reads_once() -> None:
    models = agents(2)
    stacked = NeuroAIAgent.stacked(models, [0, 1, 1])
    assert stacked is not None
    made: list[str] = []
    original = GroupWeights._make

    def counted(self: GroupWeights, name: str) -> torch.Tensor:
        made.append(name)
        return original(self, name)

    GroupWeights._make = counted  # type: ignore[method-assign]
    try:
        utt = GumbelSoftmax().speak(stacked, torch.rand(6, GAME.obs_dim), CHANNEL,
                                    torch.Generator().manual_seed(0))
    finally:
        GroupWeights._make = original  # type: ignore[method-assign]
    assert len(made) == len(set(made))  # each once, though the cell runs max_len steps
    assert {n.split(".")[0] for n in made} == {"perception", "production"}
    want = {n for n, _ in models[0].named_parameters() if n.split(".")[0] in ("perception", "production")}
    assert set(made) == want
    utt.kept.sum().backward()
    for m in models:
        for name, p in m.named_parameters():
            assert (p.grad is not None) == (name in want), name


def test_a_weight_read_without_gradients_is_read_again_with_them() -> None:
    (model,) = agents(1)
    weights = stacked_weights([model], [0, 0])
    with torch.no_grad():
        untracked = weights["readout.weight"]
    assert untracked.grad_fn is None
    tracked = weights["readout.weight"]
    assert tracked.grad_fn is not None and torch.equal(tracked, untracked)
    tracked.sum().backward()
    assert torch.equal(model.readout.weight.grad, torch.full_like(model.readout.weight, 2.0))
    with torch.no_grad():  # once made with gradients, that one serves both
        assert weights["readout.weight"] is tracked


def same_objects(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(a[k] is b[k] for k in a)


def test_cached_parameter_names_follow_replaced_parameters() -> None:
    (model,) = agents(1)
    before = model.parameters_by_name()
    assert before is model.parameters_by_name()  # kept between calls
    assert same_objects(before, dict(model.named_parameters()))
    fresh = {k: torch.nn.Parameter(v.detach().clone() + 1) for k, v in model.state_dict().items()}
    model.load_state_dict(fresh, assign=True)
    after = model.parameters_by_name()
    assert same_objects(after, dict(model.named_parameters()))
    assert after["readout.bias"] is not before["readout.bias"]
    model.to(torch.float64)
    assert all(p.dtype == torch.float64 for p in model.parameters_by_name().values())
    assert same_objects(model.parameters_by_name(), dict(model.named_parameters()))
