"""The run directory: resolved config, topology, Parquet logs in chunks, events, checkpoints.

Layout (docs/logs.md)::

    runs/{name}__seed{seed}__{timestamp}/
        run.json            status, rounds done, schema_version, config hash
        config.yaml         the resolved config
        topology.json       the graph actually used (networkx node-link JSON)
        metrics.parquet/    part-NNNNNN.parquet: one row per round x directed edge
        messages/           part-NNNNNN.parquet: one row per logged game
        events.log          one JSON object per line
        checkpoints/        round_NNNNNN.pt (torch, loadable with weights_only=True) + .sha256
        .lock               the one live writer's OS lock (runlock.py)

Every file is written to a temporary name of its own process, flushed to disk (file and
folder), and renamed into place, so a crash loses at most the chunk being written and never
corrupts what is already there. Checkpoints carry a SHA-256 sidecar (``round_NNNNNN.pt.sha256``,
``sha256sum -c`` format) so a truncated or zeroed one is recognised and skipped on resume.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import torch
import yaml

from neurocomm.platform import faults
from neurocomm.platform.config import RunConfig
from neurocomm.platform.errors import RunDirError

# The record types in platform/metrics.py spell every column once; re-exported here, where the
# run directory's files are written.
from neurocomm.platform.metrics import MESSAGES_SCHEMA as MESSAGES_SCHEMA
from neurocomm.platform.metrics import METRICS_SCHEMA as METRICS_SCHEMA
from neurocomm.platform.metrics import SCHEMA_VERSION as SCHEMA_VERSION


def temporary_name(path: Path) -> Path:
    """Where ``path`` is written before it is renamed into place: one name per process, so two
    processes never write the same temporary file."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (the new directory entry reaches the disk)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_durably(path: Path, write: Callable[[Path], object]) -> None:
    """``write(tmp)`` to this process's temporary name, fsync it, rename it over ``path`` and
    fsync the folder; the temporary file is removed when anything fails (a full disk)."""
    tmp = temporary_name(path)
    try:
        write(tmp)
        faults.before_write(path)  # after the write: a full disk leaves a partial temporary
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(err, OSError) and err.filename is None:  # say which file (pyarrow does not)
            raise OSError(err.errno, err.strerror or str(err), str(path)) from err
        raise
    fsync_dir(path.parent)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    _write_durably(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def is_disk_full(err: BaseException) -> bool:
    return isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT)


class ChunkedTable:
    """Rows buffered in memory and written as numbered Parquet parts."""

    def __init__(self, folder: Path, schema: pa.Schema, start_part: int = 0) -> None:
        self.folder = folder
        self.schema = schema
        self.part = start_part
        self.rows: list[dict[str, Any]] = []
        folder.mkdir(parents=True, exist_ok=True)

    def extend(self, rows: list[dict[str, Any]]) -> None:
        self.rows.extend(rows)

    def flush(self) -> None:
        if not self.rows:
            return
        table = pa.Table.from_pylist(self.rows, schema=self.schema)
        path = self.folder / f"part-{self.part:06d}.parquet"
        _write_durably(path, lambda tmp: pq.write_table(table, tmp))
        self.part += 1
        self.rows = []


def import_paths(cfg: RunConfig) -> list[tuple[str, str]]:
    """(field, name) of every model, scenario or rule that ``cfg`` names by import path."""
    named = [("population.agent.model", cfg.population.agent.model),
             ("scenario.name", cfg.scenario.name), ("training.rule", cfg.training.rule)]
    named += [(f"population.groups[{i}].model", g.model) for i, g in enumerate(cfg.population.groups)]
    return [(field, name) for field, name in named if name and ":" in name]


def run_dir_name(cfg: RunConfig) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return f"{cfg.name}__seed{cfg.seed}__{stamp}"


