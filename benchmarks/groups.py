"""The benchmark groups. Each returns rows (plain dicts) for the table and the JSON.

A row has a stable ``key`` (``group/case``) that the targets in report.py look up. neurocomm
rows come from :func:`harness.timed_run` (see its docstring for what each time covers).
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import egg_style
import numpy as np
import reference_pytorch as ref
from comparisons import pair_time_to_target, run_populations
from harness import (
    proc_status,
    referential_config,
    reset_peak_rss,
    state_bytes_per_agent,
    timed_run,
)

REPO = Path(__file__).resolve().parent.parent
KEEP = ("backend", "agents_per_actor", "actors", "batch_size", "rounds", "games_per_round", "games_per_s",
        "rounds_per_s", "games_per_cpu_s", "cores_busy", "wall_s", "setup_s", "train_s",
        "checkpoint_state_s", "driver_peak_rss_mb", "driver_growth_mb", "actors_rss_mb",
        "actors_peak_rss_mb", "actors_pss_mb")


@dataclass(frozen=True)
class Group:
    name: str
    title: str
    needs_ray: bool
    run: Callable[[bool], list[dict[str, Any]]]


def nc_row(group: str, case: str, agents: int, result: dict[str, Any], **extra: Any) -> dict[str, Any]:
    row = {"key": f"{group}/{case}", "group": group, "case": case, "agents": agents}
    row.update({k: result[k] for k in KEEP if k in result})
    if "actors_rss_mb" in result:
        row["actors_rss_mb_per_agent"] = result["actors_rss_mb"] / agents
        row["actors_pss_mb_per_agent"] = result["actors_pss_mb"] / agents
    row.update(extra)
    return row


def ref_row(group: str, case: str, result: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"key": f"{group}/{case}", "group": group, "case": case, "backend": "reference",
            "agents": 2, "batch_size": result["batch_size"], "rounds": result["rounds"],
            "games_per_round": result["batch_size"] * result["directions"],
            "games_per_s": result["games_per_s"], "rounds_per_s": result["rounds_per_s"],
            "games_per_cpu_s": result["games_per_s"], "cores_busy": 1.0,
            "wall_s": result["wall_s"], "driver_peak_rss_mb": proc_status().get("VmHWM", math.nan), **extra}


def best(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The repeat with the most games/s (the machine is shared: slow repeats are interference),
    with the spread of all repeats."""
    top = max(results, key=lambda r: r["games_per_s"])
    rates = [r["games_per_s"] for r in results]
    return {**top, "repeats": len(results), "games_per_s_min": min(rates)}


# ---------------------------------------------------------------------- pair: local vs reference


def run_pair(quick: bool) -> list[dict[str, Any]]:
    """One pair, batch 128: the reference loop and the local backend, interleaved repeats."""
    rounds, repeats = (30, 1) if quick else (250, 3)
    out: dict[str, list[dict[str, Any]]] = {k: [] for k in ("ref2", "nc2", "ref1", "nc1", "egg")}
    for _ in range(repeats):
        out["egg"].append(egg_style.pair_throughput(128, 2 * rounds))
        out["ref2"].append(ref.throughput(128, rounds, directions=2))
        out["nc2"].append(timed_run(referential_config(n=2, rounds=rounds)))
        out["ref1"].append(ref.throughput(128, rounds, directions=1))
        out["nc1"].append(timed_run(referential_config(directed_pair=True, rounds=rounds)))
    ref2, nc2, ref1, nc1, egg = (best(out[k]) for k in ("ref2", "nc2", "ref1", "nc1", "egg"))
    sizes = state_bytes_per_agent(nc2["run_dir"])
    return [
        ref_row("pair", "EGG-style loop (written in benchmarks/), one way", egg, repeats=repeats,
                backend="egg-style", vs_reference=egg["games_per_s"] / ref2["games_per_s"]),
        ref_row("pair", "reference, both ways", ref2, repeats=repeats),
        nc_row("pair", "local, both ways", 2, nc2, repeats=repeats,
               vs_reference=nc2["games_per_s"] / ref2["games_per_s"],
               vs_egg=nc2["games_per_s"] / egg["games_per_s"], **sizes),
        ref_row("pair", "reference, one way", ref1, repeats=repeats),
        nc_row("pair", "local, one way", 2, nc1, repeats=repeats,
               vs_reference=nc1["games_per_s"] / ref1["games_per_s"]),
    ]


# ---------------------------------------------------------------------- backends on the quickstart


def run_backends(quick: bool) -> list[dict[str, Any]]:
    """The quickstart population (4 agents on a ring, batch 128) on each backend."""
    rounds = 10 if quick else 100
    rows, local = [], None
    for backend, per_actor in [("local", 1), ("ray", 1), ("ray", 2), ("ray", 4)]:
        if quick and per_actor == 2:
            continue
        r = timed_run(referential_config(n=4, rounds=rounds, backend=backend, agents_per_actor=per_actor))
        case = "local" if backend == "local" else f"ray, {per_actor} agent(s)/actor"
        local = local or r
        rows.append(nc_row("backends", case, 4, r, vs_local=r["games_per_s"] / local["games_per_s"]))
    return rows


# ---------------------------------------------------------------------- population size


