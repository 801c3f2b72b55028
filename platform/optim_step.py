"""One optimiser step for every agent of a shard, fused across agents where that changes nothing.

Each agent keeps its own optimiser (its own learning rate, its own state, its own entry in a
checkpoint). Stepping them one by one costs a ``torch.optim`` call per agent, whose Python
wrapper (hooks, grad-mode switch, per-group bookkeeping) costs more than the fused Adam kernel
it ends in at these sizes. Fused Adam is elementwise and reads each tensor's own step count, so
one ``torch._fused_adam_`` call over the tensors of several agents with the same
hyper-parameters computes, tensor by tensor, exactly what one call per agent computes
(tests/test_optim_step.py compares weights and state with ``torch.equal``).

What goes through the shared call: ``torch.optim.Adam`` with ``fused=True``, float
hyper-parameters, no AMSGrad, no hooks, no gradient scaler, and state already initialised for
every parameter with a gradient. Anything else (SGD, a non-fused Adam, an agent's first step,
when torch initialises the state, or right after a partial reset dropped some of it) takes
its optimiser's own ``step()``. As with ``step()``, a parameter without a gradient is left alone.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import torch
from torch.optim.optimizer import _global_optimizer_post_hooks, _global_optimizer_pre_hooks

Bucket = tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor], list[torch.Tensor],
               list[torch.Tensor]]


def _group_key(optimizer: torch.optim.Optimizer, group: dict) -> Hashable | None:
    """What one fused call must share (None: this group steps through ``optimizer.step()``)."""
    if not group.get("fused") or group["amsgrad"] or group["capturable"] or group["differentiable"]:
        return None
    values = (group["lr"], *group["betas"], group["eps"], group["weight_decay"])
    if not all(isinstance(v, float | int) for v in values):  # a tensor lr or beta
        return None
    return (*values, group["maximize"], group.get("decoupled_weight_decay", False))


def _shareable(optimizer: torch.optim.Optimizer) -> bool:
    return (type(optimizer) is torch.optim.Adam and not optimizer._optimizer_step_pre_hooks
            and not optimizer._optimizer_step_post_hooks and not _global_optimizer_pre_hooks
            and not _global_optimizer_post_hooks and getattr(optimizer, "grad_scale", None) is None
            and getattr(optimizer, "found_inf", None) is None)


def _collect(optimizer: torch.optim.Optimizer, buckets: dict[Hashable, Bucket]) -> bool:
    """Add ``optimizer``'s tensors to ``buckets``; False (nothing added) when it must step alone."""
    if not _shareable(optimizer):
        return False
    mine: list[tuple[Hashable, torch.Tensor, dict]] = []
    for group in optimizer.param_groups:
        key = _group_key(optimizer, group)
        if key is None:
            return False
        for p in group["params"]:
            if p.grad is None:
                continue
            state = optimizer.state.get(p)
            if not state:  # first step: torch builds the state (and checks the device)
                return False
            mine.append(((key, p.device, p.dtype), p, state))
    for key, p, state in mine:
        params, grads, exp_avgs, exp_avg_sqs, steps = buckets.setdefault(key, ([], [], [], [], []))
        params.append(p)
        grads.append(p.grad)
        exp_avgs.append(state["exp_avg"])
        exp_avg_sqs.append(state["exp_avg_sq"])
        steps.append(state["step"])
    return True


def step_all(optimizers: Sequence[torch.optim.Optimizer], stepping: Sequence[bool]) -> None:
    """``optimizers[i].step()`` where ``stepping[i]``, then every gradient set to None (as
    ``zero_grad(set_to_none=True)``), with the fused Adams of equal hyper-parameters in one call."""
    buckets: dict[Hashable, Bucket] = {}
    for optimizer, steps in zip(optimizers, stepping, strict=True):
        if steps and not _collect(optimizer, buckets):
            optimizer.step()
    with torch.no_grad():
        for (key, _, _), (params, grads, exp_avgs, exp_avg_sqs, steps) in buckets.items():
            lr, beta1, beta2, eps, weight_decay, maximize, decoupled = key  # type: ignore[misc]
            torch._foreach_add_(steps, 1)
            fused = torch._fused_adamw_ if decoupled else torch._fused_adam_
            fused(params, grads, exp_avgs, exp_avg_sqs, [], steps, amsgrad=False, lr=lr,
                  beta1=beta1, beta2=beta2, weight_decay=weight_decay, eps=eps, maximize=maximize,
                  grad_scale=None, found_inf=None)
    for optimizer in optimizers:
        for group in optimizer.param_groups:
            for p in group["params"]:
                p.grad = None
