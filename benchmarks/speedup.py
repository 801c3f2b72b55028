"""Games/s of this checkout against an earlier commit, alternating runs, as ratios.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/speedup.py --base c82dca3
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/speedup.py --base c82dca3 --cases pair \\
        --arms base,head,head:compile=true,reference --repeats 7

Each arm runs in its own Python process, one process per arm and repeat, in the order
base, head, ... within each repeat: on a shared machine a slow spell then hits every arm
of that repeat instead of one arm's whole series. The figure of a run is the harness's
steady-state games/s (benchmarks/harness.py: rounds 2..R, local backend, no evaluation, no
message log); a case's result is the median over the repeats and the ratio of medians.

* ``base``: the committed tree of ``--base`` (``git archive``), imported instead of this
  checkout's packages; the harness and this script are this checkout's.
* ``head``: this checkout as it is on disk.
* ``head:KEY=VALUE``: this checkout with ``training.KEY`` set (YAML scalar), e.g.
  ``head:compile=true``.
* ``reference``: benchmarks/reference_pytorch.py, the same game written plainly (pair only:
  two agents talking both ways, the same games per round as the ``pair`` case).

Cases: ``pair`` (2 agents, both directions, 300 rounds), ``ring16`` (16 agents on a ring,
32 directed edges, 40 rounds), ``ring64`` (64 agents, 12 rounds). Batch 128 per edge.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CASES: dict[str, dict[str, Any]] = {
    "pair": {"n": 2, "rounds": 300},
    "ring16": {"n": 16, "rounds": 40},
    "ring64": {"n": 64, "rounds": 12},
}
PACKAGES = ("platform", "agents", "scenarios")


def child(case: str, training: dict[str, Any], reference: bool) -> dict[str, Any]:
    """One timed run in this process (after a short untimed warm-up run)."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.path.insert(0, str(HERE))
    import torch

    torch.set_num_threads(1)
    if reference:
        import reference_pytorch

        reference_pytorch.throughput(128, 20)
        return reference_pytorch.throughput(128, CASES[case]["rounds"])
    from harness import clean_scratch, referential_config, timed_run

    import neurocomm.platform

    warm = referential_config(n=CASES[case]["n"], rounds=3)
    warm["training"].update(training)
    timed_run(warm)
    data = referential_config(**CASES[case])
    data["training"].update(training)
    out = timed_run(data)
    clean_scratch()
    return {"games_per_s": out["games_per_s"], "package": str(Path(neurocomm.platform.__path__[0]))}


def extract(rev: str, into: Path) -> Path:
    """``rev``'s packages under ``into/neurocomm/`` (importable with ``into`` on PYTHONPATH)."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, *PACKAGES], check=True,
                             capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into / "neurocomm", filter="data")
    return into


def parse_arm(arm: str) -> tuple[str, dict[str, Any]]:
    import yaml

    name, _, rest = arm.partition(":")
    training = {}
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        training[key] = yaml.safe_load(value)
    return name, training


def run_arm(arm: str, case: str, base_path: Path | None) -> float:
    name, training = parse_arm(arm)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    if name == "base":
        env["PYTHONPATH"] = str(base_path)
    cmd = [sys.executable, __file__, "--child", case, "--training", json.dumps(training)]
    if name == "reference":
        cmd.append("--reference")
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    if name == "base" and not result.get("package", "").startswith(str(base_path)):
        raise RuntimeError(f"the base arm imported {result.get('package')}, not the extracted tree")
    return float(result["games_per_s"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default="HEAD", help="git revision of the base arm")
    parser.add_argument("--cases", default="pair,ring16")
    parser.add_argument("--arms", default="base,head,reference")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=str(HERE / "results" / "speedup.json"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--training", default="{}", help=argparse.SUPPRESS)
    parser.add_argument("--reference", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, json.loads(args.training), args.reference)))
        return 0
    arms = [a for a in args.arms.split(",") if a]
    results: dict[str, Any] = {"base": args.base, "repeats": args.repeats, "cases": {}}
    with tempfile.TemporaryDirectory(prefix="ncspeed-") as tmp:
        base_path = extract(args.base, Path(tmp)) if any(a.startswith("base") for a in arms) else None
        for case in [c for c in args.cases.split(",") if c]:
            runs: dict[str, list[float]] = {a: [] for a in arms if not (a == "reference" and case != "pair")}
            for _ in range(args.repeats):
                for arm in runs:
                    runs[arm].append(run_arm(arm, case, base_path))
            medians = {a: statistics.median(v) for a, v in runs.items()}
            results["cases"][case] = {"runs": runs, "median": medians}
            print(f"{case}: " + "  ".join(f"{a} {m:,.0f}" for a, m in medians.items()), flush=True)
            first = arms[0]
            for arm in list(runs)[1:]:
                print(f"  {arm} / {first}: {medians[arm] / medians[first]:.3f}"
                      f"   (runs: {', '.join(f'{v:,.0f}' for v in runs[arm])})", flush=True)
            print(f"  {first} runs: {', '.join(f'{v:,.0f}' for v in runs[first])}", flush=True)
            if "reference" in medians:
                print("  over the reference: " + "  ".join(
                    f"{a} {m / medians['reference']:.3f}" for a, m in medians.items() if a != "reference"))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
