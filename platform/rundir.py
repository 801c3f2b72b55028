"""The run directory: resolved config, topology, Parquet logs in chunks, events, checkpoints.

Layout (docs/logs.md)::

    runs/{name}__seed{seed}__{timestamp}/
        run.json            status, rounds done, schema_version, config hash
        config.yaml         the resolved config
        topology.json       the graph actually used (networkx node-link JSON)
        metrics.parquet/    part-NNNNNN.parquet: one row per round x directed edge
        messages/           part-NNNNNN.parquet: one row per logged game
        events.log          one JSON object per line
        checkpoints/        round_NNNNNN.pt (torch, loadable with weights_only=True)

Every file is written to a temporary name and renamed into place, so a crash loses at most
the chunk being written and never corrupts what is already there.
"""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import torch
import yaml

from neurocomm.platform.config import RunConfig
from neurocomm.platform.errors import RunDirError

# The record types in platform/metrics.py spell every column once; re-exported here, where the
# run directory's files are written.
from neurocomm.platform.metrics import MESSAGES_SCHEMA as MESSAGES_SCHEMA
from neurocomm.platform.metrics import METRICS_SCHEMA as METRICS_SCHEMA
from neurocomm.platform.metrics import SCHEMA_VERSION as SCHEMA_VERSION


def atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


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
        tmp = path.with_name(f".{path.name}.tmp")
        pq.write_table(table, tmp)
        os.replace(tmp, path)
        self.part += 1
        self.rows = []


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
        return json.loads(path.read_text())

    def write_status(self, status: dict[str, Any]) -> None:
        atomic_write_text(self.path / "run.json", json.dumps(status, indent=2))

    def update_status(self, **changes: Any) -> dict[str, Any]:
        status = self.status()
        status.update(changes)
        self.write_status(status)
        return status

    def event(self, kind: str, **details: Any) -> None:
        record = {"time": round(time.time(), 3), "event": kind, **details}
        with open(self.path / "events.log", "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, default=str) + "\n")
            fh.flush()

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

    def config(self) -> RunConfig:
        from neurocomm.platform.config import build_config

        path = self.path / "config.yaml"
        if not path.is_file():
            raise RunDirError(f"{self.path}: config.yaml is missing")
        return build_config(yaml.safe_load(path.read_text()), source=str(path))

    # ------------------------------------------------------------------ checkpoints

    def save_checkpoint(self, round_done: int, payload: dict[str, Any]) -> Path:
        path = self.checkpoints_dir / f"round_{round_done:06d}.pt"
        tmp = path.with_name(f".{path.name}.tmp")
        torch.save(payload, tmp)
        os.replace(tmp, path)
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
        return torch.load(path, weights_only=True, map_location="cpu")
