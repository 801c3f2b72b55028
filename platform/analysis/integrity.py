"""Are a run's logs whole? Every round x playing edge exactly once up to the last round logged.

Parts hold whole rounds (a part is renamed into place only once written), so a round present
in the metrics log is complete; what this check finds is a part deleted, copied or left over
from another writer: a gap, a duplicate, or fewer rounds than run.json says were written.
"""

from __future__ import annotations

from bisect import bisect_right
from pathlib import Path
from typing import Any

import pandas as pd

from neurocomm.platform.config import RunConfig
from neurocomm.platform.errors import RunDirError
from neurocomm.platform.topology import Topology


def _spans(values: list[int]) -> str:
    """``[3, 4, 5, 9]`` → ``3-5, 9`` (the first few spans)."""
    spans: list[list[int]] = []
    for v in sorted(values):
        if spans and v == spans[-1][1] + 1:
            spans[-1][1] = v
        else:
            spans.append([v, v])
    text = ", ".join(f"{a}-{b}" if a != b else f"{a}" for a, b in spans[:4])
    return text + (", ..." if len(spans) > 4 else "")


def expected_edges_per_round(cfg: RunConfig, topology: Topology, rounds: int) -> list[int]:
    """How many directed edges play in each of ``rounds`` rounds (the graph changes only at
    the schedule's rounds, so it is counted once per stretch between changes)."""
    starts = sorted({0, *(at for at, _, _ in topology.changes)})
    counts = {s: len(topology.talk_edges(s)[0]) for s in starts}
    # partitioned training also plays every agent's self-play edge (runner.round_edges)
    selfplay = topology.n if cfg.training.partitioned else 0
    k = cfg.training.edges_per_round
    out = []
    for r in range(rounds):
        n = counts[starts[bisect_right(starts, r) - 1]]
        out.append((n if k is None else min(k, n)) + selfplay)
    return out


def check_logs(path: Path, status: dict[str, Any], cfg: RunConfig, topology: Topology,
               metrics: pd.DataFrame, messages: pd.DataFrame) -> None:
    """RunDirError (one line) when the logs have a gap, a duplicate or lost rounds."""
    keys = ["round", "speaker", "listener"]
    twice = metrics.duplicated(keys, keep=False)
    if twice.any():
        rounds = sorted(set(int(r) for r in metrics.loc[twice, "round"]))
        raise RunDirError(f"{path}: metrics log is not intact: rounds {_spans(rounds)} are logged "
                          "more than once (a part copied or written twice)")
    if len(messages) and messages.duplicated([*keys, "game"]).any():
        rounds = sorted(set(int(r) for r in messages.loc[messages.duplicated([*keys, "game"]), "round"]))
        raise RunDirError(f"{path}: messages log is not intact: games of rounds {_spans(rounds)} "
                          "are logged more than once (a part copied or written twice)")
    last = int(metrics["round"].max())
    per_round = metrics.groupby("round").size()
    expected = expected_edges_per_round(cfg, topology, last + 1)
    missing = [r for r in range(last + 1) if r not in per_round.index]
    if missing:
        raise RunDirError(f"{path}: metrics log is not intact: rounds {_spans(missing)} are missing "
                          f"(of 0-{last}; a part deleted?)")
    short = [r for r in range(last + 1) if int(per_round[r]) != expected[r]]
    if short:
        r = short[0]
        raise RunDirError(f"{path}: metrics log is not intact: rounds {_spans(short)} do not hold "
                          f"one row per playing edge (round {r}: {int(per_round[r])} rows, "
                          f"{expected[r]} edges)")
    done = status.get("rounds_done")
    if isinstance(done, int) and done > last + 1:
        raise RunDirError(f"{path}: metrics log is not intact: run.json says {done} rounds were "
                          f"written but the log ends at round {last} (a part deleted?)")
