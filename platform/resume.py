"""Continuing a run: its config checked, the checkpoint it continues from chosen and checked
(resume and shard recovery), and a run stopped cleanly when the disk is full.

A checkpoint that is damaged (truncated, zeroed, failing its checksum, not loadable) is
skipped for the newest intact one before it, and the caller records which and why. A
checkpoint that is intact but does not belong here (another run's id or config, log offsets
that the run directory does not hold) is refused: continuing from it would silently mix runs.
Everything here runs under the run lock (platform/runlock.py).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from neurocomm.platform.errors import RunDirError
from neurocomm.platform.rundir import CheckpointDamaged, RunDir, checksum_path, read_checkpoint


@dataclass
class Restart:
    """The checkpoint to continue from, and the damaged ones passed over to reach it."""

    payload: dict[str, Any]
    round: int
    path: Path
    skipped: list[dict[str, Any]] = field(default_factory=list)

    @property
    def parts(self) -> tuple[int, int]:
        lp = self.payload["log_parts"]
        return int(lp["metrics"]), int(lp["messages"])


def run_hashes(status: dict[str, Any]) -> set[str]:
    """Every config hash this run has had (the current one, and those before a --force)."""
    return {str(h) for h in [status.get("config_hash"), *status.get("config_history", [])] if h}


def newest_intact(run_dir: RunDir, status: dict[str, Any]) -> Restart:
    """The newest checkpoint that is intact and belongs to this run; RunDirError otherwise."""
    found = run_dir.checkpoints()
    if not found:
        raise RunDirError(f"{run_dir.path}: no checkpoint saved; nothing to resume from")
    skipped: list[dict[str, Any]] = []
    for round_, path in reversed(found):
        try:
            payload = read_checkpoint(path)
        except CheckpointDamaged as err:
            skipped.append({"checkpoint": path.name, "round": round_, "reason": str(err)})
            continue
        verify(run_dir, status, path, payload)
        return Restart(payload, int(payload["rounds_done"]), path, skipped)
    reasons = "; ".join(f"{s['checkpoint']} {s['reason']}" for s in skipped)
    raise RunDirError(f"{run_dir.path}: no intact checkpoint to resume from ({reasons})")


def verify(run_dir: RunDir, status: dict[str, Any], path: Path, payload: dict[str, Any]) -> None:
    """Refuse a checkpoint of another run or one whose offsets the run directory contradicts."""
    where = f"{run_dir.path}: checkpoints/{path.name}"
    run_id = payload.get("run_id")
    if run_id is not None and run_id != status.get("run_id"):
        raise RunDirError(f"{where} belongs to run {run_id!r}, not {status.get('run_id')!r}; "
                          "it was copied from another run")
    known = run_hashes(status)
    if known and str(payload.get("config_hash")) not in known:
        raise RunDirError(f"{where} was written with config hash {payload.get('config_hash')}, "
                          f"but this run's config hash is {status.get('config_hash')}; "
                          "it comes from another run or config")
    try:
        done = int(payload["rounds_done"])
        parts = {k: int(payload["log_parts"][k]) for k in ("metrics", "messages")}
    except (KeyError, TypeError, ValueError):
        raise RunDirError(f"{where}: rounds_done or log_parts is not a whole number") from None
    if done != round_of(path):
        raise RunDirError(f"{where}: says rounds_done {done} but its name says {round_of(path)}")
    for what, folder in (("metrics", run_dir.metrics_dir), ("messages", run_dir.messages_dir)):
        keep = parts[what]
        on_disk = part_numbers(folder)
        missing = sorted(set(range(keep)) - on_disk) if keep >= 0 else []
        if keep < 0 or missing:
            problem = f"{keep} is negative" if keep < 0 else f"parts {missing[:5]} are missing"
            raise RunDirError(f"{where}: log_parts.{what} says {keep} parts, but {problem}; the "
                              "checkpoint does not match this run directory")
    if parts["metrics"] > 0:
        last = run_dir.metrics_dir / f"part-{parts['metrics'] - 1:06d}.parquet"
        try:
            rounds = pq.read_table(last, columns=["round"]).column("round").to_pylist()
        except Exception as err:  # noqa: BLE001 - any unreadable part is a mismatch
            raise RunDirError(f"{where}: {last.name} cannot be read ({err})") from None
        if not rounds or max(rounds) != done - 1:
            raise RunDirError(f"{where}: rounds_done {done} but {last.name} ends at round "
                              f"{max(rounds) if rounds else 'none'}; log_parts do not match")
    elif done > 0:
        raise RunDirError(f"{where}: rounds_done {done} but log_parts.metrics is 0")


def round_of(path: Path) -> int:
    return int(path.stem.split("_")[1])


def part_numbers(folder: Path) -> set[int]:
    out = set()
    for p in folder.glob("part-*.parquet") if folder.is_dir() else []:
        with contextlib.suppress(IndexError, ValueError):
            out.add(int(p.stem.split("-")[1]))
    return out


def set_aside(path: Path) -> Path:
    """Rename a damaged checkpoint (and its checksum) out of the way, keeping the bytes."""
    target = path.with_name(path.name + ".damaged")
    path.replace(target)
    sidecar = checksum_path(path)
    if sidecar.exists():
        sidecar.replace(sidecar.with_name(sidecar.name + ".damaged"))
    return target


def drop_parts_after(run_dir: RunDir, parts: tuple[int, int]) -> None:
    """Remove log chunks written after the checkpoint we continue from (they will be replayed).
    Only ever called with the run lock held and offsets checked by :func:`verify`."""
    for folder, keep in ((run_dir.metrics_dir, parts[0]), (run_dir.messages_dir, parts[1])):
        if keep < 0:
            raise RunDirError(f"{run_dir.path}: refusing to drop log parts before {keep}")
        for number in part_numbers(folder):
            if number >= keep:
                (folder / f"part-{number:06d}.parquet").unlink()


def check_config(run_dir: RunDir, digest: str, force: bool) -> str:
    """The config hash the resumed run continues under; refuses an edited config unless forced."""
    status = run_dir.status()
    stored = status.get("config_hash")
    if stored is None or digest == stored:
        return digest
    if not force:
        raise RunDirError(
            f"{run_dir.path}: config.yaml has changed since the run started (config hash {digest}, "
            f"run.json has {stored}); restore it, or pass --force to continue with the new config"
        )
    history = [*status.get("config_history", []), stored]
    run_dir.update_status(config_hash=digest, config_history=history)
    run_dir.event("config_changed", old_hash=stored, new_hash=digest, forced=True)
    return digest


def stop_disk_full(run_dir: RunDir, rounds_done: int, err: OSError) -> RunDirError:
    """Mark a run that hit a full disk ``stopped`` with the reason (not ``running``), remove its
    temporary files, and say how to go on."""
    run_dir.remove_temporaries()
    where = err.filename or "a file"
    with contextlib.suppress(ValueError):
        where = str(Path(where).relative_to(run_dir.path))
    checkpoints = run_dir.checkpoints()
    last = checkpoints[-1][0] if checkpoints else None
    reason = f"disk full (ENOSPC) while writing {where}"
    try:
        run_dir.update_status(status="stopped", reason=reason)
    except OSError:  # no room for a new run.json: overwrite the old one where it lies
        with contextlib.suppress(OSError):
            run_dir.write_status_in_place({**run_dir.status(), "status": "stopped", "reason": reason})
    with contextlib.suppress(OSError):
        run_dir.event("stopped", reason=reason, rounds_done=rounds_done, last_checkpoint=last)
    return RunDirError(
        f"{run_dir.path}: {reason}; the run is stopped (last checkpoint: round {last}); free some "
        f"space and run `neurocomm resume {run_dir.path}`"
    )
