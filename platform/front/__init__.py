"""neurocomm: populations of NeuroAI agents that invent a language together.

The Python front door (docs/python-api.md)::

    import neurocomm

    result = neurocomm.run("configs/quickstart.yaml", overrides=["training.rounds=200"])
    result.listener_success            # final success per agent, as `neurocomm run` prints it
    result.analyze().summary["topsim"]
    neurocomm.load_run(result.run_dir).metrics   # any run directory, as a pandas frame

Importing this package is cheap: torch and Ray are imported by the first call that needs them.
The platform, the agents and the scenarios are the subpackages ``neurocomm.platform``,
``neurocomm.agents`` and ``neurocomm.scenarios``; the example configs ship as package data
(``neurocomm init DIR`` copies them).
"""

from __future__ import annotations

import importlib
from pathlib import Path as _Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from neurocomm.platform.api import analyze, load_run, resolve_config, run
    from neurocomm.platform.run_result import RunResult

__all__ = ["RunResult", "__version__", "analyze", "load_run", "resolve_config", "run"]

_EXPORTS = {
    "run": "neurocomm.platform.api",
    "load_run": "neurocomm.platform.api",
    "analyze": "neurocomm.platform.api",
    "resolve_config": "neurocomm.platform.api",
    "RunResult": "neurocomm.platform.run_result",
}

# In a source checkout this file is platform/front/__init__.py and the subpackages are the
# folders platform/, agents/, scenarios/ and configs/ two levels up (pyproject.toml maps them);
# platform/ and configs/ have no __init__.py, and an editable install cannot reach such folders
# under a regular package, so the checkout's root joins the search path. A wheel holds them
# next to this file and needs nothing.
_checkout = _Path(__file__).resolve().parents[2]
if (_checkout / "platform" / "front" / "__init__.py").is_file() and not (
    _Path(__file__).resolve().parent / "platform"
).is_dir():
    __path__.append(str(_checkout))


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is not None:
        value = getattr(importlib.import_module(module), name)
    elif name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            value = version("neurocomm")
        except PackageNotFoundError:  # pragma: no cover - a checkout that was never installed
            value = "0+unknown"
    else:
        raise AttributeError(f"module 'neurocomm' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS, "__version__"})
