"""neurocomm's benchmark suite: one table, one JSON file, the measured part of docs/performance.md.

    make bench                                              # everything (about 15 minutes, 2 cores)
    .venv/bin/python benchmarks/run_all.py --quick          # a few-minute smoke run
    .venv/bin/python benchmarks/run_all.py --only pair,naming
    .venv/bin/python benchmarks/run_all.py --list

Groups, in the order they run: pair (local backend vs the plain-PyTorch reference and the
EGG-style pair of egg_style.py), backends (the quickstart population on local / Ray / sharded
Ray), batch (32 ... 1024 on a pair), naming (the naming game at N = 1,000 and 10,000), timeto
(the pair's time to 0.9 greedy success, five seeds, each run a fresh process), learning (the
quickstart's time to 0.9), populations (16 and 64 agents, ring and small world, against the
EGG-style population loop), population (2 ... 512 agents; last, so that its memory does not
inflate the driver's peak of the others). Before them: start-up figures (the first run in a
process, Ray's start-up, start to the first round on embedded Ray in a fresh process). The
targets (targets.py) are printed last, each with measured / wanted / holds.

Results: benchmarks/results/latest.json (git-ignored). A full run of every group also rewrites
the generated block of docs/performance.md (``--doc PATH`` writes it for any run, ``--no-doc``
never). What every figure covers is in benchmarks/harness.py and docs/performance.md.
"""

from __future__ import annotations

import os

