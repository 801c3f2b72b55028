"""Tables (terminal and Markdown), the targets, and the generated part of docs/performance.md."""

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
    for key, label in (("vs_reference", "x ref"), ("vs_local", "x local")):
        if key in row:
            return f"{row[key]:.2f} {label}"
    return ""


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
COLUMNS = {"naming": NAMING, "learning": LEARNING, "startup": STARTUP}


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


def _find(rows: list[dict[str, Any]], key: str) -> dict[str, Any] | None:
    return next((r for r in rows if r["key"] == key), None)


def targets(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each target: what it asks, what was measured, whether it holds (None: not measured)."""
    out = []

    def add(name: str, wanted: str, value: float | None, holds: bool | None, note: str) -> None:
        out.append({"target": name, "wanted": wanted, "measured": value, "holds": holds, "note": note})

    pair = _find(rows, "pair/local, both ways")
    if pair:
        v = pair["vs_reference"]
        add("local backend, one pair, vs plain PyTorch", ">= 0.90x games/s", v, v >= 0.9,
            f"{pair['games_per_s']:,.0f} vs {pair['games_per_s'] / v:,.0f} games/s (batch 128, both ways, "
            f"best of {pair['repeats']})")
    ray1 = _find(rows, "backends/ray, 1 agent(s)/actor")
    local = _find(rows, "backends/local")
    if ray1 and local:
        v = ray1["vs_local"]
        per_cpu = ray1["games_per_cpu_s"] / local["games_per_cpu_s"]
        add("Ray vs local, quickstart population", ">= 0.80x games/s", v, v >= 0.8,
            f"{ray1['games_per_s']:,.0f} vs {local['games_per_s']:,.0f} games/s; Ray keeps "
            f"{ray1['cores_busy']:.2f} cores busy, local 1: per CPU-second Ray does {per_cpu:.2f}x")
    sharded = [r for r in rows if r["key"].startswith("population/N=128 ray")]
    single = [r for r in rows if r["key"].startswith("population/") and r["case"].endswith("1 actor/agent")]
    if sharded:
        top = max(sharded, key=lambda r: r["games_per_s"])
        if single:
            one = max(single, key=lambda r: r["agents"])
            v = top["games_per_s"] / one["games_per_s"]
            need_gb = one["actors_rss_mb_per_agent"] * 128 / 1024
            add("sharded (128 agents) vs one actor per agent", ">= 5x games/s", v, v >= 5,
                f"{top['case']}: {top['games_per_s']:,.0f} games/s; one actor per agent measured at "
                f"N={one['agents']} ({one['games_per_s']:,.0f} games/s): at N=128 it would need "
                f"~{need_gb:.0f} GB RSS, more than this machine has, so it was not run")
        lean = min(sharded, key=lambda r: r["actors_rss_mb_per_agent"])
        mb = lean["actors_rss_mb_per_agent"]
        others = "; ".join(f"{r['case']}: {r['actors_rss_mb_per_agent']:.1f}"
                           for r in sharded if r is not lean)
        add("memory per agent, sharded at 128", "<= 20 MB/agent (actors' RSS / agents)", mb, mb <= 20,
            f"{lean['case']}: {mb:.1f} MB RSS, {lean['actors_pss_mb_per_agent']:.1f} MB PSS per agent"
            + (f" ({others})" if others else "")
            + (f"; parameters {pair['param_bytes'] / 1e6:.2f} MB + Adam state "
               f"{pair['optimizer_bytes'] / 1e6:.2f} MB per agent" if pair and "param_bytes" in pair else ""))
    naming = _find(rows, "naming/N=10000")
    if naming:
        v = naming["max_wall_s"]
        add("naming game, 10,000 agents, complete graph, to consensus", "< 60 s", v, v < 60,
            f"slowest of {naming['runs']} runs; mean {naming['wall_s']:.1f} s, "
            f"t_conv {naming['t_conv_mean']:,.0f}")
    return out


def targets_table(items: list[dict[str, Any]], markdown: bool) -> str:
    rows = [{"group": "targets", "case": t["target"], **t} for t in items]
    cols: list[Column] = [
        ("target", lambda r: r["target"]), ("wanted", lambda r: r["wanted"]),
        ("measured", lambda r: fmt(r["measured"], 2)),
        ("holds", lambda r: "not measured" if r["holds"] is None else ("yes" if r["holds"] else "NO")),
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
