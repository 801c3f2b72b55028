"""Starting or joining Ray, loopback-only unless the user points at a cluster."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from collections.abc import Iterator
from typing import Any

from neurocomm.platform.console import route_to_debug_log

# Read by Ray when it is imported: with it off, a local Ray binds and advertises 127.0.0.1
# only, so nobody else on the network can join a laptop run.
_LOOPBACK_ENV = {
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    "RAY_USAGE_STATS_ENABLED": "0",
}

WORKER_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
# Imported by every worker of an embedded session as soon as Ray starts it: Ray starts one
# worker per CPU while ray.init is still running, and a shard actor then lands on one whose
# torch (~0.9 s), neurocomm and torch._dynamo (~1.3 s, pulled in by the first optimiser) are
# loaded already. Best effort: a module that fails to import is logged and skipped.
WORKER_PRELOAD = ("neurocomm.platform.shard", "torch._dynamo")


def loopback_environment() -> None:
    """Make a local Ray stay on 127.0.0.1 (call before ray is started)."""
    for key, value in _LOOPBACK_ENV.items():
        os.environ.setdefault(key, value)
    constants = sys.modules.get("ray._private.ray_constants")
    if constants is not None and os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] == "0":
        constants.ENABLE_RAY_CLUSTER = False


# ray.init is not thread-safe: two runs of a sweep starting at once would each start an
# embedded Ray and the second loses its connection to the first's GCS. One session per process.
_START_LOCK = threading.Lock()


def ensure_ray(address: str | None, *, object_store_mb: int = 256, num_cpus: float | None = None) -> Any:
    """``ray`` connected: to the running session, to ``address``, or to a new embedded one
    (thread-safe: the first caller starts it, the others reuse it)."""
    with _START_LOCK:
        return _ensure_ray(address, object_store_mb, num_cpus)


# Ray's notices on every start ("Token authentication is enabled for this Ray cluster...",
# "Connecting to existing Ray cluster...") go to the neurocomm debug log (`neurocomm -v`);
# its warnings about the run itself, and everything an actor prints, still reach the terminal.
RAY_STARTUP_LOGGERS = {
    "ray._private.authentication.authentication_token_setup": logging.ERROR,
    "ray._private.worker": logging.WARNING,
}


def _ensure_ray(address: str | None, object_store_mb: int, num_cpus: float | None) -> Any:
    if address is None:
        loopback_environment()
    import ray

    for name, below in RAY_STARTUP_LOGGERS.items():
        route_to_debug_log(name, below)

    if ray.is_initialized():
        return ray
    if address is None:
        # The workers' environment is inherited from the driver's (through the raylet), not
        # set by a runtime_env: workers with a runtime_env of their own cannot be the ones Ray
        # prestarts, and every actor would wait for a fresh process (~0.7 s).
        with _environment(WORKER_ENV):
            ray.init(
                num_cpus=num_cpus,
                include_dashboard=False,
                object_store_memory=object_store_mb * 1024 * 1024,
                _node_ip_address="127.0.0.1",
                log_to_driver=True,
                configure_logging=False,
                _system_config={"preload_python_modules": list(WORKER_PRELOAD)},
            )
    else:
        ray.init(address=address, runtime_env={"env_vars": dict(WORKER_ENV)}, configure_logging=False)
    return ray


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """``values`` in this process's environment for the block, then as they were."""
    before = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
