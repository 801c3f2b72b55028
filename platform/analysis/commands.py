"""The ``neurocomm analyze | report | compare`` commands (wired in platform/cli.py).

Each takes the parsed ``argparse.Namespace`` and returns the exit status; a run directory that
is missing, partial beyond use or of another schema raises RunDirError (the CLI prints it and
exits 2).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from neurocomm.platform import console
from neurocomm.platform.analysis.compare import (
    comparison_plot,
    comparison_table,
    format_comparison,
    summaries,
)
from neurocomm.platform.analysis.run_analysis import analyze_run, format_summary, write_analysis

_say = console.say  # through the `neurocomm` logger: `neurocomm -q` silences it


def _analysis(args: argparse.Namespace) -> Any:
    return analyze_run(args.run_dir, at=args.at, distance=args.distance, trust=args.trust)


def analyze_command(args: argparse.Namespace) -> int:
    """Measure a run; write RUN/analysis/*.parquet and summary.json; print a summary."""
    analysis = _analysis(args)
    folder = write_analysis(analysis)
    _say(format_summary(analysis))
    _say(f"wrote {folder}/ ({', '.join(sorted(analysis.tables))}, summary.json)")
    return 0


def report_command(args: argparse.Namespace) -> int:
    """Measure a run and write RUN/report/report.html with its PNG figures."""
    from neurocomm.platform.analysis.report import write_report

    analysis = _analysis(args)
    page = write_report(analysis)
    _say(format_summary(analysis))
    _say(f"wrote {page}")
    return 0


def compare_command(args: argparse.Namespace) -> int:
    """One table over runs (or folders of runs): means and 95% CIs over seeds per condition."""
    runs = summaries(args.run_dirs, distance=args.distance, trust=args.trust, where=args.where or [])
    table = comparison_table(runs)
    _say(format_comparison(table))
    if args.out:
        folder = Path(args.out)
        folder.mkdir(parents=True, exist_ok=True)
        table.to_csv(folder / "compare.csv", index=False)
        table.to_parquet(folder / "compare.parquet", index=False)
        runs.to_csv(folder / "runs.csv", index=False)
        (folder / "compare.txt").write_text(format_comparison(table) + "\n")
        comparison_plot(table, folder / "compare.png")
        from neurocomm.platform.analysis.report_compare import write_compare_page

        write_compare_page(table, folder / "compare.html")
        _say(
            f"wrote {folder}/ (compare.csv, compare.parquet, compare.txt, runs.csv, compare.png, "
            "compare.html)"
        )
    return 0
