"""The Python front door, ``import neurocomm`` (docs/python-api.md): run a config, read a run
directory back, analyse it.

The command line goes through the same functions: ``neurocomm run CONFIG --set P=V --backend B``
is ``run(CONFIG, overrides=["P=V"], backend="B", echo=print)``, and ``neurocomm validate``
reads its config with :func:`resolve_config`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from neurocomm.platform.run_control import RoundCallback, chain_callbacks
from neurocomm.platform.run_result import RunResult

if TYPE_CHECKING:
    from neurocomm.platform.analysis.run_analysis import Analysis
    from neurocomm.platform.config import RunConfig

def resolve_config(config: RunConfig | str | Path | Mapping[str, Any],
                   overrides: Sequence[str] | str = (), *, backend: str | None = None,
                   address: str | None = None) -> RunConfig:
    """The validated config of a YAML file, a mapping of the same structure, or a RunConfig,
    with ``--set``-style overrides (``"training.rounds=50"``, the value read as YAML) applied.
    ``backend`` and ``address`` are shortcuts for ``runtime.backend`` and ``runtime.address``.
    Raises ConfigError (one line naming the source, the field path and what is allowed)."""
    from neurocomm.platform.config import RunConfig, apply_overrides, build_config, load_config

    changes = [overrides] if isinstance(overrides, str) else list(overrides)
    if backend:
        changes.append(f"runtime.backend={backend}")
    if address:
        changes.append(f"runtime.address={address}")
    if isinstance(config, RunConfig):
        if not changes:
            return config
        return build_config(apply_overrides(config.to_dict(), changes), source=f"config {config.name!r}")
    if isinstance(config, Mapping):
        return build_config(apply_overrides(dict(config), changes), source="<mapping>")
    if isinstance(config, str | Path):
        return load_config(config, changes)
    raise TypeError(f"config: expected a RunConfig, a YAML path or a mapping, not {type(config).__name__}")


def run(config: RunConfig | str | Path | Mapping[str, Any], overrides: Sequence[str] | str = (),
        callbacks: Iterable[RoundCallback] | RoundCallback = (), *, backend: str | None = None,
        address: str | None = None, stop: Callable[[int], bool] | None = None,
        echo: Callable[[str], Any] | None = None) -> RunResult:
    """Play a config to the end (any scenario, the naming game included) and return its result.

    ``callbacks``: called after every round with (rounds done, that round's metric rows, one
    per directed edge); one returning True stops the run after that round, as Ctrl-C does
    (see ``RoundCallback`` in platform/run_control.py). ``stop(round)`` is asked before each
    round. ``echo`` receives the lines the command line prints (the run directory).
    """
    from neurocomm.platform.runner import run as run_config

    cfg = resolve_config(config, overrides, backend=backend, address=address)
    hooks = [callbacks] if callable(callbacks) else list(callbacks)
    return run_config(cfg, echo=echo, stop=stop, on_round=chain_callbacks(hooks))


def load_run(path: str | Path) -> RunResult:
    """The result of an existing run directory, as :func:`run` returns it (finished or not)."""
    return RunResult.load(path)


def analyze(run: RunResult | str | Path, *, at: int | None = None, distance: str = "edit",
            trust: bool = False, write: bool = False) -> Analysis:
    """Every emergent-language measure of a run (what ``neurocomm analyze`` prints and writes):
    ``.summary`` (a dict), ``.tables`` (pandas frames), the matrices. ``at``: the checkpoint
    to analyse (default: the latest); ``trust``: import plug-in code the run's config names by
    import path; ``write``: also save RUN/analysis/ as the command does. A Mantel test on too
    few agents to mean much is reported as a Python warning too."""
    from neurocomm.platform.analysis.run_analysis import analyze_run, write_analysis

    path = run.run_dir if isinstance(run, RunResult) else Path(run)
    analysis = analyze_run(path, at=at, distance=distance, trust=trust)  # type: ignore[arg-type]
    if write:
        write_analysis(analysis)
    warning = analysis.summary.get("mantel_warning")
    if warning:
        warnings.warn(f"{path}: {warning}", stacklevel=2)
    return analysis


__all__ = ["analyze", "load_run", "resolve_config", "run"]