class RunDir:
    """A run's folder on disk; see the module docstring for the layout."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    # ------------------------------------------------------------------ creating

    @classmethod
    def create(cls, cfg: RunConfig, root: Path | None = None) -> RunDir:
        root = Path(root or cfg.logging.dir)
        root.mkdir(parents=True, exist_ok=True)
        base = run_dir_name(cfg)
        for i in range(1000):
            path = root / (base if i == 0 else f"{base}-{i}")
            try:
                path.mkdir()
                break
            except FileExistsError:
                continue
        else:  # pragma: no cover - a thousand runs in one second
            raise RuntimeError(f"cannot find a free run directory name under {root}")
        run = cls(path)
        atomic_write_text(path / "config.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        run.write_status(
            {
                "schema_version": SCHEMA_VERSION,
                "run_id": path.name,
                "name": cfg.name,
                "seed": cfg.seed,
                "config_hash": cfg.digest(),
                "status": "running",
                "rounds_planned": cfg.training.rounds,
                "rounds_done": 0,
                "started": time.time(),
            }
        )
        (path / "checkpoints").mkdir()
        return run

    # ------------------------------------------------------------------ files

    @property
    def metrics_dir(self) -> Path:
        return self.path / "metrics.parquet"

    @property
    def messages_dir(self) -> Path:
        return self.path / "messages"

    @property
    def checkpoints_dir(self) -> Path:
        return self.path / "checkpoints"

    def status(self) -> dict[str, Any]:
        path = self.path / "run.json"
        if not path.is_file():
            raise RunDirError(f"{self.path}: not a run directory (no run.json)")
        try:
            status = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise RunDirError(f"{path}: cannot be read as JSON ({err})") from None
        if not isinstance(status, dict):
            raise RunDirError(f"{path}: holds a {type(status).__name__}, not a JSON object")
        return status

    def write_status(self, status: dict[str, Any]) -> None:
        atomic_write_text(self.path / "run.json", json.dumps(status, indent=2))

    def write_status_in_place(self, status: dict[str, Any]) -> None:
        """Overwrite run.json in place, for a full disk where no new file can be made: a
        few hundred bytes inside the blocks the file already owns (not atomic; used only when
        the atomic write has failed)."""
        data = json.dumps(status, separators=(",", ":")).encode()
        with open(self.path / "run.json", "r+b") as fh:
            fh.write(data)
            fh.truncate(len(data))
            fh.flush()
            os.fsync(fh.fileno())

    def update_status(self, **changes: Any) -> dict[str, Any]:
        status = self.status()
        status.update(changes)
        self.write_status(status)
        return status

    def event(self, kind: str, **details: Any) -> None:
        record = {"time": round(time.time(), 3), "event": kind, **details}
        path = self.path / "events.log"
        faults.before_write(path)
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, default=str) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def remove_temporaries(self) -> list[Path]:
        """Delete temporary files left by any process (call only while holding the run lock)."""
        removed = []
        for folder in (self.path, self.metrics_dir, self.messages_dir, self.checkpoints_dir):
            for tmp in folder.glob(".*.tmp") if folder.is_dir() else []:
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
                    removed.append(tmp)
        return removed

    def events(self) -> list[dict[str, Any]]:
        path = self.path / "events.log"
        if not path.is_file():
            return []
        out = []
        for line in path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut by a crash
        return out

    def config(self, *, trust: bool = True) -> RunConfig:
        """The run's resolved config. With ``trust=False`` a config that names code by import
        path (``pkg.mod:Name``) is refused instead of imported: resolving such a name executes
        that module, and a run directory may come from anywhere."""
        from neurocomm.platform.config import build_config, validate_references
        from neurocomm.platform.errors import ConfigError
        from neurocomm.platform.typed import from_mapping

        path = self.path / "config.yaml"
        if not path.is_file():
            raise RunDirError(f"{self.path}: config.yaml is missing")
        try:
            data = yaml.safe_load(path.read_text())
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
            raise RunDirError(f"{path}: cannot be read as YAML ({str(err).splitlines()[0]})") from None
        if not isinstance(data, dict):
            raise RunDirError(f"{path}: holds a {type(data).__name__}, not a mapping")
        if trust:
            return build_config(data, source=str(path))
        try:
            cfg = from_mapping(RunConfig, data)
        except ConfigError as err:
            raise err.at(source=str(path)) from None
        plugins = import_paths(cfg)
        if plugins:
            field, name = plugins[0]
            raise RunDirError(
                f"{path}: {field} is the import path {name!r}; analysing this run imports and "
                "executes that module: pass --trust if you trust the run directory (the plug-in "
                "must be installed here)"
            )
        try:
            validate_references(cfg)
        except ConfigError as err:
            raise err.at(source=str(path)) from None
        return cfg

    # ------------------------------------------------------------------ checkpoints

    def save_checkpoint(self, round_done: int, payload: dict[str, Any]) -> Path:
        """Write ``round_NNNNNN.pt`` and then its checksum sidecar, each durably."""
        path = self.checkpoints_dir / f"round_{round_done:06d}.pt"
        buffer = io.BytesIO()
        torch.save(payload, buffer)
        data = buffer.getvalue()
        atomic_write_bytes(path, data)
        atomic_write_text(checksum_path(path), f"{hashlib.sha256(data).hexdigest()}  {path.name}\n")
        return path

    def checkpoints(self) -> list[tuple[int, Path]]:
        out = []
        for p in sorted(self.checkpoints_dir.glob("round_*.pt")):
            try:
                out.append((int(p.stem.split("_")[1]), p))
            except (IndexError, ValueError):
                continue
        return out

    def load_checkpoint(self, round_done: int | None = None) -> dict[str, Any]:
        """The checkpoint at ``round_done`` (default: the latest), checksum verified;
        RunDirError with the reason when it is missing or damaged."""
        found = self.checkpoints()
        if not found:
            raise RunDirError(f"{self.path}: no checkpoint saved")
        if round_done is None:
            path = found[-1][1]
        else:
            match = [p for r, p in found if r == round_done]
            if not match:
                have = ", ".join(str(r) for r, _ in found)
                raise RunDirError(f"{self.path}: no checkpoint at round {round_done}; have {have}")
            path = match[0]
        try:
            return read_checkpoint(path)
        except CheckpointDamaged as err:
            raise RunDirError(f"{path}: damaged checkpoint, cannot be loaded: {err}") from None


class CheckpointDamaged(Exception):
    """A checkpoint file that is truncated, zeroed, fails its checksum or cannot be loaded."""


def checksum_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def read_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint after checking its SHA-256 sidecar (when there is one: checkpoints
    written before sidecars existed, or whose sidecar a crash did not let be written, are
    checked by loading alone)."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise CheckpointDamaged(f"cannot be read ({err.strerror})") from None
    sidecar = checksum_path(path)
    if sidecar.is_file():
        try:
            expected = sidecar.read_text().split()[0]
        except (OSError, UnicodeDecodeError, IndexError):
            expected = "(unreadable checksum file)"
        actual = hashlib.sha256(data).hexdigest()
        if actual != expected:
            raise CheckpointDamaged(f"checksum mismatch ({len(data)} bytes, sha256 {actual[:12]}…, "
                                    f"expected {expected[:12]}…)")
    try:
        payload = torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
    except Exception as err:  # noqa: BLE001 - any failure to unpickle means a damaged file
        raise CheckpointDamaged(f"cannot be loaded ({type(err).__name__}: {str(err)[:120]})") from None
    if not isinstance(payload, dict) or not {"rounds_done", "agents"} <= set(payload):
        raise CheckpointDamaged("is not a neurocomm checkpoint (rounds_done or agents missing)")
    return payload
