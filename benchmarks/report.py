"""Tables (terminal and Markdown), the targets' table, and the generated part of docs/performance.md."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

BEGIN, END = "<!-- bench:begin (written by benchmarks/run_all.py) -->", "<!-- bench:end -->"


def fmt(value: Any, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def ratio(row: dict[str, Any]) -> str:
    labels = {"vs_reference": "x ref", "vs_local": "x local", "vs_egg": "x EGG-style"}
    return ", ".join(f"{row[k]:.2f} {label}" for k, label in labels.items() if k in row)


def per_agent(row: dict[str, Any]) -> str:
    """Ray: the actors' RSS (PSS) over the agents."""
    if "actors_rss_mb_per_agent" in row:
        return f"{row['actors_rss_mb_per_agent']:.1f} ({row['actors_pss_mb_per_agent']:.1f})"
    return "-"


# One column: header, and how a row shows it.
Column = tuple[str, Callable[[dict[str, Any]], str]]

THROUGHPUT: list[Column] = [
    ("case", lambda r: r["case"]),
    ("agents", lambda r: fmt(r.get("agents"))),
    ("batch", lambda r: fmt(r.get("batch_size"))),
    ("rounds", lambda r: fmt(r.get("rounds"))),
    ("games/s", lambda r: fmt(r.get("games_per_s"))),
    ("rounds/s", lambda r: fmt(r.get("rounds_per_s"), 2)),
    ("games/CPU-s", lambda r: fmt(r.get("games_per_cpu_s"))),
    ("cores", lambda r: fmt(r.get("cores_busy"), 2)),
    ("setup s", lambda r: fmt(r.get("setup_s"), 1)),
    ("driver peak MB", lambda r: fmt(r.get("driver_peak_rss_mb"))),
    ("actors RSS MB (PSS)", lambda r: (f"{r['actors_rss_mb']:,.0f} ({r['actors_pss_mb']:,.0f})"
                                       if "actors_rss_mb" in r else "-")),
    ("MB/agent RSS (PSS)", per_agent),
    ("ratio", ratio),
]
NAMING: list[Column] = [
    ("case", lambda r: r["case"]),
    ("runs", lambda r: fmt(r["runs"])),
    ("mean s to consensus", lambda r: fmt(r["wall_s"], 2)),
    ("max s", lambda r: fmt(r["max_wall_s"], 2)),
    ("mean t_conv", lambda r: fmt(r["t_conv_mean"])),
    ("t_conv / N^1.5", lambda r: fmt(r["t_conv_over_n_1_5"], 2)),
    ("interactions/s", lambda r: fmt(r["interactions_per_s"])),
    ("peak RSS MB", lambda r: fmt(r["driver_peak_rss_mb"])),
]
LEARNING: list[Column] = [
    ("case", lambda r: r["case"]),
    ("reached 0.9", lambda r: fmt(r["reached"])),
    ("rounds", lambda r: fmt(r["rounds_to_target"])),
    ("games", lambda r: fmt(r["games_to_target"])),
    ("s (training)", lambda r: fmt(r["seconds_to_target"], 1)),
    ("s (with start-up)", lambda r: fmt(r["seconds_to_target_with_setup"], 1)),
    ("last eval success", lambda r: fmt(r["eval_success"], 3)),
]
STARTUP: list[Column] = [
    ("case", lambda r: r["case"]),
    ("seconds", lambda r: fmt(r.get("seconds"), 2)),
    ("RSS MB (PSS)", lambda r: ("-" if "rss_mb" not in r else f"{r['rss_mb']:,.0f}" if math.isnan(r["pss_mb"])
                                else f"{r['rss_mb']:,.0f} ({r['pss_mb']:,.0f})")),
    ("note", lambda r: r.get("note", "")),
]
TIMETO: list[Column] = [
    ("case", lambda r: r["case"]),
    ("reached 0.9", lambda r: fmt(r["reached"])),
    ("rounds", lambda r: fmt(r["rounds_to_target"])),
    ("games", lambda r: fmt(r["games_to_target"])),
    ("s training (in run)", lambda r: fmt(r["seconds_to_target"], 1)),
    ("s from process start", lambda r: fmt(r["seconds_to_target_with_setup"], 1)),
    ("last eval success", lambda r: fmt(r["eval_success"], 3)),
]
POPTIME: list[Column] = [
    ("case", lambda r: r["case"]),
    ("reached 0.9", lambda r: fmt(r["reached"])),
    ("rounds (EGG-style: steps)", lambda r: fmt(r["rounds_to_target"])),
    ("games", lambda r: fmt(r["games_to_target"])),
    ("s to 0.9", lambda r: fmt(r["seconds_to_target"], 1)),
    ("s run (cap)", lambda r: f"{r['seconds_run']:.1f} ({r['cap_s']:.0f})"),
    ("last eval success", lambda r: fmt(r["eval_success"], 3)),
]
COLUMNS = {"naming": NAMING, "learning": LEARNING, "startup": STARTUP, "timeto": TIMETO, "poptime": POPTIME}


