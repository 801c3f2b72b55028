"""The benchmark groups. Each returns rows (plain dicts) for the table and the JSON.

A row has a stable ``key`` (``group/case``) that the targets in report.py look up. neurocomm
rows come from :func:`harness.timed_run` (see its docstring for what each time covers).
"""

from __future__ import annotations

import math
import os
import signal
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import reference_pytorch as ref
from harness import (
    proc_status,
    referential_config,
    reset_peak_rss,
    scratch_dir,
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
    out: dict[str, list[dict[str, Any]]] = {k: [] for k in ("ref2", "nc2", "ref1", "nc1")}
    for _ in range(repeats):
        out["ref2"].append(ref.throughput(128, rounds, directions=2))
        out["nc2"].append(timed_run(referential_config(n=2, rounds=rounds)))
        out["ref1"].append(ref.throughput(128, rounds, directions=1))
        out["nc1"].append(timed_run(referential_config(directed_pair=True, rounds=rounds)))
    ref2, nc2, ref1, nc1 = (best(out[k]) for k in ("ref2", "nc2", "ref1", "nc1"))
    sizes = state_bytes_per_agent(nc2["run_dir"])
    return [
        ref_row("pair", "reference, both ways", ref2, repeats=repeats),
        nc_row("pair", "local, both ways", 2, nc2, repeats=repeats,
               vs_reference=nc2["games_per_s"] / ref2["games_per_s"], **sizes),
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


def quickstart_config(backend: str, eval_every: int, rounds: int | None) -> dict[str, Any]:
    """configs/quickstart.yaml as shipped, but evaluated every ``eval_every`` rounds."""
    from neurocomm.platform.config import load_mapping

    data = load_mapping(REPO / "configs" / "quickstart.yaml")
    data["runtime"] = {**data["runtime"], "backend": backend}
    data["logging"] = {**data["logging"], "eval_every": eval_every, "progress": False,
                       "dir": scratch_dir()}
    if rounds is not None:
        data["training"] = {**data["training"], "rounds": rounds}
    return data


def timed_until(data: dict[str, Any], threshold: float) -> dict[str, Any]:
    """Run until the mean greedy success over all edges reaches ``threshold`` (then stop the
    run the way Ctrl-C does: after the rounds in flight, with a checkpoint)."""
    seen: dict[str, Any] = {}

    def on_report(index: int, report: Any) -> None:
        values = [s.eval_success for s in report.edge_stats.values() if not math.isnan(s.eval_success)]
        if values:
            seen["last"] = float(np.mean(values))
        if values and "round" not in seen and np.mean(values) >= threshold:
            seen["round"] = index
            os.kill(os.getpid(), signal.SIGINT)

    result = timed_run(data, on_report)
    probe = result.pop("_probe")
    reached = "round" in seen
    at = probe.done[seen["round"]] if reached else math.nan  # when that round's work was done
    return {**result, "reached": reached, "rounds_to_target": seen.get("round", math.nan),
            "seconds_to_target": at - probe.first_submit if reached else math.nan,
            "seconds_to_target_with_setup": (at - probe.first_submit + result["setup_s"])
            if reached else math.nan, "eval_success": seen.get("last", math.nan)}


def learning_row(case: str, agents: int, r: dict[str, Any], games_per_round: float) -> dict[str, Any]:
    return {"key": f"learning/{case}", "group": "learning", "case": case, "backend": r.get("backend"),
            "agents": agents, "reached": r["reached"], "rounds_to_target": r["rounds_to_target"],
            "games_to_target": r["rounds_to_target"] * games_per_round,
            "seconds_to_target": r["seconds_to_target"],
            "seconds_to_target_with_setup": r.get("seconds_to_target_with_setup", r["seconds_to_target"]),
            "eval_success": r["eval_success"]}


def run_learning(quick: bool) -> list[dict[str, Any]]:
    """Wall time to 0.9 greedy success: the reference pair, a neurocomm pair, the quickstart."""
    threshold, eval_every = 0.9, 5
    cap = 40 if quick else None
    rows = []
    refs = [ref.time_to_success(threshold, eval_every, max_steps=cap or 1200, seed=s)
            for s in ((0,) if quick else (0, 1, 2))]
    for r in refs:
        r.update(rounds_to_target=r["rounds"] if r["reached"] else math.nan,
                 seconds_to_target=r["wall_s"] if r["reached"] else math.nan, eval_success=r["success"],
                 backend="reference")
        rows.append(learning_row(f"reference pair, seed {r['seed']}", 2, r, 256))
    pair = referential_config(n=2, rounds=cap or 1200, eval_every=eval_every)
    rows.append(learning_row("local pair (quickstart agents)", 2, timed_until(pair, threshold), 256))
    for backend in ("local",) if quick else ("local", "ray"):
        r = timed_until(quickstart_config(backend, eval_every, cap), threshold)
        rows.append(learning_row(f"quickstart {backend} (4 agents)", 4, r, 8 * 128))
    return rows


# population runs last: the allocator keeps what its 512-agent runs freed, which would inflate
# the driver's peak RSS of every group after it
GROUPS = [
    Group("pair", "one pair: local backend vs the plain-PyTorch reference", False, run_pair),
    Group("backends", "the quickstart population on each backend", True, run_backends),
    Group("batch", "batch size on one pair", False, run_batch),
    Group("naming", "the naming game to consensus", False, run_naming),
    Group("learning", "time to 0.9 greedy success", True, run_learning),
    Group("population", "population size (rings), local vs Ray", True, run_population),
]
