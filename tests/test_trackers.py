"""Tracker sinks for real: a run stopped and resumed with TensorBoard, MLflow and W&B (offline)
as its sinks; each library's own reader gives back the numbers of metrics.parquet at the same
steps. Plus the config errors, a sink of one's own by name, and a failing sink."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd
import pytest

from neurocomm.platform import console, registry
from neurocomm.platform.cli import main
from neurocomm.platform.config import build_config
from neurocomm.platform.rundir import RunDir
from neurocomm.platform.runner import run
from neurocomm.platform.topology import Topology
from tests.conftest import tiny_config

ROUNDS = 10
IDS = ("round", "speaker", "listener")


def expected_values(run_dir: Path, per_edge: bool = True) -> dict[str, dict[int, float]]:
    """What a tracker should hold, computed from metrics.parquet with pandas: name -> step -> value."""
    df = pd.read_parquet(run_dir / "metrics.parquet")
    out: dict[str, dict[int, float]] = {}
    for column in (c for c in df.columns if c not in IDS):
        means = df.groupby("round")[column].mean().dropna()  # NaN: not measured that round
        out[f"mean/{column}"] = {int(r): float(v) for r, v in means.items()}
        if per_edge:
            for row in df.dropna(subset=[column]).itertuples(index=False):
                name = f"edge/{column}/{row.speaker}-{row.listener}"
                out.setdefault(name, {})[int(row.round)] = float(getattr(row, column))
    return {name: steps for name, steps in out.items() if steps}


def assert_same(got: dict[str, dict[int, float]], want: dict[str, dict[int, float]], rel: float) -> None:
    assert set(got) == set(want)
    for name, steps in want.items():
        assert sorted(got[name]) == sorted(steps), name
        for step, value in steps.items():
            assert math.isclose(got[name][step], value, rel_tol=rel, abs_tol=rel), (name, step)


@pytest.fixture(scope="module")
def tracked_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run with all three sinks, stopped after round 4 and resumed to the end."""
    tmp = tmp_path_factory.mktemp("tracked")
    cfg = build_config(tiny_config(
        tmp, training={"rounds": ROUNDS, "batch_size": 16},
        logging={"dir": str(tmp / "runs"), "progress": False, "eval_every": 3, "eval_games": 32,
                 "messages_every": 5, "chunk_rounds": 3,
                 "sinks": ["tensorboard", {"kind": "mlflow", "params": {"experiment": "tiny"}},
                           {"kind": "wandb", "params": {"project": "tiny"}}]}))
    first = run(cfg, on_round=lambda done, rows: done == 4)
    assert first.status == "interrupted"
    resumed = run(cfg, topology=Topology.load(first.run_dir / "topology.json"), resume=RunDir(first.run_dir))
    assert resumed.status == "finished" and resumed.rounds == ROUNDS
    return first.run_dir


def test_tensorboard_holds_the_parquet_numbers(tracked_run: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tracked_run / "tensorboard"), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    got = {tag: {e.step: e.value for e in acc.Scalars(tag)} for tag in acc.Tags()["scalars"]}
    want = expected_values(tracked_run)
    assert "mean/eval_success" in want and sorted(want["mean/eval_success"]) == [0, 3, 6, 9]
    assert_same(got, want, rel=1e-6)  # TensorBoard keeps float32
    # every step once, although the run was written by two processes
    assert all(len(acc.Scalars(tag)) == len(want[tag]) for tag in want)
    (text,) = acc.Tensors("config/text_summary")  # the config as text
    assert f"rounds: {ROUNDS}" in text.tensor_proto.string_val[0].decode()


def test_mlflow_holds_the_parquet_numbers_in_one_run(tracked_run: Path) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tracked_run / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("tiny")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1  # the resumed stretch continued the same MLflow run
    mlrun = runs[0]
    assert mlrun.info.status == "FINISHED"
    assert mlrun.data.params["training.rounds"] == str(ROUNDS)
    assert mlrun.data.params["scenario.name"] == "referential"
    want = expected_values(tracked_run)
    assert set(mlrun.data.metrics) == set(want)
    got: dict[str, dict[int, float]] = {}
    for name in want:
        history = client.get_metric_history(mlrun.info.run_id, name)
        got[name] = {m.step: m.value for m in history}
        assert len(history) == len(got[name]), f"{name}: a step logged twice"
    assert_same(got, want, rel=1e-12)


def test_wandb_offline_files_hold_the_parquet_numbers(tracked_run: Path) -> None:
    folders = sorted((tracked_run / "wandb").glob("offline-run-*"))
    assert len(folders) == 2  # the first stretch and the resumed one, under one run id
    run_id = json.loads((tracked_run / "run.json").read_text())["run_id"]
    got: dict[str, dict[int, float]] = {}
    for folder in folders:
        (log_file,) = folder.glob("run-*.wandb")
        records = _wandb_records(log_file)
        run_record = next(r["run"] for r in records if r["type"] == "run")
        assert run_record["run_id"] == run_id
        assert run_record["config"]["update"]["training"]["rounds"] == ROUNDS
        assert run_record["config"]["update"]["name"] == "tiny"
        for record in (r["history"] for r in records if r["type"] == "history"):
            step = int(record["step"]["num"])
            for name, value in record["item"].items():
                if not name.startswith("_"):
                    assert step not in got.setdefault(name, {})
                    got[name][step] = float(value)
    assert_same(got, expected_values(tracked_run), rel=1e-12)


