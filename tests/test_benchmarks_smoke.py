"""The benchmark suite's quick mode runs end to end and writes the JSON it promises (no timing
is asserted: the figures depend on the machine)."""

from __future__ import annotations

import json
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

    targets = {t["target"]: t for t in data["targets"]}
    pair_target = targets["local backend, one pair, vs plain PyTorch"]
    assert set(pair_target) == {"target", "wanted", "measured", "holds", "note"}
    assert isinstance(pair_target["holds"], bool)


def test_only_rejects_an_unknown_group(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "run_all.py"), "--only", "nope", "--out",
         str(tmp_path / "x.json")],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert "unknown group" in proc.stderr
