"""A run directory is never damaged by a second writer, a bad checkpoint, an edited config or
a full disk; each refusal is one line and exit 2 (faults injected through NEUROCOMM_FAULT)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from neurocomm.platform.rundir import temporary_name
from neurocomm.platform.runlock import RunLock
from tests.resume_helpers import cli, killed_run, messages, metrics, reference_run, slow_config


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return reference_run(tmp_path_factory)


def one_line_error(out: subprocess.CompletedProcess, *needles: str) -> None:
    assert out.returncode == 2, out.stderr[-2000:]
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("neurocomm: error: "), out.stderr[-2000:]
    for needle in needles:
        assert needle in lines[0], lines[0]


def events(run_dir: Path) -> list[dict]:
    return [json.loads(x) for x in (run_dir / "events.log").read_text().splitlines()]


def listing(run_dir: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run_dir)): p.read_bytes() for p in sorted(run_dir.rglob("*"))
            if p.is_file() and p.name != ".lock"}


def rewrite_checkpoint(path: Path, change: dict) -> None:
    """Edit a checkpoint's payload and keep its checksum valid (a deliberate, hostile edit)."""
    payload = torch.load(path, weights_only=True)
    payload.update(change)
    torch.save(payload, path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    (path.parent / (path.name + ".sha256")).write_text(f"{digest}  {path.name}\n")


# ---------------------------------------------------------------------------- the run lock


def test_resume_of_a_live_run_is_refused(tmp_path: Path) -> None:
    """Another process holds the run (here: this test process, through the same OS lock a
    run takes): resume is refused, naming the pid, and nothing in the run directory changes."""
    run_dir = killed_run(tmp_path)
    before = listing(run_dir)
    with RunLock(run_dir):
        out = cli("resume", str(run_dir))
    one_line_error(out, "the run is live", f"pid {os.getpid()}")
    assert listing(run_dir) == before
    assert cli("resume", str(run_dir)).returncode == 0  # the lock went with its holder


def test_resume_while_the_run_is_running_is_refused(tmp_path: Path) -> None:
    """A real running `neurocomm run`, frozen with SIGSTOP once it holds its lock: resume is
    refused, and the original run then finishes with every round logged exactly once."""
    from neurocomm.platform.analysis.loading import load_run

    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(slow_config(tmp_path)))
    proc = subprocess.Popen([str(Path(sys.executable).parent / "neurocomm"), "run", str(cfg)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        lock = None
        while lock is None:  # the lock is held for the whole run
            assert proc.poll() is None, "the run ended before its lock was seen"
            for path in (tmp_path / "runs").glob("*/.lock"):
                try:
                    if json.loads(path.read_text() or "{}").get("pid") == proc.pid:
                        lock = path
                except json.JSONDecodeError:
                    pass
        proc.send_signal(signal.SIGSTOP)
        out = cli("resume", str(lock.parent))
        one_line_error(out, "the run is live", f"pid {proc.pid}")
    finally:
        proc.send_signal(signal.SIGCONT)
    assert proc.wait(timeout=300) == 0, proc.stderr.read().decode()[-2000:]
    assert json.loads((lock.parent / "run.json").read_text())["status"] == "finished"
    assert load_run(lock.parent).rounds_done == 40


def test_temporary_files_are_named_per_process(tmp_path: Path) -> None:
    other = subprocess.run(
        [sys.executable, "-c", "import sys; from pathlib import Path; "
         "from neurocomm.platform.rundir import temporary_name; print(temporary_name(Path(sys.argv[1])))",
         str(tmp_path / "run.json")], capture_output=True, text=True, check=True)
    assert other.stdout.strip() != str(temporary_name(tmp_path / "run.json"))


# ---------------------------------------------------------------------------- checkpoints


@pytest.mark.parametrize("damage", ["truncated", "zeroed", "truncated_no_checksum"])
def test_damaged_latest_checkpoint_falls_back_to_previous(damage: str, tmp_path: Path,
                                                          uninterrupted: Path) -> None:
    run_dir = killed_run(tmp_path, 20)  # checkpoints 0, 6, 12, 18
    latest = run_dir / "checkpoints" / "round_000018.pt"
    data = latest.read_bytes()
    if damage == "zeroed":
        latest.write_bytes(bytes(len(data)))
    else:
        latest.write_bytes(data[: len(data) // 2])
    if damage == "truncated_no_checksum":
        (run_dir / "checkpoints" / "round_000018.pt.sha256").unlink()
    out = cli("resume", str(run_dir))
    assert out.returncode == 0, out.stderr[-2000:]
    skipped = [e for e in events(run_dir) if e["event"] == "checkpoint_skipped"]
    assert [(e["checkpoint"], e["using"]) for e in skipped] == [("round_000018.pt", "round_000012.pt")]
    assert ("checksum" if damage != "truncated_no_checksum" else "cannot be loaded") in skipped[0]["reason"]
    assert (run_dir / "checkpoints" / "round_000018.pt.damaged").exists()  # kept, set aside
    pd.testing.assert_frame_equal(metrics(run_dir), metrics(uninterrupted))
    pd.testing.assert_frame_equal(messages(run_dir), messages(uninterrupted))


def test_no_intact_checkpoint_is_one_line(tmp_path: Path) -> None:
    run_dir = killed_run(tmp_path, 8)  # checkpoints 0, 6
    for ckpt in (run_dir / "checkpoints").glob("round_*.pt"):
        ckpt.write_bytes(b"\0" * 100)
    status = json.loads((run_dir / "run.json").read_text())
    one_line_error(cli("resume", str(run_dir)), "no intact checkpoint", "round_000006.pt")
    assert json.loads((run_dir / "run.json").read_text()) == status  # not marked crashed


def test_checkpoint_from_another_run_is_refused(tmp_path: Path, uninterrupted: Path) -> None:
    run_dir = killed_run(tmp_path, 14)  # checkpoints 0, 6, 12
    for name in ("round_000012.pt", "round_000012.pt.sha256"):
        (run_dir / "checkpoints" / name).write_bytes((uninterrupted / "checkpoints" / name).read_bytes())
    before = listing(run_dir)
    one_line_error(cli("resume", str(run_dir)), "round_000012.pt belongs to run")
    assert listing(run_dir) == before


def test_checkpoint_with_negative_log_parts_is_refused(tmp_path: Path) -> None:
    run_dir = killed_run(tmp_path, 14)
    ckpt = run_dir / "checkpoints" / "round_000012.pt"
    rewrite_checkpoint(ckpt, {"log_parts": {"metrics": -5, "messages": 2}})
    before = listing(run_dir)
    one_line_error(cli("resume", str(run_dir)), "log_parts.metrics says -5")
    assert listing(run_dir) == before  # no metrics part deleted


def test_checkpoint_with_log_parts_beyond_the_logs_is_refused(tmp_path: Path) -> None:
    run_dir = killed_run(tmp_path, 14)
    ckpt = run_dir / "checkpoints" / "round_000012.pt"
    rewrite_checkpoint(ckpt, {"log_parts": {"metrics": 99, "messages": 2}})
    one_line_error(cli("resume", str(run_dir)), "log_parts.metrics says 99", "missing")


def test_edited_config_is_refused_unless_forced(tmp_path: Path) -> None:
    run_dir = killed_run(tmp_path, 14)
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    config["population"]["agent"]["lr"] = 0.01
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    before = listing(run_dir)
    one_line_error(cli("resume", str(run_dir)), "config.yaml has changed", "--force")
    assert listing(run_dir) == before
    out = cli("resume", str(run_dir), "--force")
    assert out.returncode == 0, out.stderr[-2000:]
    changed = [e for e in events(run_dir) if e["event"] == "config_changed"]
    assert len(changed) == 1 and changed[0]["forced"] is True
    status = json.loads((run_dir / "run.json").read_text())
    assert status["status"] == "finished" and status["config_hash"] == changed[0]["new_hash"]
    assert status["config_history"] == [changed[0]["old_hash"]]
    # the resumed run trained with the edited learning rate, not the one its checkpoint saved
    final = torch.load(sorted((run_dir / "checkpoints").glob("round_*.pt"))[-1], weights_only=True)
    rates = {g["lr"] for agent in final["agents"].values() for g in agent["optimizer"]["param_groups"]}
    assert rates == {0.01}


@pytest.mark.parametrize("content", ["[1, 2, 3]", "{not json", '"a string"'])
def test_malformed_run_json_is_one_line(content: str, tmp_path: Path) -> None:
    run_dir = killed_run(tmp_path, 8)
    (run_dir / "run.json").write_text(content)
    one_line_error(cli("resume", str(run_dir)), "run.json")
    one_line_error(cli("analyze", str(run_dir)), "run.json")


# ---------------------------------------------------------------------------- disk full


def test_disk_full_stops_the_run_and_resume_continues(tmp_path: Path, uninterrupted: Path) -> None:
    """The 40th file write fails with ENOSPC (mid-run): one line, exit 2, run.json says
    stopped with the reason, no temporary file left; resume then finishes the run exactly."""
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(slow_config(tmp_path)))
    out = cli("run", str(cfg), fault="enospc:40")
    one_line_error(out, "disk full", "neurocomm resume")
    (run_dir,) = list((tmp_path / "runs").iterdir())
    status = json.loads((run_dir / "run.json").read_text())
    assert status["status"] == "stopped" and "disk full" in status["reason"]
    assert 0 < status["rounds_done"] < 40
    assert not [p for p in run_dir.rglob("*") if p.name.endswith(".tmp")]
    assert events(run_dir)[-1]["event"] == "stopped"
    out = cli("resume", str(run_dir))
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads((run_dir / "run.json").read_text())["status"] == "finished"
    pd.testing.assert_frame_equal(metrics(run_dir), metrics(uninterrupted))
    pd.testing.assert_frame_equal(messages(run_dir), messages(uninterrupted))


def test_malformed_fault_spec_is_one_line(tmp_path: Path) -> None:
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(slow_config(tmp_path)))
    one_line_error(cli("run", str(cfg), fault="driver:soon"), "NEUROCOMM_FAULT")


# ---------------------------------------------------------------------------- trust


def test_resume_ignores_the_saved_cluster_address(tmp_path: Path) -> None:
    """config.yaml names a cluster (here one that does not exist): resume runs on a new
    embedded Ray unless --use-saved-address is given."""
    data = slow_config(tmp_path, rounds=12)
    data["runtime"] = {"backend": "ray", "agent_resources": {"num_cpus": 0.1}}
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(data))
    assert cli("run", str(cfg), fault="driver:8").returncode == -signal.SIGKILL
    (run_dir,) = list((tmp_path / "runs").iterdir())
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    config["runtime"]["address"] = "127.0.0.1:9"
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    one_line_error(cli("resume", str(run_dir), "--use-saved-address", "--address", "auto"),
                   "exclude each other")
    out = cli("resume", str(run_dir), "--force")
    assert out.returncode == 0, out.stderr[-2000:]
    placements = [e for e in events(run_dir) if e["event"] == "placement"]
    assert len(placements) == 6  # three actors at the start, three on resume (on this machine)
    assert json.loads((run_dir / "run.json").read_text())["status"] == "finished"


def test_damaged_topology_is_one_line(tmp_path: Path) -> None:
    run_dir = killed_run(tmp_path, 8)
    (run_dir / "topology.json").write_text('{"nodes": [')
    one_line_error(cli("resume", str(run_dir)), "topology.json")
