"""Start-up of the quickstart on embedded Ray, measured in a fresh process: from ``run(cfg)``
(which starts Ray on this machine, then the actors) and from the process's own start, to the
end of the first round. Prints one JSON line.

    OMP_NUM_THREADS=1 python benchmarks/first_round.py [--backend local]

The run is ``configs/quickstart.yaml`` as shipped (its ``runtime`` included), logging to a
temporary folder; it stops after its first round (the round callback asks it to, as Ctrl-C
would), so its end checkpoint is written but not timed.
"""

from __future__ import annotations

import os

for _key, _value in {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "RAY_USAGE_STATS_ENABLED": "0",
                     "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}.items():
    os.environ.setdefault(_key, _value)

import argparse  # noqa: E402
import json  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402


def since_process_start() -> float:
    """Seconds since this process was started (its start time in /proc, in clock ticks)."""
    start_ticks = int(Path("/proc/self/stat").read_text().rpartition(")")[2].split()[19])
    uptime = float(Path("/proc/uptime").read_text().split()[0])
    return uptime - start_ticks / os.sysconf("SC_CLK_TCK")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["ray", "local"], default="ray")
    args = parser.parse_args(argv)
    from neurocomm.platform.config import load_config
    from neurocomm.platform.runner import run

    folder = tempfile.mkdtemp(prefix="ncbench-first-")
    cfg = load_config(Path(__file__).resolve().parent.parent / "configs" / "quickstart.yaml",
                      [f"runtime.backend={args.backend}", f"logging.dir={folder}", "logging.progress=false"])
    seen: dict[str, float] = {}

    def on_round(done: int, rows: list[dict[str, Any]]) -> bool:
        seen.setdefault("run", time.perf_counter() - start)
        seen.setdefault("process", since_process_start())
        return True

    imported = since_process_start()
    start = time.perf_counter()
    run(cfg, on_round=on_round)
    import shutil

    shutil.rmtree(folder, ignore_errors=True)
    print(json.dumps({"backend": args.backend, "imports_s": imported, "run_to_first_round_s": seen["run"],
                      "process_to_first_round_s": seen["process"]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