for _key, _value in {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "RAY_USAGE_STATS_ENABLED": "0",
                     "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}.items():
    os.environ.setdefault(_key, _value)

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import shlex  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import report  # noqa: E402
import targets  # noqa: E402
import torch  # noqa: E402
from groups import GROUPS  # noqa: E402
from harness import (  # noqa: E402
    clean_scratch,
    memory_of,
    proc_status,
    ray_system_pids,
    referential_config,
    timed_run,
)

torch.set_num_threads(1)


def machine() -> dict[str, Any]:
    def sh(cmd: str) -> str:
        try:
            return subprocess.run(shlex.split(cmd), capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    lscpu = sh("lscpu")
    model = next((ln.split(":", 1)[1].strip() for ln in lscpu.splitlines()
                  if ln.startswith("Model name")), "?")
    mem_gb = next((int(ln.split()[1]) / 2**20 for ln in Path("/proc/meminfo").read_text().splitlines()
                   if ln.startswith("MemTotal")), math.nan)
    import ray

    # plain `nproc` honours OMP_NUM_THREADS (set to 1 here), so ask for every processor
    return {"nproc": sh("nproc --all") or str(os.cpu_count()),
            "lscpu_head": "\n".join(lscpu.splitlines()[:10]), "cpu_model": model,
            "mem_gb": round(mem_gb, 1), "python": platform.python_version(), "torch": torch.__version__,
            "ray": ray.__version__, "gpu": torch.cuda.is_available(), "host": platform.node()}


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def startup_rows(need_ray: bool) -> list[dict[str, Any]]:
    """The first neurocomm run in a process (one-off lazy imports), then Ray's start-up."""
    rows = []
    cold = timed_run(referential_config(n=2, rounds=3))
    warm = timed_run(referential_config(n=2, rounds=3))
    rows.append({"key": "startup/first run", "group": "startup",
                 "case": "first local run in a process (3 rounds)", "seconds": cold["wall_s"],
                 "note": f"the same run again: {warm['wall_s']:.2f} s (lazy imports on first use: "
                 "torch.optim pulls in torch._dynamo)"})
    if need_ray:  # first, in a process of its own, before this one starts Ray
        first = json.loads(subprocess.run([sys.executable, str(HERE / "first_round.py")], capture_output=True,
                                          text=True, timeout=300, check=True).stdout)
        rows.append({"key": "startup/first round on Ray", "group": "startup",
                     "case": "quickstart on embedded Ray: run() to the end of round 1 (fresh process)",
                     "seconds": first["run_to_first_round_s"],
                     "note": "ray.init + 2 actors + round-0 checkpoint + round 1; from process start "
                             f"{first['process_to_first_round_s']:.2f} s "
                             f"(imports {first['imports_s']:.2f} s)"})
        from neurocomm.platform.raysession import ensure_ray

        start = time.perf_counter()
        ensure_ray(None, object_store_mb=256)
        took = time.perf_counter() - start
        system = memory_of(ray_system_pids())
        rows.append({"key": "startup/ray", "group": "startup", "case": "ray.init (embedded, loopback)",
                     "seconds": took, "rss_mb": system["rss_mb"], "pss_mb": system["pss_mb"],
                     "note": f"{system['processes']} Ray system processes (raylet, GCS, ...)"})
        one = timed_run(referential_config(n=2, rounds=3, backend="ray"))
        rows.append({"key": "startup/actors", "group": "startup", "case": "run set-up with 2 actors (Ray)",
                     "seconds": one["setup_s"], "rss_mb": one["actors_rss_mb"] / 2,
                     "pss_mb": one["actors_pss_mb"] / 2,
                     "note": "run directory + actors started + round-0 checkpoint; RSS per actor"})
    rows.append({"key": "startup/driver", "group": "startup", "case": "driver process now",
                 "rss_mb": proc_status().get("VmRSS", math.nan), "pss_mb": math.nan,
                 "note": "torch + neurocomm" + (" + Ray client" if need_ray else "")})
    return rows


def main(argv: list[str] | None = None) -> int:
    names = [g.name for g in GROUPS]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="a ~1-minute smoke run (few rounds, small sizes)")
    parser.add_argument("--only", action="append", default=[],
                        help=f"comma-separated groups to run (default: all): {', '.join(names)}")
    parser.add_argument("--out", default=str(HERE / "results" / "latest.json"))
    parser.add_argument("--doc", help="write the measured block of this Markdown file "
                        "(default: docs/performance.md after a full run of every group)")
    parser.add_argument("--no-doc", action="store_true")
    parser.add_argument("--list", action="store_true", help="list the groups and exit")
    parser.add_argument("--from-json", metavar="PATH",
                        help="measure nothing: print and write the doc from an earlier results file")
    args = parser.parse_args(argv)
    if args.list:
        for g in GROUPS:
            print(f"{g.name:<11} {g.title}")
        return 0
    if args.from_json:  # the targets are worked out again from the rows, as targets.py says now
        data = json.loads(Path(args.from_json).read_text())
        data["targets"] = targets.targets(data["rows"])
        print(report.targets_table(data["targets"], markdown=False))
        write_doc(args.doc or str(HERE.parent / "docs" / "performance.md"), data)
        return 0
    only = [x for item in args.only for x in item.split(",") if x]
    unknown = sorted(set(only) - set(names))
    if unknown:
        parser.error(f"--only: unknown group(s) {', '.join(unknown)}; one of {', '.join(names)}")
    selected = [g for g in GROUPS if not only or g.name in only]

    began = time.perf_counter()
    load_before = load_average()
    rows: list[dict[str, Any]] = []
    seconds: dict[str, float] = {}
    try:
        if any(g.name != "naming" for g in selected):
            start = time.perf_counter()
            rows += startup_rows(any(g.needs_ray for g in selected))
            seconds["startup"] = time.perf_counter() - start
            print(f"\n== start-up ({seconds['startup']:.0f} s)\n{report.table(rows, markdown=False)}",
                  flush=True)
        for group in selected:
            start = time.perf_counter()
            new = group.run(args.quick)
            seconds[group.name] = time.perf_counter() - start
            rows += new
            tables = "\n\n".join(report.table([r for r in new if r["group"] == g], markdown=False)
                                 for g in dict.fromkeys(r["group"] for r in new))
            print(f"\n== {group.name}: {group.title} ({seconds[group.name]:.0f} s)\n{tables}", flush=True)
    finally:
        clean_scratch()  # the run directories (and their checkpoints) are not results

    info = machine()
    load_after = load_average()
    busy = float(load_before.split()[0])  # before: other jobs only (after: ours too)
    data = {
        "meta": {
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "command": " ".join(["benchmarks/run_all.py", *(argv if argv is not None else sys.argv[1:])]),
            "quick": args.quick, "groups": [g.name for g in selected], "seconds": seconds,
            "total_s": time.perf_counter() - began, "load_before": load_before, "load_after": load_after,
            "machine": f"{info['nproc']} cores ({info['cpu_model']}), {info['mem_gb']} GB, "
                       f"{'a GPU' if info['gpu'] else 'no GPU'}; torch {info['torch']}, ray {info['ray']}, "
                       f"Python {info['python']}",
            "sharing_note": (" (other jobs were running on the machine: timings are noisy)"
                             if busy > 0.5 else ""),
            **info,
        },
        "rows": rows,
        "targets": targets.targets(rows),
    }
    if data["targets"]:
        print(f"\n== targets\n{report.targets_table(data['targets'], markdown=False)}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=1, default=str))
    print(f"\nwrote {out} ({data['meta']['total_s']:.0f} s in all)")
    doc = args.doc or (None if args.quick or only else str(HERE.parent / "docs" / "performance.md"))
    if doc and not args.no_doc:
        write_doc(doc, data)
    return 0


def write_doc(doc: str, data: dict[str, Any]) -> None:
    titles = {g.name: g.title for g in GROUPS} | {
        "startup": "start-up", "poptime": "16 and 64 agents: time to mean greedy success 0.9"}
    report.write_doc(Path(doc), report.markdown_block(data, titles))
    print(f"wrote {doc}")


if __name__ == "__main__":
    raise SystemExit(main())
