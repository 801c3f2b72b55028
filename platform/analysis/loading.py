"""Read a run directory for analysis, checking that it is complete enough and of our schema.

A run that crashed or was interrupted is read as far as it got: every Parquet part on disk
holds whole rounds, so the analysis covers exactly the rounds written. Logs with a gap or a
duplicate (a part deleted or copied) are refused (integrity.py).

Nothing named by the run directory is imported unless the caller trusts it: a config that
names a model, scenario or rule by import path (``pkg.mod:Name``) is refused without
``trust=True`` (``--trust`` on the command line), because importing it runs that module.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from neurocomm.platform.analysis.integrity import check_logs
from neurocomm.platform.config import RunConfig
from neurocomm.platform.errors import ConfigError, RunDirError
from neurocomm.platform.rundir import MESSAGES_SCHEMA, METRICS_SCHEMA, SCHEMA_VERSION, RunDir
from neurocomm.platform.topology import Topology

# Columns an analysis cannot do without; any other column of the schema that a part lacks
# (one added after the part was written, such as metrics' eval_success) is read as null.
REQUIRED = {
    "metrics": ("round", "speaker", "listener", "games", "success"),
    "messages": ("round", "speaker", "listener", "target", "message"),
}


@dataclass
class RunData:
    """Everything the analysis reads from one run directory."""

    run: RunDir
    status: dict[str, Any]
    config: RunConfig
    graph: nx.Graph
    metrics: pd.DataFrame
    messages: pd.DataFrame
    checkpoints: list[tuple[int, Path]] = field(default_factory=list)

    @property
    def path(self) -> Path:
        return self.run.path

    @property
    def n_agents(self) -> int:
        return self.graph.number_of_nodes()

    @property
    def rounds_done(self) -> int:
        """Rounds present in the metrics log (what the analysis covers)."""
        return int(self.metrics["round"].max()) + 1 if len(self.metrics) else 0

    @property
    def partial(self) -> bool:
        return self.status.get("status") != "finished"


def _read_parts(run_path: Path, folder: Path, schema: pa.Schema, what: str) -> pd.DataFrame:
    parts = sorted(folder.glob("part-*.parquet")) if folder.is_dir() else []
    tables = []
    for part in parts:
        try:
            table = pq.read_table(part)
        except (OSError, pa.ArrowException) as err:
            raise RunDirError(f"{run_path}: cannot read {part.relative_to(run_path)} ({err})") from None
        meta = table.schema.metadata or {}
        version = meta.get(b"schema_version", b"").decode()
        if version != str(SCHEMA_VERSION):
            raise RunDirError(
                f"{run_path}: {part.relative_to(run_path)} has schema_version {version or 'none'}; "
                f"this neurocomm reads {SCHEMA_VERSION}"
            )
        missing = [name for name in REQUIRED[what] if name not in table.schema.names]
        if missing:
            raise RunDirError(f"{run_path}: {what} part {part.name} lacks columns {', '.join(missing)}")
        for column in schema:  # columns added to the schema later: null in older parts
            if column.name not in table.schema.names:
                table = table.append_column(column.name, pa.nulls(len(table), column.type))
        try:
            tables.append(table.select(schema.names).cast(schema))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as err:
            wrong = [f"{c.name} is {table.schema.field(c.name).type}, not {c.type}" for c in schema
                     if table.schema.field(c.name).type != c.type]
            raise RunDirError(f"{run_path}: {what} part {part.name} has mistyped columns "
                              f"({'; '.join(wrong) or str(err).splitlines()[0]})") from None
    if not tables:
        return schema.empty_table().to_pandas()
    return pa.concat_tables(tables).to_pandas()


def _tuples(column: pd.Series) -> list[tuple[int, ...]]:
    return [tuple(int(x) for x in v) for v in column]


def read_metrics(run_path: Path) -> pd.DataFrame:
    """The metrics log: one row per round x directed edge (columns added later read as null)."""
    return _read_parts(run_path, RunDir(run_path).metrics_dir, METRICS_SCHEMA, "metrics")


def read_messages(run_path: Path) -> pd.DataFrame:
    """The messages log with ``target`` and ``message`` as tuples of ints."""
    games = _read_parts(run_path, run_path / "messages", MESSAGES_SCHEMA, "messages")
    games["target"] = _tuples(games["target"])
    games["message"] = _tuples(games["message"])
    return games


def load_run(path: str | Path, *, trust: bool = False) -> RunData:
    """Read and check a run directory; raises RunDirError with a one-line reason.

    ``trust``: allow importing plug-in code named by import path in the run's config (the
    plug-in must be installed here)."""
    path = Path(path)
    if not path.exists():
        raise RunDirError(f"{path}: no such run directory")
    if not path.is_dir():
        raise RunDirError(f"{path}: not a directory")
    run = RunDir(path)
    try:
        status = run.status()
    except json.JSONDecodeError as err:
        raise RunDirError(f"{path}: run.json is not valid JSON ({err.msg})") from None
    if status.get("standalone"):
        raise RunDirError(f"{path}: a standalone scenario's run (no agents, no messages): its figures "
                          "are run.json's outcome and the records in metrics.parquet")
    version = status.get("schema_version")
    if version != SCHEMA_VERSION:
        raise RunDirError(
            f"{path}: run.json has schema_version {version}; this neurocomm reads {SCHEMA_VERSION}"
        )
    try:
        config = run.config(trust=trust)
    except ConfigError as err:
        raise RunDirError(
            f"{path}: config.yaml cannot be read: {err.message} ({err.path or 'top level'})"
        ) from None
    topo_path = path / "topology.json"
    if not topo_path.is_file():
        raise RunDirError(f"{path}: topology.json is missing")
    try:
        topology = Topology.load(topo_path)
        graph = topology.graph
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, nx.NetworkXError) as err:
        raise RunDirError(f"{path}: topology.json cannot be read ({err})") from None
    if sorted(graph.nodes) != list(range(graph.number_of_nodes())):
        raise RunDirError(f"{path}: topology.json nodes are not 0..N-1")
    n_status, n_graph = status.get("n_agents"), graph.number_of_nodes()
    if n_status is not None and int(n_status) != n_graph:
        raise RunDirError(f"{path}: run.json says {n_status} agents but topology.json has {n_graph}")
    metrics = read_metrics(path)
    if metrics.empty:
        state = status.get("status", "?")
        raise RunDirError(f"{path}: no metrics logged yet (status {state}); nothing to analyse")
    messages = read_messages(path)
    check_logs(path, status, config, topology, metrics, messages)
    return RunData(
        run,
        status,
        config,
        graph,
        metrics,
        messages,
        run.checkpoints() if run.checkpoints_dir.is_dir() else [],
    )
