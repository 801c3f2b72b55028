"""``training.compile``: the agents' forward computation compiled with ``torch.compile``.

What is compiled: a cohort model's forward methods of the ``AgentModel`` interface
(``perceive``, ``production_step``, ``comprehend``, ``reconstruct``), forward and backward
graphs. The learning rule's glue stays eager: it draws noise from per-edge generators, calls
``backward`` and reads numbers for the logs, and each of those would split a compiled graph;
worse, a failure after such a side effect (gradients already accumulated) could not be undone.
A forward method has no side effect, so a failure is retried eagerly on the spot.

* **Cache**: compiled code is kept per model class and method for the life of the process
  (an actor's, or the driver's on the local backend) and specialised per input shape
  (``dynamic=False``): each shape (groups x rows: training batch, evaluation sets) is compiled
  once, on first use. torch's recompilation limit applies per method; past it, torch runs that
  method eagerly.
* **Fallback**: when compiling fails (no C++ compiler, an operation the compiler does not
  support, ...), the call runs eagerly, one warning is logged per model class and method, and
  that method stays eager in this process. The backward graph is compiled together with the
  forward one, so its failure is caught here too and never surfaces inside ``backward()``.

Nothing else changes: the same parameters, the same noise, the same games; the compiled
kernels round differently from the eager ones (float32, ~1e-7), so a compiled run matches an
eager one within rounding, not bit for bit. A run resumed with the same setting continues
exactly as the uninterrupted run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch

log = logging.getLogger(__name__)

METHODS = ("perceive", "production_step", "comprehend", "reconstruct")
OFF = "off"
DEFAULT_BACKEND = "inductor"

# keyed by (model class, method, backend)
_compiled: dict[tuple[type, str, Any], Callable[..., Any]] = {}
_failed: set[tuple[type, str, Any]] = set()


def backend_for(setting: bool | str) -> str:
    """``training.compile`` → a ``torch.compile`` backend name, or ``"off"``."""
    if setting is True:
        return DEFAULT_BACKEND
    if setting is False:
        return OFF
    return str(setting)


def check_setting(setting: bool | str) -> None:
    """ValueError naming the allowed values, for the config's one-time validation."""
    if isinstance(setting, bool):
        return
    allowed = sorted(set(torch._dynamo.list_backends()) | {"eager", "aot_eager"})
    if setting not in allowed:
        raise ValueError(f"compile: must be true, false or a torch.compile backend ({', '.join(allowed)})")


class CompiledModel:
    """``model`` with its forward methods compiled by ``backend``; everything else (``monitor``,
    ``params``, ...) is the model's own."""

    def __init__(self, model: Any, backend: str | Callable[..., Any]) -> None:
        self._model = model
        self._backend = backend

    def __getattr__(self, name: str) -> Any:
        if name in METHODS:
            return lambda *args, **kwargs: self._call(name, args, kwargs)
        return getattr(self._model, name)

    def _call(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        cls = type(self._model)
        key = (cls, name, self._backend)
        eager = getattr(cls, name)
        if key not in _failed:
            fn = _compiled.get(key)
            if fn is None:
                fn = _compiled[key] = torch.compile(eager, backend=self._backend, dynamic=False)
            try:
                # both graphs now: a backward that fails to compile would otherwise fail in
                # the middle of the rule's backward(), past the point of falling back
                with torch._functorch.config.patch(force_non_lazy_backward_lowering=True):
                    return fn(self._model, *args, **kwargs)
            except Exception as err:  # noqa: BLE001 - any compiler failure: fall back, once
                _failed.add(key)
                log.warning("training.compile: %s.%s could not be compiled with %r and runs "
                            "eagerly in this process (%s: %s)", cls.__name__, name, self._backend,
                            type(err).__name__, str(err).splitlines()[0] if str(err) else "")
        return eager(self._model, *args, **kwargs)


def compiled(model: Any, setting: bool | str) -> Any:
    """``model`` as the round computes it under ``training.compile: setting``."""
    backend = backend_for(setting)
    return model if backend == OFF else CompiledModel(model, backend)
