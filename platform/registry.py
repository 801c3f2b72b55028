"""Find models, scenarios and learning rules by name.

The platform never imports agents/ or scenarios/: they are found through the entry-point
groups declared in pyproject.toml (``neurocomm.models``, ``neurocomm.scenarios``,
``neurocomm.rules``, ``neurocomm.sinks``), through :func:`register` calls, or by an import path
``pkg.mod:Name``. The platform's own tracker sinks are built in (:data:`BUILTIN`).
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Any

GROUPS = ("models", "scenarios", "rules", "sinks")

# Shipped inside platform/ itself, so found without an installed entry point; each imports
# its tracking library only when a run opens it (docs/trackers.md).
BUILTIN: dict[str, dict[str, str]] = {
    "sinks": {
        "tensorboard": "neurocomm.platform.sinks_builtin:TensorBoardSink",
        "mlflow": "neurocomm.platform.sinks_builtin:MLflowSink",
        "wandb": "neurocomm.platform.sinks_builtin:WandbSink",
    },
}

_registered: dict[str, dict[str, Any]] = {g: {} for g in GROUPS}


def register(group: str, name: str, obj: Any) -> Any:
    """Register ``obj`` under ``name`` (for code that is not installed as a package)."""
    if group not in _registered:
        raise KeyError(f"unknown registry group {group!r}; one of {', '.join(GROUPS)}")
    _registered[group][name] = obj
    return obj


def _entry_points(group: str) -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=f"neurocomm.{group}")}


def names(group: str) -> list[str]:
    """Every name that ``resolve`` accepts for ``group`` (import paths aside)."""
    return sorted(set(_entry_points(group)) | set(_registered[group]) | set(BUILTIN.get(group, {})))


def resolve(group: str, name: str) -> Any:
    """The object registered as ``name``, or imported from ``pkg.mod:Name``.

    Raises LookupError with a user-facing message listing what is allowed.
    """
    if name in _registered[group]:
        return _registered[group][name]
    if name in BUILTIN.get(group, {}):
        module_name, _, attr = BUILTIN[group][name].partition(":")
        return getattr(importlib.import_module(module_name), attr)
    eps = _entry_points(group)
    if name in eps:
        try:
            return eps[name].load()
        except ImportError as err:
            raise LookupError(
                f"{name!r} is registered but its module failed to import ({_one_line(err)}); "
                f"install the package that provides it"
            ) from err
        except (Exception, SystemExit) as err:  # noqa: BLE001 - a plug-in's own failure
            raise LookupError(f"{name!r} is registered but importing it failed: {_one_line(err)}") from err
    if ":" in name:
        module_name, _, attr = name.partition(":")
        # Importing runs the module's top-level code (docs/config.md#import-paths): whatever it
        # raises, even SystemExit, is the user's plug-in failing, reported as one line.
        try:
            module = importlib.import_module(module_name)
        except ImportError as err:
            raise LookupError(f"cannot import module {module_name!r} ({_one_line(err)})") from err
        except (Exception, SystemExit) as err:  # noqa: BLE001
            raise LookupError(f"importing module {module_name!r} failed: {_one_line(err)}") from err
        try:
            return getattr(module, attr)
        except AttributeError as err:
            raise LookupError(f"module {module_name!r} has no attribute {attr!r}") from err
        except Exception as err:  # noqa: BLE001 - a module-level __getattr__ failing
            raise LookupError(f"module {module_name!r}: reading {attr!r} failed: {_one_line(err)}") from err
    allowed = ", ".join(names(group)) or "none registered"
    raise LookupError(f"unknown name {name!r}; allowed: {allowed} (or an import path pkg.mod:Name)")


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text}" if text else type(err).__name__
