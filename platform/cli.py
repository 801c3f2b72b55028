"""``neurocomm``: validate, run, resume and analyse emergent-communication experiments."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from neurocomm.platform.errors import ConfigError, RunDirError

EXIT_USAGE = 2


def _say(msg: str) -> None:
    print(msg, flush=True)


def _fail(msg: str) -> int:
    print(f"neurocomm: error: {msg}", file=sys.stderr, flush=True)
    return EXIT_USAGE


def _load(args: argparse.Namespace):  # noqa: ANN202 - RunConfig, imported lazily
    from neurocomm.platform.config import load_config

    overrides = list(args.set or [])
    if getattr(args, "backend", None):
        overrides.append(f"runtime.backend={args.backend}")
    if getattr(args, "address", None):
        overrides.append(f"runtime.address={args.address}")
    return load_config(args.config, overrides)


def cmd_validate(args: argparse.Namespace) -> int:
    from neurocomm.platform.runner import prepare
    from neurocomm.platform.standalone import is_standalone, standalone_graph

    cfg = _load(args)
    if is_standalone(cfg):
        n, edges, _ = standalone_graph(cfg)
        graph = "complete graph" if edges is None else f"{len(edges)} edges"
        _say(f"{args.config}: valid ({n} agents, {graph}, standalone scenario {cfg.scenario.name}, "
             f"config hash {cfg.digest()})")
        return 0
    topology = prepare(cfg)
    edges, _ = topology.talk_edges(0)
    _say(
        f"{args.config}: valid ({topology.n} agents, {len(edges)} directed edges, "
        f"scenario {cfg.scenario.name}, rule {cfg.training.rule}, backend {cfg.runtime.backend}, "
        f"config hash {cfg.digest()})"
    )
    return 0


def _print_summary(result) -> None:  # noqa: ANN001
    _say(f"run directory: {result.run_dir}")
    _say(f"status: {result.status}; rounds: {result.rounds}; wall time: {result.wall_time:.1f} s "
         f"({result.rounds / max(result.wall_time, 1e-9):.2f} rounds/s)")
    if result.final_success:
        per_agent = "  ".join(f"{a}:{s:.2f}" for a, s in sorted(result.final_success.items()))
        _say(f"final success per agent (as listener, greedy evaluation): {per_agent}")
        _say(f"final mean success: {result.mean_success:.3f}")


def cmd_run(args: argparse.Namespace) -> int:
    from neurocomm.platform.runner import prepare, run
    from neurocomm.platform.standalone import is_standalone, run_standalone

    cfg = _load(args)
    if is_standalone(cfg):
        outcome = run_standalone(cfg, echo=_say)
        _say("; ".join(f"{k}: {v:.3f}" if isinstance(v, float) else f"{k}: {v}"
                       for k, v in outcome.items() if k != "run_dir"))
        return 0
    topology = prepare(cfg)
    result = run(cfg, topology=topology, echo=_say)
    _print_summary(result)
    return 0 if result.status == "finished" else 130


def cmd_resume(args: argparse.Namespace) -> int:
    from neurocomm.platform.rundir import RunDir
    from neurocomm.platform.runner import run
    from neurocomm.platform.topology import Topology

    run_dir = RunDir(Path(args.run_dir))
    status = run_dir.status()
    cfg = run_dir.config()
    if status.get("status") == "finished":
        _say(f"{run_dir.path}: already finished ({status.get('rounds_done')} rounds)")
        return 0
    topology = Topology.load(run_dir.path / "topology.json")
    result = run(cfg, topology=topology, resume=run_dir, echo=_say)
    _print_summary(result)
    return 0 if result.status == "finished" else 130


def cmd_analyze(args: argparse.Namespace) -> int:
    from neurocomm.platform.analysis.commands import analyze_command

    return analyze_command(args)


def cmd_report(args: argparse.Namespace) -> int:
    from neurocomm.platform.analysis.commands import report_command

    return report_command(args)


def cmd_compare(args: argparse.Namespace) -> int:
    from neurocomm.platform.analysis.commands import compare_command

    return compare_command(args)


def cmd_sweep(args: argparse.Namespace) -> int:
    from neurocomm.platform.sweep import load_sweep, run_sweep

    if args.dry_run:
        sweep, points = load_sweep(args.sweep)
        for p in points:
            _say(f"{p.key}: {p.config.name} seed {p.seed} {p.overrides}")
        _say(f"{args.sweep}: valid ({len(points)} runs, {sweep.max_concurrent} at a time)")
        return 0

    rows = run_sweep(args.sweep, echo=_say)
    failed = [r for r in rows if r["outcome"] not in ("finished", "skipped")]
    _say(f"{len(rows)} runs; {len(failed)} not finished")
    return 0 if not failed else 1


def cmd_tune(args: argparse.Namespace) -> int:
    from neurocomm.platform.tune import load_search, run_search

    search, _ = load_search(args.sweep)
    if args.dry_run:
        _say(f"{args.sweep}: valid ({search.search.algorithm} search, {search.scheduler.name} "
             f"scheduler on {search.metric})")
        return 0
    try:
        results = run_search(args.sweep, address=args.address, echo=_say)
    except ImportError as err:
        return _fail(str(err))
    failed = [r for r in results if r.error is not None]
    if len(failed) < len(results):
        best = results.get_best_result()
        _say(f"best trial: {best.metrics.get('run_dir')} "
             f"({search.metric} {best.metrics.get(search.metric, float('nan')):.3f})")
    _say(f"{len(results)} trials; {len(failed)} failed")
    return 0 if not failed else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="neurocomm",
        description="Populations of NeuroAI agents learning to communicate over a graph.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def config_command(
        name: str, help_: str, fn: Callable[[argparse.Namespace], int]
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_)
        p.add_argument("config", help="YAML config file")
        p.add_argument("--set", action="append", metavar="PATH=VALUE",
                       help="override a field, e.g. --set training.rounds=50 (repeatable)")
        p.add_argument("--backend", choices=["ray", "local"], help="shortcut for runtime.backend")
        p.add_argument("--address", help="shortcut for runtime.address (auto, host:port)")
        p.set_defaults(fn=fn)
        return p

    config_command("validate", "check a config without running it", cmd_validate)
    config_command("run", "run a config", cmd_run)

    p = sub.add_parser("resume", help="continue a stopped run from its last checkpoint")
    p.add_argument("run_dir")
    p.set_defaults(fn=cmd_resume)

    p = sub.add_parser("sweep", help="run a grid or random sample of configs x seeds")
    p.add_argument("sweep", help="sweep YAML file")
    p.add_argument("--dry-run", action="store_true", help="validate and list the runs only")
    p.set_defaults(fn=cmd_sweep, config=None)

    p = sub.add_parser("tune", help="a Ray Tune search (grid, random, Optuna; ASHA, PBT)")
    p.add_argument("sweep", metavar="search", help="search YAML file (docs/tune.md)")
    p.add_argument("--address", help="join this Ray cluster (auto, host:port)")
    p.add_argument("--dry-run", action="store_true", help="validate the search file only")
    p.set_defaults(fn=cmd_tune, config=None)

    p = sub.add_parser("analyze", help="compute the emergent-language measures of a run")
    p.add_argument("run_dir")
    p.add_argument("--at", type=int, default=None, help="analyse the checkpoint at this round")
    p.add_argument("--distance", choices=["hamming", "edit"], default="edit",
                   help="message distance for topographic similarity")
    p.set_defaults(fn=cmd_analyze)

    p = sub.add_parser("report", help="write an HTML report with plots for a run")
    p.add_argument("run_dir")
    p.add_argument("--at", type=int, default=None, help="analyse the checkpoint at this round")
    p.add_argument("--distance", choices=["hamming", "edit"], default="edit",
                   help="message distance for topographic similarity")
    p.set_defaults(fn=cmd_report)

    p = sub.add_parser("compare", help="one table across runs (means and 95%% CIs over seeds)")
    p.add_argument("run_dirs", nargs="+")
    p.add_argument("--out", default=None, help="folder for the table and plots")
    p.add_argument("--distance", choices=["hamming", "edit"], default="edit",
                   help="message distance for topographic similarity")
    p.set_defaults(fn=cmd_compare)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.fn(args))
    except ConfigError as err:
        source = getattr(args, "config", None) or getattr(args, "sweep", None)
        if not err.source and source:
            err = err.at(source=source)
        return _fail(err.line())
    except RunDirError as err:
        return _fail(str(err))
    except KeyboardInterrupt:
        print("neurocomm: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
