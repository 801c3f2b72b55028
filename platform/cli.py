"""``neurocomm``: validate, run, resume and analyse emergent-communication experiments."""

from __future__ import annotations

import argparse
import errno
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from neurocomm.platform import console
from neurocomm.platform.errors import ConfigError, RunDirError

EXIT_USAGE = 2

_say = console.say  # everything the commands print goes through the `neurocomm` logger


def _fail(msg: str) -> int:
    console.LOGGER.error(f"neurocomm: error: {msg}")
    return EXIT_USAGE


def _load(args: argparse.Namespace):  # noqa: ANN202 - RunConfig, imported lazily
    from neurocomm.platform.api import resolve_config

    return resolve_config(args.config, args.set or [], backend=getattr(args, "backend", None),
                          address=getattr(args, "address", None))


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
    # "run directory: ..." was printed when the run started
    _say(f"status: {result.status}; rounds: {result.rounds}; wall time: {result.wall_time:.1f} s "
         f"({result.rounds / max(result.wall_time, 1e-9):.2f} rounds/s)"
         + (f"; {result.reason}" if result.reason else ""))
    if result.listener_success:
        per_agent = "  ".join(f"{a}:{s:.2f}" for a, s in sorted(result.listener_success.items()))
        _say(f"final success per agent (as listener, greedy evaluation): {per_agent}")
        _say(f"final mean success: {result.mean_success:.3f}")
    if result.outcome:  # a standalone scenario's own figures
        _say("; ".join(f"{k}: {v:.3f}" if isinstance(v, float) else f"{k}: {v}"
                       for k, v in result.outcome.items()))


def cmd_run(args: argparse.Namespace) -> int:
    from neurocomm.platform.api import run

    result = run(args.config, args.set or [], backend=args.backend, address=args.address, echo=_say)
    _print_summary(result)
    return 0 if result.status == "finished" else 130


def cmd_resume(args: argparse.Namespace) -> int:
    import dataclasses

    from neurocomm.platform.rundir import RunDir
    from neurocomm.platform.runlock import RunLock
    from neurocomm.platform.runner import run
    from neurocomm.platform.topology import Topology

    run_dir = RunDir(Path(args.run_dir))
    status = run_dir.status()
    cfg = run_dir.config()
    if status.get("status") == "finished":
        why = f"; {status['reason']}" if status.get("reason") else ""
        _say(f"{run_dir.path}: already finished ({status.get('rounds_done')} rounds{why})")
        return 0
    digest = cfg.digest()
    # A run directory is data: the cluster it names is joined only when the user says so.
    if args.use_saved_address and args.address:
        return _fail("--address and --use-saved-address exclude each other")
    if not args.use_saved_address:
        cfg = dataclasses.replace(cfg, runtime=dataclasses.replace(cfg.runtime, address=args.address))
    # The lock first: a live run may not have written all of its files yet.
    lock = RunLock(run_dir.path).acquire()
    try:
        topology = Topology.load(run_dir.path / "topology.json")
    except Exception as err:  # noqa: BLE001 - a damaged file of any kind is one line
        first = (str(err).splitlines() or [""])[0]
        return _fail(f"{run_dir.path}/topology.json: cannot be read ({type(err).__name__}: {first})")
    result = run(cfg, topology=topology, resume=run_dir, echo=_say, config_hash=digest,
                 force=args.force, lock=lock)
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

    overrides = args.set or []
    if args.dry_run:
        sweep, points = load_sweep(args.sweep, overrides)
        for p in points:
            _say(f"{p.key}: {p.config.name} seed {p.seed} {p.overrides}")
        _say(f"{args.sweep}: valid ({len(points)} runs, {sweep.max_concurrent} at a time, "
             f"engine {sweep.engine})")
        return 0

    try:
        rows = run_sweep(args.sweep, echo=_say, overrides=overrides)
    except ImportError as err:  # engine: tune without the tune extra
        return _fail(str(err))
    failed = [r for r in rows if r["outcome"] not in ("finished", "skipped")]
    _say(f"{len(rows)} runs; {len(failed)} not finished")
    if any(r["outcome"] in ("interrupted", "not run") for r in rows):
        _say("interrupted: launch the sweep again to complete it")
        return 130
    return 0 if not failed else 1


