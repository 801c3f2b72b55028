"""The tracker sinks neurocomm ships: TensorBoard, MLflow and Weights & Biases (docs/trackers.md).

Each writes into the run directory unless told otherwise, imports its library only when a run
opens it (each is an optional extra: ``pip install 'neurocomm[tensorboard]'``), and carries
on where it stopped when the run is resumed: the same TensorBoard folder, the same MLflow run
(found by the ``neurocomm.run_id`` tag), the same W&B run id.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml

from neurocomm.platform.console import route_to_debug_log
from neurocomm.platform.interfaces import SinkRun
from neurocomm.platform.sinks import flat_params

# Names the hparams view lists next to the hyperparameters (their values are the logged ones).
HEADLINE_METRICS = ("mean/success", "mean/eval_success")


def _config_text(run: SinkRun) -> str:
    return yaml.safe_dump(run.config, sort_keys=False)


class TensorBoardSink:
    """Event files in RUN/tensorboard/ (``tensorboard --logdir runs/`` shows every run):
    scalars per round, the config as text and as hyperparameters (the HPARAMS tab)."""

    requires: ClassVar[tuple[str, str]] = ("tensorboard", "tensorboard")

    @dataclass(frozen=True)
    class Params:
        dir: str = "tensorboard"  # inside the run directory; an absolute path gets RUN_ID/ below it
        flush_secs: int = 10

        def check(self) -> None:
            if self.flush_secs < 1:
                raise ValueError("flush_secs: must be >= 1")

    def __init__(self, params: Params, run: SinkRun) -> None:
        self.params, self.run = params, run
        folder = Path(params.dir).expanduser()
        self.path = folder / run.run_id if folder.is_absolute() else run.run_dir / folder
        self.writer: Any = None

    def _open(self, first_step: int) -> None:
        from torch.utils.tensorboard import SummaryWriter
        from torch.utils.tensorboard.summary import hparams

        # Resumed: TensorBoard drops what the folder holds from this step on (the rounds a
        # crash lost since the last checkpoint are played, and logged, again).
        purge = first_step if self.run.resuming else None
        self.writer = SummaryWriter(str(self.path), purge_step=purge, flush_secs=self.params.flush_secs)
        if not self.run.resuming:
            self.writer.add_text("config", "    " + _config_text(self.run).replace("\n", "\n    "), 0)
            for summary in hparams(flat_params(self.run.config), dict.fromkeys(HEADLINE_METRICS, 0.0)):
                self.writer.file_writer.add_summary(summary)

    def log(self, step: int, values: dict[str, float]) -> None:
        if self.writer is None:
            self._open(step)
        for name, value in values.items():
            self.writer.add_scalar(name, value, step)

    def close(self, status: str) -> None:
        if self.writer is not None:
            self.writer.close()


class MLflowSink:
    """One MLflow run per neurocomm run: metrics per round (step = round), the config as
    params, the status at the end (FINISHED, KILLED when interrupted, FAILED). Without a
    ``tracking_uri`` the store is RUN/mlflow.db (SQLite; MLflow has retired its plain-folder
    store) with artifacts in RUN/mlruns: ``mlflow ui --backend-store-uri sqlite:///RUN/mlflow.db``."""

    requires: ClassVar[tuple[str, str]] = ("mlflow", "mlflow")
    STATUS: ClassVar[dict[str, str]] = {"finished": "FINISHED", "interrupted": "KILLED", "crashed": "FAILED"}
    BATCH = 1000  # metrics per request: MLflow's own limit
    PARAM_CHARS = 6000

    @dataclass(frozen=True)
    class Params:
        tracking_uri: str | None = None  # e.g. http://localhost:5000; default: the run directory
        experiment: str = "neurocomm"
        run_name: str | None = None  # default: the run directory's name

    def __init__(self, params: Params, run: SinkRun) -> None:
        for name in ("mlflow.store.db.utils", "alembic.runtime.migration"):  # "Creating tables..."
            route_to_debug_log(name, logging.WARNING)
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        local = params.tracking_uri is None
        uri = params.tracking_uri or f"sqlite:///{(run.run_dir / 'mlflow.db').resolve()}"
        self.client = MlflowClient(tracking_uri=uri)
        experiment_id = self._experiment(params.experiment, run.run_dir / "mlruns" if local else None)
        self.run_id = self._existing(experiment_id, run.run_id) if run.resuming else None
        if self.run_id is not None:
            self.client.update_run(self.run_id, status="RUNNING")
            return
        tags = {"neurocomm.run_id": run.run_id, "neurocomm.run_dir": str(run.run_dir)}
        created = self.client.create_run(experiment_id, run_name=params.run_name or run.run_dir.name,
                                         tags=tags)
        self.run_id = created.info.run_id
        values = [Param(k, str(v)[: self.PARAM_CHARS]) for k, v in flat_params(run.config).items()]
        for i in range(0, len(values), 100):  # MLflow takes at most 100 params a request
            self.client.log_batch(self.run_id, params=values[i : i + 100])

    def _experiment(self, name: str, artifacts: Path | None) -> str:
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return str(found.experiment_id)
        location = artifacts.resolve().as_uri() if artifacts is not None else None
        try:
            return str(self.client.create_experiment(name, artifact_location=location))
        except Exception:  # another run of a sweep created it first
            found = self.client.get_experiment_by_name(name)
            if found is None:
                raise
            return str(found.experiment_id)

    def _existing(self, experiment_id: str, run_id: str) -> str | None:
        runs = self.client.search_runs([experiment_id], f"tags.`neurocomm.run_id` = '{run_id}'",
                                       max_results=1)
        return runs[0].info.run_id if runs else None

    def log(self, step: int, values: dict[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(name, value, now, step) for name, value in values.items()]
        for i in range(0, len(metrics), self.BATCH):
            self.client.log_batch(self.run_id, metrics=metrics[i : i + self.BATCH])

    def close(self, status: str) -> None:
        self.client.set_terminated(self.run_id, self.STATUS.get(status, "FAILED"))


def wandb_run_id(run_id: str) -> str:
    """A W&B run id for a neurocomm run id: the same text where W&B allows it."""
    safe = re.sub(r"[^A-Za-z0-9_-]", "-", run_id)
    if len(safe) <= 64:
        return safe
    return f"{safe[:51]}-{hashlib.sha256(run_id.encode()).hexdigest()[:12]}"


class WandbSink:
    """A W&B run, offline by default (no account; RUN/wandb/offline-run-*; ``wandb sync`` uploads
    it later): metrics per round (step = round), the config, the exit status. The W&B run id
    is the neurocomm run id, so a resumed run continues the same W&B run."""

    requires: ClassVar[tuple[str, str]] = ("wandb", "wandb")

    @dataclass(frozen=True)
    class Params:
        project: str = "neurocomm"
        entity: str | None = None
        # null: the WANDB_MODE environment variable, or else offline
        mode: Literal["offline", "online", "disabled"] | None = None
        group: str | None = None
        tags: tuple[str, ...] = ()

    def __init__(self, params: Params, run: SinkRun) -> None:
        import wandb

        mode = params.mode or os.environ.get("WANDB_MODE") or "offline"
        # console off: W&B would otherwise wrap this process's stdout and stderr
        settings = wandb.Settings(console="off", silent=True, x_disable_stats=True, save_code=False,
                                  disable_git=True, x_save_requirements=False)
        self.wandb_run = wandb.init(
            project=params.project, entity=params.entity, group=params.group,
            tags=list(params.tags) or None, dir=str(run.run_dir), id=wandb_run_id(run.run_id),
            name=run.run_dir.name, resume="allow", config=run.config, mode=mode,
            reinit="create_new", settings=settings,
        )
        self.last_step = -1

    def log(self, step: int, values: dict[str, float]) -> None:
        # W&B's steps only go forward: rounds played again after a recovery are not sent twice
        if step <= self.last_step:
            return
        self.wandb_run.log(values, step=step)
        self.last_step = step

    def close(self, status: str) -> None:
        self.wandb_run.finish(exit_code=0 if status == "finished" else 1)