def table(rows: list[dict[str, Any]], markdown: bool) -> str:
    if not rows:
        return ""
    columns = COLUMNS.get(rows[0]["group"], THROUGHPUT)
    cells = [[show(r) for _, show in columns] for r in rows]
    heads = [h for h, _ in columns]
    if markdown:
        lines = ["| " + " | ".join(heads) + " |", "|" + "|".join("---" for _ in heads) + "|"]
        lines += ["| " + " | ".join(c) + " |" for c in cells]
        return "\n".join(lines)
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(heads)]
    line = lambda c: "  ".join(x.ljust(w) if i == 0 else x.rjust(w)  # noqa: E731
                               for i, (x, w) in enumerate(zip(c, widths)))
    return "\n".join([line(heads), line(["-" * w for w in widths]), *(line(c) for c in cells)])


# ---------------------------------------------------------------------- targets


def targets_table(items: list[dict[str, Any]], markdown: bool) -> str:
    rows = [{"group": "targets", "case": t["target"], **t} for t in items]
    cols: list[Column] = [
        ("target", lambda r: r["target"]), ("wanted", lambda r: r["wanted"]),
        ("measured", lambda r: (f"{r['bound']} " if r.get("bound") and r["measured"] is not None else "")
         + fmt(r["measured"], 2)),
        ("holds", lambda r: ("not measured" if r["note"].startswith("not measured") else "open")
         if r["holds"] is None else ("yes" if r["holds"] else "NO")),
        ("detail", lambda r: r["note"]),
    ]
    COLUMNS["targets"] = cols
    return table(rows, markdown)


# ---------------------------------------------------------------------- docs/performance.md


def markdown_block(data: dict[str, Any], titles: dict[str, str]) -> str:
    meta = data["meta"]
    parts = [BEGIN, "",
             f"Measured {meta['date']} with `{meta['command']}` "
             f"({'quick' if meta['quick'] else 'full'} mode, "
             f"{meta['total_s']:.0f} s). Machine: {meta['machine']}. Load average before/after: "
             f"{meta['load_before']} / {meta['load_after']}{meta['sharing_note']}.", "",
             "```", f"$ nproc --all\n{meta['nproc']}\n$ lscpu | head\n{meta['lscpu_head']}", "```", "",
             "### Targets", "", targets_table(data["targets"], markdown=True), ""]
    by_group: dict[str, list[dict[str, Any]]] = {}
    for row in data["rows"]:
        by_group.setdefault(row["group"], []).append(row)
    for group, rows in by_group.items():
        parts += [f"### {titles.get(group, group)}", "", table(rows, markdown=True), ""]
    parts.append(END)
    return "\n".join(parts)


def write_doc(path: Path, block: str) -> None:
    """Replace the generated block of ``path`` (or append one); the hand-written text stays."""
    text = path.read_text() if path.exists() else "# Performance\n\n"
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)