def _wandb_records(log_file: Path) -> list[dict[str, Any]]:
    """The records of a .wandb transaction log, as W&B's own reader prints them."""
    out = subprocess.run([sys.executable, "-m", "wandb", "leet", "inspect", "--json", str(log_file)],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


class Recorder:
    """A sink of one's own, registered by name: keeps what it is given."""

    @dataclass(frozen=True)
    class Params:
        fail_at: int = -1  # raise at this step (a tracker going away)

    seen: ClassVar[list[tuple[int, dict[str, float]]]] = []
    closed: ClassVar[list[str]] = []

    def __init__(self, params: Params, run: Any) -> None:
        self.params = params

    def log(self, step: int, values: dict[str, float]) -> None:
        if step == self.params.fail_at:
            raise ConnectionError("tracking server went away")
        Recorder.seen.append((step, values))

    def close(self, status: str) -> None:
        Recorder.closed.append(status)


def test_own_sink_by_name_and_a_failing_one_never_stops_the_run(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    console.configure(0)  # the CLI's handler: warnings on stderr
    # registry.register("sinks", "recorder", Recorder), undone after the test
    monkeypatch.setitem(registry._registered["sinks"], "recorder", Recorder)
    Recorder.seen.clear()
    Recorder.closed.clear()
    sinks = [{"kind": "recorder", "per_edge": False}, {"kind": "recorder", "params": {"fail_at": 2}}]
    cfg = build_config(tiny_config(tmp_path, training={"rounds": 5, "batch_size": 16},
                                   logging={"dir": str(tmp_path / "runs"), "progress": False,
                                            "eval_every": 2, "sinks": sinks}))
    result = run(cfg)
    assert result.status == "finished"
    # the first sink saw every round with the means only; the second its first two rounds
    steps = [step for step, _ in Recorder.seen]
    assert steps == [0, 0, 1, 1, 2, 3, 4]
    means_only = [values for step, values in Recorder.seen[::2][:2]] + [v for _, v in Recorder.seen[4:]]
    assert all(name.startswith("mean/") for values in means_only for name in values)
    want = expected_values(result.run_dir, per_edge=False)
    for step, values in Recorder.seen[4:]:
        assert values == pytest.approx({n: s[step] for n, s in want.items() if step in s}, rel=1e-12)
    assert sorted(Recorder.closed) == ["crashed", "finished"]
    assert "the recorder sink failed at round 2 (ConnectionError: tracking server went away)" \
        in capsys.readouterr().err
    events = [json.loads(line) for line in (result.run_dir / "events.log").read_text().splitlines()]
    assert [e["round"] for e in events if e.get("event") == "sink_failed"] == [2]


def _config_file(tmp_path: Path, sinks: Any) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(json.dumps(tiny_config(tmp_path, logging={"dir": str(tmp_path / "runs"),
                                                               "sinks": sinks})))
    return path


def test_unknown_sink_bad_option_and_missing_library_are_one_line_errors(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    path = _config_file(tmp_path, ["tensorboard", "tensorbored"])
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert err.startswith(f"neurocomm: error: {path}: logging.sinks[1].kind: unknown name 'tensorbored'")
    assert "allowed: mlflow, tensorboard, wandb" in err

    path = _config_file(tmp_path, [{"kind": "mlflow", "params": {"tracking_url": "http://x"}}])
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert f"{path}: logging.sinks[0].params.tracking_url: unknown key; allowed here: tracking_uri" in err

    monkeypatch.setitem(sys.modules, "wandb", None)  # as if not installed
    path = _config_file(tmp_path, ["wandb"])
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"neurocomm: error: {path}: logging.sinks[0].kind: the wandb sink needs the wandb "
                   "library, which is not installed; install it with: pip install 'neurocomm[wandb]'")
    assert not (tmp_path / "runs").exists()  # refused before anything was written


class Unopenable(Recorder):
    """A sink whose tracking server cannot be reached when the run starts."""

    def __init__(self, params: Recorder.Params, run: Any) -> None:
        assert (run.run_dir / "config.yaml").exists()  # it is opened inside the new run directory
        raise ConnectionError("tracking server refused the connection")


def test_a_sink_that_cannot_open_is_one_line_and_leaves_no_run_directory(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(registry._registered["sinks"], "unopenable", Unopenable)
    earlier = tmp_path / "runs" / "an-earlier-run"
    earlier.mkdir(parents=True)
    (earlier / "metrics.parquet").write_bytes(b"kept")
    path = _config_file(tmp_path, ["unopenable"])
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert err.startswith(f"neurocomm: error: {path}: logging.sinks[0]: the unopenable sink cannot open: "
                          "ConnectionError: tracking server refused the connection")
    # the run directory it had made is gone; what was there before is untouched
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["an-earlier-run"]
    assert (earlier / "metrics.parquet").read_bytes() == b"kept"


def test_sinks_short_form_round_trips_and_leaves_the_config_hash_alone(tmp_path: Path) -> None:
    plain = build_config(tiny_config(tmp_path))
    short = build_config(tiny_config(tmp_path, logging={"dir": str(tmp_path / "runs"),
                                                        "sinks": ["tensorboard"]}))
    (spec,) = short.logging.sinks
    assert (spec.kind, spec.per_edge, spec.params) == ("tensorboard", True, {})
    # config.yaml holds the long form, which reads back to the same config
    assert build_config(short.to_dict()) == short
    assert short.to_dict()["logging"]["sinks"] == [{"kind": "tensorboard", "per_edge": True, "params": {}}]
    # watching a run does not make it another run (sweeps, resume)
    assert short.digest() == plain.digest()
