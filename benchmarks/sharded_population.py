"""One sharded population on the embedded Ray: wall time, rounds/s, games/s and peak memory.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/sharded_population.py --agents 256 --per-actor 128

Wall time includes starting the actors and the two checkpoints every run writes (round 0 and
the last). Memory: the peak RSS (VmHWM) of each shard actor, summed, sampled every 0.5 s.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

from neurocomm.platform.config import build_config  # noqa: E402
from neurocomm.platform.raysession import ensure_ray  # noqa: E402
from neurocomm.platform.runner import run  # noqa: E402


def peak_rss_mb(status_text: str) -> float:
    for line in status_text.splitlines():
        if line.startswith("VmHWM"):
            return int(line.split()[1]) / 1024
    return 0.0


def shard_actors_peak_mb() -> float:
    """Sum of the peak RSS of every process running a shard actor."""
    total = 0.0
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (proc / "cmdline").read_text()
            status = (proc / "status").read_text()
        except OSError:
            continue
        if "AgentShard" in cmdline:
            total += peak_rss_mb(status)
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=256)
    parser.add_argument("--per-actor", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    ensure_ray(None, object_store_mb=256)
    n = args.agents
    cfg = build_config({
        "name": f"population{n}", "seed": 0,
        "topology": {"generator": "cycle_graph", "params": {"n": n}},
        "population": {"vocab_size": 10, "max_len": 3,
                       "agent": {"lr": 0.003, "params": {"hidden_size": 64}}},
        "scenario": {"name": "referential",
                     "params": {"n_attributes": 3, "n_values": 4, "n_distractors": 3}},
        "training": {"rounds": args.rounds, "batch_size": args.batch_size, "rule": "gumbel"},
        "runtime": {"backend": "ray", "agents_per_actor": args.per_actor},
        "logging": {"dir": tempfile.mkdtemp(prefix="neurocomm-pop-"), "progress": False,
                    "eval_every": 0, "messages_every": 0},
    })
    peak, done = [0.0], threading.Event()

    def watch() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], shard_actors_peak_mb())
            time.sleep(0.5)

    watcher = threading.Thread(target=watch)
    watcher.start()
    start = time.perf_counter()
    result = run(cfg)
    wall = time.perf_counter() - start
    done.set()
    watcher.join()
    driver = peak_rss_mb(Path("/proc/self/status").read_text())
    games = args.rounds * 2 * n * args.batch_size
    print(f"N={n}, {args.per_actor} agents per actor, {args.rounds} rounds, batch {args.batch_size}: "
          f"wall {wall:.1f} s (actor start and 2 checkpoints included), {args.rounds / wall:.2f} rounds/s, "
          f"{games / wall:.0f} games/s; shard actors' peak RSS {peak[0]:.0f} MB "
          f"({peak[0] / n:.1f} MB/agent); driver peak {driver:.0f} MB; status {result.status}")


if __name__ == "__main__":
    main()
