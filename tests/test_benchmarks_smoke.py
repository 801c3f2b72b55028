"""The benchmark suite's quick mode runs end to end and writes the JSON it promises (no timing
is asserted: the figures depend on the machine)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_quick_pair_and_naming_write_the_expected_json(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "run_all.py"), "--quick", "--only", "pair,naming",
         "--out", str(out), "--no-doc"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "games/s" in proc.stdout  # the table was printed
    data = json.loads(out.read_text())

    meta = data["meta"]
    assert meta["quick"] is True
    assert meta["groups"] == ["pair", "naming"]
    for key in ("date", "machine", "nproc", "lscpu_head", "torch", "ray", "load_before", "seconds"):
        assert key in meta, key

    rows = {row["key"]: row for row in data["rows"]}
    assert {"pair/reference, both ways", "pair/local, both ways", "pair/reference, one way",
            "pair/local, one way", "naming/N=1000", "startup/first run"} <= set(rows)
    for key in ("pair/reference, both ways", "pair/local, both ways"):
        row = rows[key]
        for field in ("games_per_s", "rounds_per_s", "batch_size", "rounds", "driver_peak_rss_mb"):
            assert isinstance(row[field], int | float), (key, field)
        assert row["games_per_s"] > 0
    local = rows["pair/local, both ways"]
    assert local["games_per_round"] == 2 * local["batch_size"]  # two directed edges
    assert local["vs_reference"] > 0
    assert local["param_bytes"] > 0 and local["optimizer_bytes"] > 0
    naming = rows["naming/N=1000"]
    assert naming["t_conv_mean"] > 0 and naming["wall_s"] > 0

    egg = rows["pair/EGG-style loop (written in benchmarks/), one way"]
    assert egg["backend"] == "egg-style" and egg["games_per_s"] > 0 and local["vs_egg"] > 0

    # every target is listed, measured or not; the pair's two were measured here
    targets = {t["target"]: t for t in data["targets"]}
    assert all(set(t) == {"target", "wanted", "measured", "holds", "note", "bound"} for t in targets.values())
    for name in ("pair, local: games/s vs the EGG-style pair",
                 "pair, local: games/s vs the plain-PyTorch reference"):
        assert isinstance(targets[name]["holds"], bool) and targets[name]["measured"] > 0
    unmeasured = targets["pair: time to 0.9 greedy success from process start, median of seeds, vs reference"]
    assert unmeasured["holds"] is None and "not measured" in unmeasured["note"]
    for n in (16, 64):
        for graph in ("ring", "small world"):
            assert f"population N={n} {graph}: games/s vs the EGG-style loop" in targets
            assert f"population N={n} {graph}: time to mean greedy success 0.9, EGG-style loop / neurocomm" \
                in targets
    for name in ("Ray vs local, quickstart as shipped (2 agents per actor)",
                 "embedded Ray: run start to the end of the first round", "64 agents on Ray: cores kept busy",
                 "64 agents on Ray: games/s vs one core (local backend)",
                 "memory per agent, 512 agents sharded"):
        assert name in targets
    assert "== targets" in proc.stdout and "holds" in proc.stdout


def test_quick_time_to_target_and_populations_fill_their_rows_and_targets(tmp_path: Path) -> None:
    """The pair's time to 0.9 (reference, EGG-style and ``neurocomm run`` with stop_at, each a
    fresh process) and 16 agents against the EGG-style population loop, on tiny budgets."""
    out = tmp_path / "bench.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "run_all.py"), "--quick", "--only", "timeto,populations",
         "--out", str(out), "--no-doc"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(out.read_text())
    rows = {row["key"]: row for row in data["rows"]}
    for system in ("reference pair", "EGG-style pair", "neurocomm pair (CLI)"):
        row = rows[f"timeto/{system}, seed 0"]
        assert isinstance(row["reached"], bool) and 0 <= row["eval_success"] <= 1
        assert row["seconds_run"] > 0
    for graph in ("ring", "small world"):
        egg, local = rows[f"populations/N=16 {graph} EGG-style loop"], rows[f"populations/N=16 {graph} local"]
        assert egg["games_per_s"] > 0 and local["vs_egg"] > 0 and local["edges"] == egg["edges"]
        assert rows[f"populations/N=16 {graph} ray"]["actors"] == 2  # one actor per core
        for system in ("egg", "neurocomm"):
            row = rows[f"timeto/N=16 {graph} {system}"]
            assert row["cap_s"] > 0
            if not row["reached"]:  # a capped run ran to its cap and gives no time to 0.9
                assert row["seconds_run"] >= row["cap_s"] and math.isnan(row["seconds_to_target"])
    targets = {t["target"]: t for t in data["targets"]}
    for graph in ("ring", "small world"):  # a capped run makes the ratio a bound, never a figure
        time_target = targets[f"population N=16 {graph}: time to mean greedy success 0.9, "
                              "EGG-style loop / neurocomm"]
        reached = {s: rows[f"timeto/N=16 {graph} {s}"]["reached"] for s in ("egg", "neurocomm")}
        if all(reached.values()):
            assert time_target["bound"] == "" and time_target["measured"] > 0
        elif any(reached.values()):
            assert time_target["bound"] == (">=" if reached["neurocomm"] else "<=")
        else:
            assert time_target["measured"] is None and time_target["holds"] is None
    games = targets["population N=16 ring: games/s vs the EGG-style loop"]
    assert isinstance(games["holds"], bool) and games["measured"] > 0
    pair_time = "pair: time to 0.9 greedy success from process start, median of seeds, vs reference"
    assert targets[pair_time]["note"]
    assert "N=16 ring, EGG-style loop" in proc.stdout and "== targets" in proc.stdout


def test_only_rejects_an_unknown_group(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "run_all.py"), "--only", "nope", "--out",
         str(tmp_path / "x.json")],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert "unknown group" in proc.stderr