POPULATION_FULL = {  # N: (rounds, [agents_per_actor for ray; 1 = one actor per agent])
    2: (100, [1]),
    8: (40, [1, 4]),
    32: (12, [16]),
    128: (4, [64, 32]),
    512: (3, [128]),
}
POPULATION_QUICK: dict[int, tuple[int, list[int]]] = {2: (10, []), 8: (5, [4]), 32: (3, [])}


def run_population(quick: bool) -> list[dict[str, Any]]:
    """Rings of N agents (2N directed edges), batch 128: local, sharded Ray, one actor per agent."""
    rows = []
    for n, (rounds, layouts) in (POPULATION_QUICK if quick else POPULATION_FULL).items():
        r = timed_run(referential_config(n=n, rounds=rounds))
        rows.append(nc_row("population", f"N={n} local", n, r))
        for per_actor in layouts:
            r = timed_run(referential_config(n=n, rounds=rounds, backend="ray", agents_per_actor=per_actor))
            label = "1 actor/agent" if per_actor == 1 else f"{per_actor} agents/actor"
            rows.append(nc_row("population", f"N={n} ray, {label}", n, r))
    return rows


# ---------------------------------------------------------------------- batch size


def run_batch(quick: bool) -> list[dict[str, Any]]:
    """One pair (both ways), local backend and reference, batch 32 ... 1024 (best of 2, interleaved)."""
    sizes = (32, 1024) if quick else (32, 64, 128, 256, 512, 1024)
    games, repeats = (4_000, 1) if quick else (30_000, 2)
    rows = []
    for b in sizes:
        rounds = max(5 if quick else 20, games // (2 * b))
        runs: list[tuple[dict[str, Any], dict[str, Any]]] = []
        for _ in range(repeats):
            runs.append((ref.throughput(b, rounds, directions=2),
                         timed_run(referential_config(n=2, rounds=rounds, batch_size=b))))
        rr, nr = best([r for r, _ in runs]), best([n for _, n in runs])
        rows.append(ref_row("batch", f"B={b} reference", rr))
        rows.append(nc_row("batch", f"B={b} local", 2, nr,
                           vs_reference=nr["games_per_s"] / rr["games_per_s"]))
    return rows


# ---------------------------------------------------------------------- naming game


def run_naming(quick: bool) -> list[dict[str, Any]]:
    """The naming game to consensus on complete graphs (``NamingGame.run`` + ``Adjacency.complete``)."""
    from neurocomm.scenarios.naming_game import NamingGame
    from neurocomm.scenarios.naming_pairs import Adjacency

    plan = [(1_000, 1)] if quick else [(1_000, 3), (10_000, 2)]
    game, rows = NamingGame(), []
    for n, runs in plan:
        times, t_conv = [], []
        reset_peak_rss()
        for run in range(runs):
            rng = np.random.default_rng(np.random.SeedSequence(0, spawn_key=(n, run)))
            start = time.perf_counter()
            result = game.run(Adjacency.complete(n), rng)
            times.append(time.perf_counter() - start)
            t_conv.append(result.t_conv)
        mean_s, mean_t = statistics.mean(times), statistics.mean(t_conv)
        rows.append({"key": f"naming/N={n}", "group": "naming", "case": f"N={n} complete graph",
                     "backend": "numpy", "agents": n, "runs": runs, "wall_s": mean_s,
                     "max_wall_s": max(times), "t_conv_mean": mean_t, "t_conv_over_n_1_5": mean_t / n**1.5,
                     "interactions_per_s": mean_t / mean_s,
                     "driver_peak_rss_mb": proc_status().get("VmHWM", math.nan)})
    return rows


# ---------------------------------------------------------------------- learning speed


def run_learning(quick: bool) -> list[dict[str, Any]]:
    """Time to 0.9 greedy success of the quickstart (4 agents), local and Ray as shipped
    (``training.stop_at: 0.9``, evaluated every 5 rounds; the time is the ``elapsed_s`` of the
    round that reached it, from the start of ``run(cfg)``, actors' start-up included)."""
    from comparisons import learning_row, neurocomm_until

    cap = 5.0 if quick else 120.0
    rows = []
    for backend, per_actor in (("local", 1),) if quick else (("local", 1), ("ray", 2)):
        t = neurocomm_until(referential_config(n=4, backend=backend, agents_per_actor=per_actor), cap)
        games = t["rounds"] * 8 * 128
        case = f"quickstart {backend} (4 agents)"
        rows.append(learning_row(case, "neurocomm", 0, t["reached"], t["rounds"], games, t["seconds"],
                                 t["seconds"], t["success"], group="learning"))
    return rows


# population runs last: the allocator keeps what its 512-agent runs freed, which would inflate
# the driver's peak RSS of every group after it
GROUPS = [
    Group("pair", "one pair: local backend vs the plain-PyTorch reference", False, run_pair),
    Group("backends", "the quickstart population on each backend", True, run_backends),
    Group("batch", "batch size on one pair", False, run_batch),
    Group("naming", "the naming game to consensus", False, run_naming),
    Group("timeto", "one pair: time to 0.9 greedy success, each run a fresh process", False,
          pair_time_to_target),
    Group("learning", "the quickstart: time to 0.9 greedy success", True, run_learning),
    Group("populations", "16 and 64 agents: the EGG-style population loop vs neurocomm", True,
          run_populations),
    Group("population", "population size (rings), local vs Ray", True, run_population),
]
