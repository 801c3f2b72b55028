"""``neurocomm init DIR``: the example configs, copied where a user can edit and run them.

The configs ship inside the package (``neurocomm.configs``, mapped from the source tree's
configs/ folder: one copy in git). They land in ``DIR/configs/`` with their folders (studies/,
sweeps/, tune/, ablations/) and graph files, so the relative paths between them hold and the
README's commands (``neurocomm run configs/quickstart.yaml``) work from DIR.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

from neurocomm.platform.errors import ConfigError

SHIPPED = (".yaml", ".yml", ".edgelist")


def examples_root() -> Path:
    """The folder the example configs are read from (the installed package data, or the
    source tree's configs/ in an editable install)."""
    spec = importlib.util.find_spec("neurocomm.configs")
    for location in (spec.submodule_search_locations or []) if spec else []:
        if Path(location).is_dir():
            return Path(location)
    raise FileNotFoundError("the example configs (package data neurocomm.configs) are not installed")


def example_files() -> list[Path]:
    """Every shipped example, relative to :func:`examples_root`."""
    root = examples_root()
    return sorted(p.relative_to(root) for p in root.rglob("*")
                  if p.is_file() and p.suffix in SHIPPED and "__pycache__" not in p.parts)


def copy_examples(dest: str | Path, *, force: bool = False) -> list[Path]:
    """Copy the examples into ``dest/configs/``; returns the files written. Without ``force``
    nothing is written when any of them exists already (ConfigError, one line)."""
    root, files = examples_root(), example_files()
    target = Path(dest) / "configs"
    if Path(dest).exists() and not Path(dest).is_dir():
        raise ConfigError("exists and is not a folder", source=str(dest))
    clashes = [f for f in files if (target / f).exists()]
    if clashes and not force:
        more = f" (and {len(clashes) - 1} more example files)" if len(clashes) > 1 else ""
        raise ConfigError(f"exists{more}; nothing was copied; pass --force to overwrite the "
                          "example files", source=str(target / clashes[0]))
    written = []
    for rel in files:
        out = target / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(root / rel, out)
        written.append(out)
    return written
