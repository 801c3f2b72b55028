"""analyze / report / compare end to end on small fake-but-valid run directories.

The logs are written with the run directory's own schemas (METRICS_SCHEMA, MESSAGES_SCHEMA);
the checkpoints hold real agent weights built with ``build_agent``. The messages log carries a
planted language: one dialect per community of a two-community graph.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from neurocomm.platform.analysis import analyze_run
from neurocomm.platform.analysis.compare import comparison_table, mean_ci, summaries
from neurocomm.platform.analysis.intelligibility import (
    evaluation_batch,
    intelligibility_matrix,
    load_population,
)
from neurocomm.platform.analysis.report import FIGURES
from neurocomm.platform.building import build_agent, build_scenario
from neurocomm.platform.cli import main
from neurocomm.platform.config import apply_overrides, build_config
from neurocomm.platform.errors import RunDirError
from neurocomm.platform.interfaces import ChannelSpec
from neurocomm.platform.rundir import MESSAGES_SCHEMA, METRICS_SCHEMA, ChunkedTable, RunDir
from neurocomm.platform.topology import build_topology

REPO = Path(__file__).resolve().parents[1]
ROUNDS = 20
N_ATTRIBUTES, N_VALUES = 2, 3
OBJECTS = list(itertools.product(range(N_VALUES), repeat=N_ATTRIBUTES))


def fake_config(name: str = "fake", seed: int = 0) -> dict:
    return {
        "name": name,
        "seed": seed,
        "topology": {"generator": "barbell_graph", "params": {"m1": 3, "m2": 0}},
        "population": {
            "vocab_size": 8,
            "max_len": 3,
            "agent": {"params": {"hidden_size": 16, "embed_size": 8, "perception_layers": [16]}},
        },
        "scenario": {
            "name": "referential",
            "params": {"n_attributes": N_ATTRIBUTES, "n_values": N_VALUES, "n_distractors": 2},
        },
        "training": {"rounds": ROUNDS, "batch_size": 8},
        "runtime": {"backend": "local"},
        "logging": {"messages_every": 5, "messages_per_edge": 9, "checkpoint_every": 10},
    }


def planted_message(agent: int, obj: tuple[int, ...]) -> list[int]:
    """Agents 0-2 speak one compositional dialect, agents 3-5 another (disjoint symbols)."""
    if agent < 3:
        return [1 + obj[0], 1 + obj[1], 0]
    return [5 + obj[1], 5 + obj[0], 0]


def make_fake_run(
    root: Path,
    *,
    name: str = "fake",
    seed: int = 0,
    rounds: int = ROUNDS,
    checkpoints: bool = True,
    log_messages: bool = True,
    status: str = "finished",
    changes: tuple[str, ...] = (),
    lost_every: int = 0,
    distinct_checkpoints: bool = False,
) -> Path:
    """``changes``: config overrides (``key.path=value``); ``lost_every``: every k-th logged
    game is a failure; ``distinct_checkpoints``: each checkpoint holds different weights."""
    cfg = build_config(apply_overrides(fake_config(name, seed), list(changes)))
    run = RunDir.create(cfg, root)
    topology = build_topology(cfg.topology, cfg.seed)
    topology.save(run.path / "topology.json")
    edges, _ = topology.talk_edges(0)
    metrics = ChunkedTable(run.metrics_dir, METRICS_SCHEMA)
    messages = ChunkedTable(run.messages_dir, MESSAGES_SCHEMA)
    for r in range(rounds):
        level = min(1.0, 0.3 + 0.02 * r + 0.05 * seed)
        metrics.extend(
            [
                {
                    "round": r,
                    "speaker": s,
                    "listener": lis,
                    "games": 8,
                    "success": level,
                    "listener_loss": 1 - level,
                    "speaker_loss": 1 - level,
                    "entropy": 1.0,
                    "msg_length": 3.0,
                    "eval_success": level if r % 5 == 0 or r == rounds - 1 else float("nan"),
                }
                for s, lis in edges
            ]
        )
        if log_messages and (r % 5 == 0 or r == ROUNDS - 1):
            messages.extend(
                [
                    {
                        "round": r,
                        "speaker": s,
                        "listener": lis,
                        "game": g,
                        "target": list(obj),
                        "message": planted_message(s, obj),
                        "length": 3,
                        "choice": 0,
                        "target_index": 0,
                        "success": not (lost_every and g % lost_every == 0),
                    }
                    for s, lis in edges
                    for g, obj in enumerate(OBJECTS)
                ]
            )
        if (r + 1) % 10 == 0:
            metrics.flush()
            messages.flush()
    metrics.flush()
    messages.flush()
    if checkpoints:
        scenario = build_scenario(cfg)
        channel = ChannelSpec(cfg.population.vocab_size, cfg.population.max_len)
        states = {i: build_agent(cfg, i, scenario, channel).model.state_dict() for i in range(topology.n)}
        for done in range(10, rounds + 1, 10):
            if distinct_checkpoints:
                noise = torch.Generator().manual_seed(done)
                states = {i: _jitter(state, noise) for i, state in states.items()}
            agents = {i: {"model": state} for i, state in states.items()}
            run.save_checkpoint(done, {"rounds_done": done, "agents": agents})
    run.update_status(status=status, rounds_done=rounds, n_agents=topology.n)
    return run.path


def _jitter(state: dict, noise: torch.Generator) -> dict:
    """Weights moved by unit Gaussian noise: another network, as after more training."""
    return {
        k: v + torch.randn(v.shape, generator=noise) if v.is_floating_point() else v for k, v in state.items()
    }


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("runs")
    return {
        "full": make_fake_run(root / "a", seed=0),
        "no_checkpoint": make_fake_run(root / "b", seed=1, checkpoints=False),
        "bare": make_fake_run(root / "d", seed=3, checkpoints=False, log_messages=False),
        "crashed": make_fake_run(root / "c", seed=2, rounds=13, checkpoints=False, status="crashed"),
    }


def test_analyze_cli_writes_tables_and_summary(runs: dict[str, Path], capsys) -> None:
    assert main(["analyze", str(runs["full"])]) == 0
    out = capsys.readouterr().out
    assert "compositionality" in out and "intelligibility" in out
    folder = runs["full"] / "analysis"
    for name in (
        "success_by_edge",
        "success_by_agent",
        "success_population",
        "language",
        "lexicon",
        "language_distance",
        "dialects",
        "intelligibility",
        "over_time",
    ):
        assert not pd.read_parquet(folder / f"{name}.parquet").empty, name
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["checkpoint_round"] == ROUNDS and summary["language_source"] == "checkpoint"
    assert summary["rounds_to_success"]["0.5"] is not None
    assert summary["final_eval_success"] == pytest.approx(min(1.0, 0.3 + 0.02 * (ROUNDS - 1)))
    over_time = pd.read_parquet(folder / "over_time.parquet")
    assert set(over_time["source"]) == {"messages", "checkpoint"}
    assert sorted(over_time[over_time["source"] == "checkpoint"]["round"].unique()) == [10, 20]
    logged = over_time[(over_time["source"] == "messages") & (over_time["scope"] != "population")]
    assert logged["topsim"].dropna().round(9).eq(1.0).all()  # each agent's planted dialect


def test_intelligibility_matrix_covers_every_pair(runs: dict[str, Path]) -> None:
    population = load_population(RunDir(runs["full"]), 10)
    batch = evaluation_batch(population, 64)
    matrix = intelligibility_matrix(population, batch)
    assert matrix.shape == (6, 6)
    assert ((matrix >= 0) & (matrix <= 1)).all()
    assert all(p.grad is None for m in population.models.values() for p in m.parameters())
    again = intelligibility_matrix(population, evaluation_batch(population, 64))
    assert (matrix == again).all()  # a fixed evaluation set and greedy speakers


def test_planted_dialects_from_the_messages_log(runs: dict[str, Path]) -> None:
    analysis = analyze_run(runs["no_checkpoint"], permutations=199)
    s = analysis.summary
    assert s["language_source"] == "messages" and s["intelligibility_mean"] is None
    assert s["topsim"] is not None and s["topsim_agent_mean"] == pytest.approx(1.0)
    assert s["language_clusters"] == 2 and s["graph_communities"] == 2
    assert s["clusters_communities_nmi"] == pytest.approx(1.0)
    assert s["mantel_r"] > 0.5
    assert analysis.tables["lexicon"]["share"].eq(1.0).all()


def test_crashed_run_is_analysed_on_what_is_complete(runs: dict[str, Path], capsys) -> None:
    assert main(["analyze", str(runs["crashed"])]) == 0
    out = capsys.readouterr().out
    assert "partial run" in out
    summary = json.loads((runs["crashed"] / "analysis" / "summary.json").read_text())
    assert summary["status"] == "crashed" and summary["rounds_done"] == 13


def test_run_without_messages_or_checkpoints(runs: dict[str, Path], capsys) -> None:
    assert main(["report", str(runs["bare"])]) == 0
    assert "language measured from: nothing" in capsys.readouterr().out
    analysis = analyze_run(runs["bare"])
    assert analysis.summary["topsim"] is None and analysis.summary["language_clusters"] is None
    assert analysis.summary["tail_success"] is not None
    page = (runs["bare"] / "report" / "report.html").read_text()
    assert page.count("src='data:image/png;base64,") >= 2  # learning curves, graph


def test_report_is_self_contained(runs: dict[str, Path]) -> None:
    assert main(["report", str(runs["full"])]) == 0
    folder = runs["full"] / "report"
    page = (folder / "report.html").read_text()
    assert page.count("src='data:image/png;base64,") == len(FIGURES) == 9
    assert "<script src" not in page and "<link" not in page  # script, styles and data inline
    for png, _, _ in FIGURES:
        assert (folder / f"{png}.png").read_bytes()[:4] == b"\x89PNG"


def test_compare_groups_by_config_name(tmp_path: Path, runs: dict[str, Path], capsys) -> None:
    root = tmp_path / "sweep"
    for seed in (0, 1, 2):
        make_fake_run(root, name="sweep", seed=seed, checkpoints=False)
    out = tmp_path / "out"
    assert main(["compare", str(root), str(runs["no_checkpoint"]), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "sweep: 3" in printed and "fake: 1" in printed
    table = pd.read_csv(out / "compare.csv")
    row = table[(table["name"] == "sweep") & (table["measure"] == "final_eval_success")].iloc[0]
    assert row["n"] == 3 and row["ci_low"] < row["mean"] < row["ci_high"]
    assert (out / "compare.png").is_file()
    frame = summaries([root])
    assert len(comparison_table(frame)) > 0


def test_mean_ci() -> None:
    n, mean, low, high = mean_ci([1.0, 2.0, 3.0])
    assert n == 3 and mean == 2.0 and high - mean == pytest.approx(4.303 / 3**0.5, rel=1e-3)
    assert mean_ci([1.0, None, float("nan")])[0] == 1


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("analysis", "report"))
    return dst


def test_bad_run_directories_exit_2(tmp_path: Path, runs: dict[str, Path], capsys) -> None:
    assert main(["analyze", str(tmp_path / "missing")]) == 2
    assert "no such run directory" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["analyze", str(tmp_path / "empty")]) == 2
    assert "no run.json" in capsys.readouterr().err
    assert main(["analyze", str(runs["full"]), "--at", "7"]) == 2
    assert "no checkpoint at round 7" in capsys.readouterr().err

    old = _copy(runs["no_checkpoint"], tmp_path / "old")
    status = json.loads((old / "run.json").read_text())
    (old / "run.json").write_text(json.dumps({**status, "schema_version": 0}))
    with pytest.raises(RunDirError, match="schema_version 0"):
        analyze_run(old)

    part = _copy(runs["no_checkpoint"], tmp_path / "part")
    first = part / "metrics.parquet" / "part-000000.parquet"
    table = pq.read_table(first)
    pq.write_table(table.replace_schema_metadata({"schema_version": "2"}), first)
    with pytest.raises(RunDirError, match="schema_version 2"):
        analyze_run(part)

    no_topology = _copy(runs["no_checkpoint"], tmp_path / "no_topology")
    (no_topology / "topology.json").unlink()
    with pytest.raises(RunDirError, match="topology.json is missing"):
        analyze_run(no_topology)

    no_metrics = _copy(runs["no_checkpoint"], tmp_path / "no_metrics")
    shutil.rmtree(no_metrics / "metrics.parquet")
    with pytest.raises(RunDirError, match="no metrics logged"):
        analyze_run(no_metrics)

    broken = _copy(runs["full"], tmp_path / "broken_ckpt")
    (broken / "checkpoints" / "round_000020.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(RunDirError, match="cannot be loaded"):
        analyze_run(broken)
    older = _copy(runs["no_checkpoint"], tmp_path / "older")
    first = older / "metrics.parquet" / "part-000000.parquet"
    pq.write_table(pq.read_table(first).drop_columns(["eval_success"]), first)
    assert analyze_run(older).summary["final_eval_success"] is not None  # from the later parts

    wrong_cols = _copy(runs["no_checkpoint"], tmp_path / "wrong_cols")
    first = wrong_cols / "messages" / "part-000000.parquet"
    pq.write_table(pa.table({"round": [1]}).replace_schema_metadata({"schema_version": "1"}), first)
    with pytest.raises(RunDirError, match="lacks columns"):
        analyze_run(wrong_cols)


CHROMIUM = Path("/usr/bin/chromium")


def test_report_images_load_in_chromium(runs: dict[str, Path]) -> None:
    if not CHROMIUM.exists():
        # .ci/run installs Chromium: in CI a skip here would be a test that never runs
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("CI: /usr/bin/chromium is missing (.ci/run installs Debian's chromium)")
        pytest.skip("needs /usr/bin/chromium (apt-get install chromium)")
    page = runs["full"] / "report" / "report.html"
    if not page.is_file():
        assert main(["report", str(runs["full"])]) == 0
    script = REPO / "scripts" / "check_report_images.py"
    done = subprocess.run(
        [sys.executable, str(script), str(page)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{len(FIGURES)} of {len(FIGURES)} images loaded" in done.stdout
