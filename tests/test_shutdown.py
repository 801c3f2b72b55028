"""Nothing of a run outlives its driver: SIGKILL the driver of a real CLI run on an embedded
Ray session and every actor and Ray process of that session is gone seconds later.

The CLI runs under a small supervisor that makes itself a child subreaper (Linux), so the
session's orphaned processes are re-parented to it and can be counted after the driver died.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import tiny_config

SUPERVISOR = r'''
import ctypes, json, os, signal, subprocess, sys, time

PR_SET_CHILD_SUBREAPER = 36
assert ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
log = open(os.environ["DRIVER_LOG"], "wb")
driver = subprocess.Popen(sys.argv[1:], stdout=log, stderr=subprocess.STDOUT)
driver.wait()

def descendants():
    parent = {}
    for name in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] not in (b"Z", b"X"):
            parent[int(name)] = int(fields[1])
    me, out = os.getpid(), {}
    for pid in parent:
        p = pid
        while p in parent and p != me and p > 1:
            p = parent[p]
        if p == me and pid != me:
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as fh:
                    out[pid] = fh.read().replace(b"\0", b" ").decode(errors="replace")[:80]
            except OSError:
                continue
    return out

seen, left = {}, {}
deadline = time.monotonic() + 20
while time.monotonic() < deadline:
    while True:  # reap the orphans that died, or they linger as zombies
        try:
            if os.waitpid(-1, os.WNOHANG)[0] == 0:
                break
        except ChildProcessError:
            break
    left = descendants()
    seen.update(left)
    if not left:
        break
    time.sleep(0.2)
for pid in left:  # never leave them behind, whatever the verdict
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
print(json.dumps({"rc": driver.returncode, "seen": seen, "left": left}))
'''


def test_sigkilled_driver_leaves_no_ray_process(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path, topology={"generator": "cycle_graph", "params": {"n": 3}},
                      training={"rounds": 30, "batch_size": 32},
                      runtime={"backend": "ray", "agent_resources": {"num_cpus": 0.1}})
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    exe = str(Path(sys.executable).parent / "neurocomm")
    log = tmp_path / "driver.log"
    env = {**os.environ, "NEUROCOMM_FAULT": "driver:5", "DRIVER_LOG": str(log)}  # SIGKILL before round 5
    out = subprocess.run([sys.executable, "-c", SUPERVISOR, exe, "run", str(path)],
                         capture_output=True, text=True, timeout=400, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    verdict = json.loads(out.stdout.strip().splitlines()[-1])
    assert verdict["rc"] == -9, log.read_text(errors="replace")[-3000:]
    (run_dir,) = list((tmp_path / "runs").iterdir())
    events = [json.loads(x) for x in (run_dir / "events.log").read_text().splitlines()]
    actors = {e["pid"] for e in events if e["event"] == "placement"}
    assert len(actors) == 3  # the session really ran its actors
    assert verdict["left"] == {}, f"still alive 20 s after the driver died: {verdict['left']}"
    for pid in actors:  # not re-parented elsewhere either
        cmdline = Path(f"/proc/{pid}/cmdline")
        assert not cmdline.exists() or b"AgentShard" not in cmdline.read_bytes()
