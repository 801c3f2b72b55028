"""Where the quickstart's time goes: py-spy (every process) and torch.profiler (local backend).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/profile_backends.py            # both backends
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/profile_backends.py --backend local --torch
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/profile_backends.py --phases   # timers, no py-spy

Needs py-spy in the venv (``.venv/bin/pip install py-spy``; not a project dependency). It runs
``configs/quickstart.yaml`` as shipped (evaluation every 20 rounds, message log, checkpoint every
100) for ``--rounds`` rounds, samples the driver and, for Ray, every shard actor with
``py-spy record --native``, and splits the busy samples of the round loop two ways:

* by phase: the shard's produce / listen / learn (and in them: game sampling, forward, backward,
  Adam), evaluation, message logging, the driver's round loop, Ray's own machinery;
* by kind of work: torch kernels (the math), torch dispatch/autograd bookkeeping (C++ frames
  around the kernels), Python (interpreter frames: neurocomm, torch.nn glue, numpy glue), Ray
  (its Python and its C++ core worker), libc (allocation, copies).

Samples of a thread that waits (a lock, an event, epoll: recognised by their frames, since
py-spy in native mode cannot tell by itself) are left out, and so are start-up and shut-down.
Native sampling stops the process at every sample (about 2x slower here): the shares are of busy
samples, not of wall time. ``--phases`` instead times each phase with ``perf_counter`` (ms per
round). Writes benchmarks/results/profile.json.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from harness import clean_scratch, probed  # noqa: E402

# The first matching Python frame, searched from the innermost out, names the phase.
PHASES = [
    ("game sampling (numpy)", ("game_batch", "_eval_batch", "AgentShard._batch", "Batch.concat")),
    ("per-edge noise generators", ("edge_noise", "GroupNoise.__call__", "torch_generator")),
    ("cohort set-up (stack parameters)", ("AgentShard._cohorts", "stacked_weights")),
    ("evaluation", ("AgentShard._evaluate", "AgentShard._greedy_tokens")),
    ("message logging", ("AgentShard._log",)),
    ("Adam step", ("Adam.step", "Optimizer.zero_grad", "_use_grad")),
    ("speaker backward", ("GumbelSoftmax.learn",)),
    ("listener forward+backward", ("GumbelSoftmax.listen",)),
    ("speaker forward", ("GumbelSoftmax.speak",)),
    ("shard produce (rest)", ("AgentShard.produce",)),
    ("shard listen (rest)", ("AgentShard.listen",)),
    ("shard learn (rest)", ("AgentShard.learn",)),
    ("checkpoint", ("_RoundLoop.checkpoint", "AgentShard.get_state")),
    ("driver: write logs", ("ChunkedTable.flush", "metric_rows", "RunDir.update_status")),
    ("driver: submit + wait", ("RayBackend.submit_round", "RayBackend.collect")),
    ("driver: round loop", ("_play_until_done_or_stopped",)),
]
KERNEL_HINTS = ("gemm", "blas", "mkl", "Vectorized", "vec::", "cpu_kernel", "_kernel", "vectorized_loop",
                "basic_loop", "reduce", "mkldnn", "dnnl", "zen", "exp", "log", "tanh", "sigmoid")


IDLE_LEAVES = ("epoll_wait", "pthread_cond_wait", "pthread_cond_timedwait", "futex", "sem_wait", "nanosleep",
               "__poll", "poll (", "select (", "clock_nanosleep", "sched_yield")
IDLE_FRAMES = ("Event.wait", "Condition.wait", "Thread.join", "Queue.get")


def is_idle(frames: list[str]) -> bool:
    """A thread waiting (for a task, a lock, an event): py-spy --native cannot tell by itself."""
    leaf = frames[-1]
    if any(h in leaf for h in IDLE_LEAVES):
        return True
    return "(libc.so" in leaf and any(f.startswith(IDLE_FRAMES) for f in frames)


def classify_kind(frames: list[str]) -> str:
    leaf = frames[-1]
    if "(libtorch" in leaf or "(libc10" in leaf:
        symbol = leaf.rsplit(" (", 1)[0]
        return "torch kernels" if any(h in symbol for h in KERNEL_HINTS) else "torch dispatch/autograd"
    if "ray/" in leaf or "_raylet" in leaf or "(libray" in leaf or "core_worker" in leaf:
        return "Ray"
    if "(libc.so" in leaf or "(libstdc++" in leaf or "(ld-linux" in leaf or "(libm" in leaf:
        return "libc (alloc, copies)"
    return "Python"


def classify_phase(frames: list[str]) -> str | None:
    python = [f for f in frames if ".py:" in f]
    for frame in reversed(python):
        for phase, keys in PHASES:
            if frame.startswith(keys):
                return phase
    if any(("ray/" in f or "_raylet" in f) for f in python):
        return "Ray machinery (serialise, schedule, transfer)"
    return None  # start-up, imports, shutdown: not part of the round loop


def summarise(raw_files: dict[str, Path]) -> dict[str, Any]:
    """Busy samples per process role, by phase and by kind of work (percent of the total)."""
    phases: collections.Counter[str] = collections.Counter()
    kinds: collections.Counter[str] = collections.Counter()
    roles: collections.Counter[str] = collections.Counter()
    for role, path in raw_files.items():
        if not path.exists():
            continue
        for line in path.read_text(errors="replace").splitlines():
            stack, _, count = line.rpartition(" ")
            if not count.isdigit():
                continue
            frames = stack.split(";")
            if is_idle(frames):
                continue
            phase = classify_phase(frames)
            if phase is None:
                continue
            n = int(count)
            phases[phase] += n
            roles[role] += n
            kind = classify_kind(frames)
            if phase.startswith("Ray"):
                kind = "Ray"
            kinds[kind] += n
    total = sum(phases.values()) or 1
    pct = lambda c: {k: round(100 * v / total, 1) for k, v in c.most_common()}  # noqa: E731
    return {"samples": total, "by_phase": pct(phases), "by_kind": pct(kinds), "by_process": pct(roles)}


def quickstart(rounds: int, backend: str, log_dir: str) -> Any:
    from neurocomm.platform.config import load_config

    return load_config(REPO / "configs" / "quickstart.yaml", [
        f"training.rounds={rounds}", f"runtime.backend={backend}", f"logging.dir={log_dir}",
        "logging.progress=false",
    ])


def spy(pid: int, out: Path, rate: int) -> subprocess.Popen:
    exe = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or "py-spy"
    return subprocess.Popen([exe, "record", "--pid", str(pid), "--native", "-r", str(rate), "-f", "raw",
                             "-o", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def profile_backend(backend: str, rounds: int, rate: int, work: Path) -> dict[str, Any]:
    """Run the quickstart under py-spy: the driver, and each shard actor from its first round."""
    from neurocomm.platform.runner import run

    if backend == "ray":
        from neurocomm.platform.raysession import ensure_ray

        ensure_ray(None, object_store_mb=256)
    run(quickstart(3, backend, str(work / "warm")))  # one-off imports out of the way
    spies: list[subprocess.Popen] = []
    raw: dict[str, Path] = {}

    def spy_on_actors(built: Any) -> None:
        if built.name != "ray":
            return
        for i, place in enumerate(built.placement()):
            raw[f"actor{i}"] = work / f"{backend}-actor{i}.txt"
            spies.append(spy(int(place["pid"]), raw[f"actor{i}"], rate))

    raw["driver"] = work / f"{backend}-driver.txt"
    spies.append(spy(os.getpid(), raw["driver"], rate))
    time.sleep(1.0)  # py-spy attaches
    with probed(on_start=spy_on_actors) as probe:
        start = time.perf_counter()
        run(quickstart(rounds, backend, str(work / "runs")))
        wall = time.perf_counter() - start
    for p in spies:  # the actors' spies end with their process; the driver's needs a signal
        if p.poll() is None:
            p.send_signal(2)
    for p in spies:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
    out = summarise(raw)
    rounds_done = len(probe.done)
    out.update(backend=backend, rounds=rounds_done, wall_s=round(wall, 2),
               rounds_per_s=round((rounds_done - 1) / (probe.done[-1] - probe.done[0]), 2))
    return out


def torch_profile(rounds: int, work: Path) -> list[dict[str, Any]]:
    """torch.profiler over the local quickstart: the ops with the most self CPU time."""
    from torch.profiler import ProfilerActivity, profile

    from neurocomm.platform.runner import run

    run(quickstart(3, "local", str(work / "warm-torch")))
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        run(quickstart(rounds, "local", str(work / "torch")))
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events) or 1
    top = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:15]
    return [{"op": e.key, "calls": e.count, "self_cpu_ms": round(e.self_cpu_time_total / 1e3, 1),
             "share_pct": round(100 * e.self_cpu_time_total / total, 1)} for e in top]


def _timed(owner: Any, name: str, key: str, acc: collections.Counter[str]) -> Callable[[], None]:
    """Wrap ``owner.name`` to add its wall time to ``acc[key]``; → a function that unwraps it."""
    original = owner.__dict__[name]
    func = original.__func__ if isinstance(original, staticmethod | classmethod) else original

    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return func(*args, **kwargs)
        finally:
            acc[key] += time.perf_counter() - start

    setattr(owner, name, staticmethod(timed) if isinstance(original, staticmethod) else timed)
    return lambda: setattr(owner, name, original)


def phase_times(rounds: int) -> dict[str, dict[str, float]]:
    """Milliseconds per round in each phase (perf_counter around the functions; nested phases
    are included in their parents): the local backend on a pair and on the quickstart ring, and
    the reference loop on a pair. No sampling, so no sampling bias, but the timers' own cost."""
    import reference_pytorch as ref
    import torch
    from harness import referential_config, timed_run

    from neurocomm.agents import rules
    from neurocomm.platform import games, shard

    out: dict[str, dict[str, float]] = {}
    acc: collections.Counter[str] = collections.Counter()
    wraps = [(shard.AgentShard, "produce", "produce"), (shard.AgentShard, "listen", "listen"),
             (shard.AgentShard, "learn", "learn"),
             (shard.AgentShard, "_cohorts", "  cohorts (stack parameters)"),
             (games, "game_batch", "  game sampling (numpy)"), (games, "edge_noise", "  noise generators"),
             (rules.GumbelSoftmax, "speak", "  speaker forward"),
             (rules.GumbelSoftmax, "listen", "  listener forward+backward"),
             (rules.GumbelSoftmax, "learn", "  speaker backward"), (torch.optim.Adam, "step", "  Adam step")]
    timed_run(referential_config(n=2, rounds=3))
    for label, kw in (("local pair", dict(n=2)), ("local quickstart ring (4)", dict(n=4))):
        undo = [_timed(owner, name, key, acc) for owner, name, key in wraps]
        acc.clear()
        try:
            r = timed_run(referential_config(rounds=rounds, **kw))
        finally:
            for u in reversed(undo):
                u()
        total = 1000 * r["train_s"] / r["rounds"]
        phases = 1000 * (acc["produce"] + acc["listen"] + acc["learn"]) / r["rounds"]
        out[label] = {"round (ms)": total, **{k: 1000 * v / r["rounds"] for k, v in acc.items()},
                      "runner + rest": total - phases}
    undo = [_timed(ref.Agent, "speak", "speaker forward", acc),
            _timed(ref.Agent, "hear", "listener forward", acc),
            _timed(ref, "sample_games", "game sampling", acc), _timed(ref, "listener_loss", "loss", acc),
            _timed(torch.Tensor, "backward", "backward (both roles)", acc),
            _timed(torch.optim.Adam, "step", "Adam step", acc)]
    acc.clear()
    try:
        pair = ref.Pair(2)
        start = time.perf_counter()
        for _ in range(rounds):
            pair.step(128)
        total = 1000 * (time.perf_counter() - start) / rounds
    finally:
        for u in reversed(undo):
            u()
    out["reference pair"] = {"round (ms)": total, **{k: 1000 * v / rounds for k, v in acc.items()}}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["local", "ray", "both"], default="both")
    parser.add_argument("--rounds", type=int, default=150)
    parser.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    parser.add_argument("--torch", action="store_true", help="also run torch.profiler (local)")
    parser.add_argument("--phases", action="store_true",
                        help="only the perf_counter breakdown per phase (no py-spy needed)")
    parser.add_argument("--out", default=str(HERE / "results" / "profile.json"))
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="ncprof-"))
    results: dict[str, Any] = {}
    if args.phases:
        results["phases_ms_per_round"] = phase_times(args.rounds)
        for label, parts in results["phases_ms_per_round"].items():
            print(f"\n{label}")
            for key, ms in parts.items():
                print(f"  {key:<36} {ms:7.2f}")
        clean_scratch()
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=1))
        return 0
    for backend in ["local", "ray"] if args.backend == "both" else [args.backend]:
        results[backend] = profile_backend(backend, args.rounds, args.rate, work)
        print(json.dumps(results[backend], indent=1), flush=True)
    if args.torch:
        results["torch_ops"] = torch_profile(min(args.rounds, 30), work)
        for row in results["torch_ops"]:
            print(f"{row['op']:<40} {row['calls']:>7} {row['self_cpu_ms']:>9.1f} ms "
                  f"{row['share_pct']:>5.1f}%")
    for runs in ("warm", "runs", "warm-torch", "torch"):  # run directories; the py-spy files stay
        shutil.rmtree(work / runs, ignore_errors=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1))
    print(f"wrote {args.out} (py-spy samples in {work})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