def cmd_init(args: argparse.Namespace) -> int:
    from neurocomm.platform.examples import copy_examples

    written = copy_examples(args.dir, force=args.force)
    folder = Path(args.dir) / "configs"
    _say(f"wrote {len(written)} example files to {folder}/; try: cd {args.dir} && "
         "neurocomm run configs/quickstart.yaml")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from neurocomm.platform.checks import CheckFailed, check

    try:
        results = check(args.name)
    except LookupError as err:
        return _fail(str(err))
    except CheckFailed as err:
        console.LOGGER.error(f"neurocomm: {args.name}: check failed: {err}")
        return 1
    for group, played in results:
        _say(f"{args.name}: conforms as one of the {group} ({'; '.join(played)})")
    return 0


def cmd_study(args: argparse.Namespace) -> int:
    from neurocomm.platform.study import load_study, resolve_study_path, run_study

    study = load_study(resolve_study_path(args.study), args.scale)
    if args.action == "validate":
        _say(f"{study.path}: valid ({len(study.conditions)} conditions x {len(study.seeds)} seeds, "
             f"{len(study.config.claims)} claims, scale {study.scale})")
        return 0
    if args.action == "run":
        folder, outcomes = run_study(study, args.dir, args.address, echo=_say)
        bad = [o for o in outcomes if o not in ("finished", "skipped")]
        _say(f"{folder}: {len(outcomes)} runs, {len(bad)} not finished")
        return 0 if not bad else 1
    from neurocomm.platform.study_report import write_report

    verdicts = write_report(study, args.dir, args.export)
    for claim, v in verdicts.items():
        _say(f"{claim}: {v['verdict']} ({v['measure']} {v['effect']['kind']} {v['estimate']:.3g} "
             f"[{v['ci_low']:.3g}, {v['ci_high']:.3g}], p {v['p']:.3g}, n {v['n']})")
    return 0


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
    loud = parser.add_mutually_exclusive_group()
    loud.add_argument("-q", "--quiet", dest="verbosity", action="store_const", const=-1, default=0,
                      help="print warnings and errors only (no progress bars)")
    loud.add_argument("-v", "--verbose", dest="verbosity", action="store_const", const=1,
                      help="also print debug lines (among them Ray's and MLflow's start-up notices)")
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

    p = sub.add_parser("resume", help="continue a stopped run from its last intact checkpoint")
    p.add_argument("run_dir")
    p.add_argument("--force", action="store_true",
                   help="continue although config.yaml changed since the run started "
                        "(recorded in events.log)")
    p.add_argument("--address", default=None,
                   help="join this Ray cluster (default: a new embedded loopback Ray)")
    p.add_argument("--use-saved-address", action="store_true",
                   help="join the cluster named by the run's runtime.address")
    p.set_defaults(fn=cmd_resume)

    p = sub.add_parser("sweep", help="run a grid or random sample of configs x seeds")
    p.add_argument("sweep", help="sweep YAML file")
    p.add_argument("--set", action="append", metavar="PATH=VALUE",
                   help="override a field of every run (applied to the base config before the "
                        "grid), e.g. --set training.rounds=50 (repeatable)")
    p.add_argument("--dry-run", action="store_true", help="validate and list the runs only")
    p.set_defaults(fn=cmd_sweep, config=None)

    trust_help = ("import the plug-in code (model: pkg.mod:Name) that the run's config names; "
                  "without it such a run is refused")


    p = sub.add_parser("tune", help="a Ray Tune search (grid, random, Optuna; ASHA, PBT)")
    p.add_argument("sweep", metavar="search", help="search YAML file (docs/tune.md)")
    p.add_argument("--address", help="join this Ray cluster (auto, host:port)")
    p.add_argument("--dry-run", action="store_true", help="validate the search file only")
    p.set_defaults(fn=cmd_tune, config=None)

    p = sub.add_parser("analyze", help="compute the emergent-language measures of a run")
    p.add_argument("run_dir")
    p.add_argument("--trust", action="store_true", help=trust_help)
    p.add_argument("--at", type=int, default=None, help="analyse the checkpoint at this round")
    p.add_argument("--distance", choices=["hamming", "edit"], default="edit",
                   help="message distance for topographic similarity")
    p.set_defaults(fn=cmd_analyze)

    p = sub.add_parser("report", help="write an HTML report with plots for a run")
    p.add_argument("run_dir")
    p.add_argument("--trust", action="store_true", help=trust_help)
    p.add_argument("--at", type=int, default=None, help="analyse the checkpoint at this round")
    p.add_argument("--distance", choices=["hamming", "edit"], default="edit",
                   help="message distance for topographic similarity")
    p.set_defaults(fn=cmd_report)

    p = sub.add_parser("compare", help="one table across runs (means and 95%% CIs over seeds)")
    p.add_argument("run_dirs", nargs="+")
    p.add_argument("--trust", action="store_true", help=trust_help)
    p.add_argument("--where", "--set", dest="where", action="append", metavar="PATH=VALUE",
                   help="compare only the runs whose config has this value, e.g. "
                        "--where training.rule=gumbel (repeatable: all must hold)")
    p.add_argument("--out", default=None, help="folder for the table and plots")
    p.add_argument("--distance", choices=["hamming", "edit"], default="edit",
                   help="message distance for topographic similarity")
    p.set_defaults(fn=cmd_compare)

    p = sub.add_parser("init", help="copy the example configs into DIR/configs/")
    p.add_argument("dir", help="folder to write configs/ into (created if missing)")
    p.add_argument("--force", action="store_true", help="overwrite example files that exist there")
    p.set_defaults(fn=cmd_init)

    p = sub.add_parser("check", help="play tiny rounds to check a model, scenario or rule plug-in")
    p.add_argument("name", help="a registered name or an import path pkg.mod:Class")
    p.set_defaults(fn=cmd_check)

    p = sub.add_parser("study", help="run or report a study: a published claim tested over seeds")
    p.add_argument("action", choices=["run", "report", "validate"])
    p.add_argument("study", help="NAME (configs/studies/NAME.yaml) or a study YAML file")
    p.add_argument("--scale", default="quick", help="a scale of the study: quick, full, tiny, ...")
    p.add_argument("--address", default=None, help="run on this Ray cluster (auto, host:port)")
    p.add_argument("--dir", default=None, help="root folder of study folders (default: the study's dir)")
    p.add_argument("--export", default=None, help="report: also copy report.md and figures here")
    p.set_defaults(fn=cmd_study)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    parser = build_parser()
    args = parser.parse_args(argv)
    console.configure(args.verbosity)
    try:
        return int(args.fn(args))
    except ConfigError as err:
        source = getattr(args, "config", None) or getattr(args, "sweep", None)
        if not err.source and source:
            err = err.at(source=source)
        return _fail(err.line())
    except RunDirError as err:
        return _fail(str(err))
    except OSError as err:
        if err.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        return _fail(f"{err.filename or 'a file'}: disk full ({err.strerror}); nothing was lost, "
                     "free some space and try again")
    except KeyboardInterrupt:
        console.LOGGER.error("neurocomm: interrupted")
        return 130
    except Exception as err:
        from neurocomm.platform.estimate import allocation_failure

        problem = allocation_failure(err)
        if problem is None:
            raise  # a bug: developers keep the trace
        return _fail(problem)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
