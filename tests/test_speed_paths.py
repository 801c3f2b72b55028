"""The faster training paths compute what the plain ones compute (docs/performance.md,
"Faster rounds").

* Adam runs fused, one kernel per agent: a shard's agents end where torch's per-tensor Adam
  with each agent's own learning rate takes them, within float rounding.
* A checkpoint written by a per-tensor Adam (as before the fused one) loads into the fused one
  and keeps running fused, from the same moments and step counts.
* ``training.compile``: compiled rounds compute what eager ones compute; a compiler that fails
  leaves the run eager, with one warning.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import torch

from neurocomm.platform import compiling
from neurocomm.platform.backends import LocalBackend
from neurocomm.platform.config import build_config
from tests.conftest import tiny_config

EDGES = [(0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1)]
LRS = {0: 0.005, 1: 0.02, 2: 0.005}
# float32: the fused kernel rounds differently from the loop by ~5e-8 a step, and training
# feeds that back into the gradients (measured: 3e-6 apart after 8 rounds), so a few rounds
TOLERANCE = 1e-6
ROUNDS = 3


def three_agents(tmp_path: Path, **training: Any) -> Any:
    return build_config(tiny_config(
        tmp_path, topology={"generator": "complete_graph", "params": {"n": 3}},
        population={"vocab_size": 6, "max_len": 2,
                    "agent": {"lr": 0.005, "params": {"hidden_size": 32, "embed_size": 16,
                                                       "perception_layers": [32]}},
                    "groups": [{"name": "fast", "nodes": [1], "lr": 0.02}]},
        training={"rule": "gumbel", "rounds": 10, "batch_size": 16, **training}))


def per_tensor_adam(backend: LocalBackend) -> None:
    """Every agent's optimiser swapped for torch's per-tensor Adam at the configured rate."""
    for agent_id, slot in backend.shard.agents.items():
        slot.optimizer = torch.optim.Adam(slot.model.parameters(), lr=LRS[agent_id], foreach=False)


def train(backend: LocalBackend, rounds: range) -> None:
    for r in rounds:
        backend.submit_round(r, EDGES)


def parameters(backend: LocalBackend) -> dict[tuple[int, str], torch.Tensor]:
    return {(i, name): p.detach().clone() for i, slot in backend.shard.agents.items()
            for name, p in slot.model.named_parameters()}


def assert_close(a: dict[Any, torch.Tensor], b: dict[Any, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    worst = max(float((a[k] - b[k]).abs().max()) for k in a)
    assert worst <= TOLERANCE, worst


def test_fused_adam_trains_like_per_tensor_adam_with_each_agents_lr(tmp_path: Path) -> None:
    cfg = three_agents(tmp_path)
    fused, plain = LocalBackend(cfg, 3), LocalBackend(cfg, 3)
    for agent_id, slot in fused.shard.agents.items():
        assert [g["lr"] for g in slot.optimizer.param_groups] == [LRS[agent_id]]
        assert slot.optimizer.defaults["fused"] is True
    per_tensor_adam(plain)
    start = parameters(fused)
    train(fused, range(ROUNDS))
    train(plain, range(ROUNDS))
    moved = {k: float((v - start[k]).abs().max()) for k, v in parameters(fused).items()}
    assert max(moved[(1, n)] for i, n in moved if i == 1) > 10 * TOLERANCE  # it did train
    assert_close(parameters(fused), parameters(plain))


def test_per_tensor_adam_checkpoint_resumes_on_fused_adam(tmp_path: Path) -> None:
    cfg = three_agents(tmp_path)
    old = LocalBackend(cfg, 3)
    per_tensor_adam(old)
    train(old, range(ROUNDS))
    state = old.get_state()
    assert all(g["fused"] is None for s in state.values() for g in s["optimizer"]["param_groups"])

    resumed = LocalBackend(cfg, 3)
    resumed.set_state(state)
    for agent_id, slot in resumed.shard.agents.items():
        assert all(g["fused"] is True for g in slot.optimizer.param_groups)
        assert [g["lr"] for g in slot.optimizer.param_groups] == [LRS[agent_id]]
        steps = {float(s["step"]) for s in slot.optimizer.state.values()}
        assert steps == {float(ROUNDS)}  # the moments and counts came with the checkpoint
    train(old, range(ROUNDS, 2 * ROUNDS))
    train(resumed, range(ROUNDS, 2 * ROUNDS))
    assert_close(parameters(resumed), parameters(old))


# ---------------------------------------------------------------------------- training.compile


def failing_backend(graph: Any, example_inputs: Any) -> Any:
    """A torch.compile backend that cannot compile anything (as a missing C++ compiler)."""
    raise RuntimeError("this backend compiles nothing")


def test_compile_failure_falls_back_to_eager_with_one_warning(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cfg = three_agents(tmp_path)
    model = LocalBackend(cfg, 3).shard.agents[0].model
    wrapped = compiling.CompiledModel(model, failing_backend)
    obs = torch.rand(8, model.game.obs_dim)
    with caplog.at_level(logging.WARNING, logger=compiling.__name__):
        first, second = wrapped.perceive(obs), wrapped.perceive(obs)
    assert torch.equal(first, model.perceive(obs)) and torch.equal(second, first)
    warnings = [r for r in caplog.records if "could not be compiled" in r.getMessage()]
    assert len(warnings) == 1 and "perceive" in warnings[0].getMessage()
    assert wrapped.params is model.params  # everything but the forward methods is the model's


def run_metrics(tmp_path: Path, compile_setting: Any) -> tuple[Any, dict[Any, torch.Tensor]]:
    cfg = build_config(tiny_config(
        tmp_path / str(compile_setting), topology={"generator": "complete_graph", "params": {"n": 3}},
        training={"rule": "gumbel", "rounds": 4, "batch_size": 16, "compile": compile_setting},
        logging={"dir": str(tmp_path / str(compile_setting)), "progress": False, "messages_every": 0,
                 "eval_every": 2, "checkpoint_every": 0}))
    backend = LocalBackend(cfg, 3)
    reports = [backend.submit_round(r, EDGES) for r in range(4)]
    stats = [(e, s.success, s.listener_loss, s.entropy)
             for rep in reports for e, s in sorted(rep.edge_stats.items())]
    return stats, parameters(backend)


def test_compiled_rounds_compute_what_eager_rounds_compute(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # aot_eager: torch.compile's tracing and forward/backward graphs without generated C++,
    # the part of the compiled path that is ours; inductor's kernels are torch's to test
    eager_stats, eager_params = run_metrics(tmp_path, False)
    with caplog.at_level(logging.WARNING, logger=compiling.__name__):
        compiled_stats, compiled_params = run_metrics(tmp_path, "aot_eager")
    assert not [r for r in caplog.records if "could not be compiled" in r.getMessage()]
    for (edge, *a), (edge2, *b) in zip(eager_stats, compiled_stats, strict=True):
        assert edge == edge2
        assert a == pytest.approx(b, abs=1e-5)
    assert_close(compiled_params, eager_params)
