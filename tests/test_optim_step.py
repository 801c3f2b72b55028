"""One optimiser step for a shard's agents (platform/optim_step.py) is exactly the step each
agent's optimiser takes alone: weights and optimiser state equal bit for bit (``torch.equal``),
whatever mix of optimisers, hyper-parameters, skipped steps and missing gradients."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from neurocomm.platform import optim_step
from neurocomm.platform.backends import LocalBackend
from neurocomm.platform.config import build_config
from tests.conftest import tiny_config


def one_by_one(optimizers: Sequence[torch.optim.Optimizer], stepping: Sequence[bool]) -> None:
    """What a shard did before: each optimiser's own step, then its zero_grad."""
    for optimizer, steps in zip(optimizers, stepping, strict=True):
        if steps:
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)


def assert_same_state(a: torch.optim.Optimizer, b: torch.optim.Optimizer) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa["param_groups"] == sb["param_groups"]
    assert sa["state"].keys() == sb["state"].keys()
    for i, state in sa["state"].items():
        assert state.keys() == sb["state"][i].keys()
        for k, v in state.items():
            assert torch.equal(v, sb["state"][i][k]), (i, k)
            assert v.dtype == sb["state"][i][k].dtype


def assert_same_params(a: nn.Module, b: nn.Module) -> None:
    for (name, pa), pb in zip(a.named_parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb), name


# (optimiser factory, which parameters get no gradient this step)
KINDS: list[Any] = [
    lambda ps: torch.optim.Adam(ps, lr=0.003, fused=True),
    lambda ps: torch.optim.Adam(ps, lr=0.003, fused=True),  # same as the first: one call
    lambda ps: torch.optim.Adam(ps, lr=0.01, fused=True),  # another lr: a call of its own
    lambda ps: torch.optim.Adam(ps, lr=0.003, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1,
                                fused=True),
    lambda ps: torch.optim.Adam(ps, lr=0.003, maximize=True, fused=True),
    lambda ps: torch.optim.Adam(ps, lr=0.003, weight_decay=0.1, decoupled_weight_decay=True,
                                fused=True),
    lambda ps: torch.optim.Adam(ps, lr=0.003, amsgrad=True, fused=True),  # steps alone
    lambda ps: torch.optim.Adam(ps, lr=0.003, foreach=False),  # the per-tensor loop: alone
    lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9),  # alone
]


def models(seed: int) -> list[nn.Module]:
    torch.manual_seed(seed)
    return [nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3)) for _ in KINDS]


def backward(ms: list[nn.Module], step: int) -> None:
    gen = torch.Generator().manual_seed(step)
    for i, m in enumerate(ms):
        if (i + step) % 4 == 0:
            continue  # no gradient at all this step
        x = torch.randn(11, 5, generator=gen)
        if (i + step) % 3 == 0:  # the first layer only gets a gradient
            m[0](x).pow(2).mean().backward()
        else:
            m(x).pow(2).mean().backward()


def test_shared_step_equals_each_optimisers_own_step_exactly() -> None:
    together, alone = models(0), models(0)
    opt_t = [kind(list(m.parameters())) for kind, m in zip(KINDS, together)]
    opt_a = [kind(list(m.parameters())) for kind, m in zip(KINDS, alone)]
    for step in range(8):
        backward(together, step)
        backward(alone, step)
        stepping = [(i * 3 + step) % 5 != 0 for i in range(len(KINDS))]  # some skip a step
        optim_step.step_all(opt_t, stepping)
        one_by_one(opt_a, stepping)
        assert all(p.grad is None for m in together for p in m.parameters())
        for mt, ma, ot, oa in zip(together, alone, opt_t, opt_a):
            assert_same_params(mt, ma)
            assert_same_state(ot, oa)
    moved = [not torch.equal(p, q) for m, s in zip(together, models(0))
             for p, q in zip(m.parameters(), s.parameters())]
    assert all(moved)  # every tensor did train


def test_fused_adams_of_equal_hyper_parameters_take_one_call(monkeypatch: pytest.MonkeyPatch) -> None:
    ms = models(1)
    opts = [KINDS[0](list(m.parameters())) for m in ms[:3]] + [KINDS[2](list(ms[3].parameters()))]
    calls: list[int] = []
    real = torch._fused_adam_

    def counted(params: list[torch.Tensor], *args: Any, **kwargs: Any) -> Any:
        calls.append(len(params))
        return real(params, *args, **kwargs)

    monkeypatch.setattr(torch, "_fused_adam_", counted)
    for step in range(3):
        for m in ms[:4]:
            m(torch.ones(2, 5)).sum().backward()
        optim_step.step_all(opts, [True] * 4)
        # the first step initialises the state through each optimiser's own step()
        assert calls == ([4] * 4 if step == 0 else [4 * 3, 4])  # the three lr 0.003 agents; lr 0.01
        calls.clear()


# ------------------------------------------------------------------ a shard's real rounds

EDGES = [(s, t) for s in range(4) for t in range(4) if s != t]


def population(tmp_path: Path, optimizer: str) -> Any:
    return build_config(tiny_config(
        tmp_path, topology={"generator": "complete_graph", "params": {"n": 4}},
        population={
            "vocab_size": 6, "max_len": 2,
            "agent": {"lr": 0.005, "params": {"hidden_size": 16, "embed_size": 8,
                                               "perception_layers": [16]}},
            "groups": [{"nodes": [1], "lr": 0.02},  # its own lr
                       {"nodes": [2], "update_prob": 0.5},  # skips some rounds
                       {"nodes": [3], "params": {"lesions": ["freeze_production"]}}],  # no grads there
            "turnover": {"modules": ["comprehension"]},
        },
        training={"rule": "gumbel", "rounds": 12, "batch_size": 8, "optimizer": optimizer}))


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_rounds_with_the_shared_step_equal_rounds_stepping_each_agent(
    optimizer: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    cfg = population(tmp_path, optimizer)
    shared, each = LocalBackend(cfg, 4), LocalBackend(cfg, 4)
    for r in range(8):
        if r == 4:  # a partial turnover drops the comprehension's Adam state of agent 0
            shared.replace_agents({0: 1})
            each.replace_agents({0: 1})
        shared.submit_round(r, EDGES)
        with monkeypatch.context() as patch:
            patch.setattr(optim_step, "step_all", one_by_one)
            each.submit_round(r, EDGES)
    for i in range(4):
        a, b = shared.shard.agents[i], each.shard.agents[i]
        assert_same_params(a.model, b.model)
        assert_same_state(a.optimizer, b.optimizer)
    if optimizer == "adam":  # agent 2 did skip some rounds
        steps = {float(s["step"]) for s in shared.shard.agents[2].optimizer.state.values()}
        assert len(steps) == 1 and 0 < steps.pop() < 8
