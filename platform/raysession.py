"""Starting or joining Ray, loopback-only unless the user points at a cluster."""

from __future__ import annotations

import logging
import os
import sys
import threading
from typing import Any

from neurocomm.platform.console import route_to_debug_log

# Read by Ray when it is imported: with it off, a local Ray binds and advertises 127.0.0.1
# only, so nobody else on the network can join a laptop run.
_LOOPBACK_ENV = {
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    "RAY_USAGE_STATS_ENABLED": "0",
}

WORKER_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


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
    env = {"env_vars": dict(WORKER_ENV)}
    if address is None:
        ray.init(
            num_cpus=num_cpus,
            include_dashboard=False,
            object_store_memory=object_store_mb * 1024 * 1024,
            _node_ip_address="127.0.0.1",
            runtime_env=env,
            log_to_driver=True,
            configure_logging=False,
        )
    else:
        ray.init(address=address, runtime_env=env, configure_logging=False)
    return ray
