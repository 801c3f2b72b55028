"""An interactive, self-contained page for a comparison of conditions (a sweep): conditions ×
measures with 95% confidence intervals; a measure picker redraws a dot-and-whisker chart,
hovering a point gives its values. Same template and script as the run report.
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

import pandas as pd

from neurocomm.platform.analysis.report_data import render_page


def _number(v: Any) -> float | None:
    return float(v) if v is not None and math.isfinite(float(v)) else None


def compare_page_data(table: pd.DataFrame) -> dict[str, Any]:
    """Conditions, measures (those defined for some run) and per measure one cell per condition."""
    measures = [m for m in table["measure"].drop_duplicates() if table[table["measure"] == m]["n"].sum()]
    cells = {
        m: [
            {
                "condition": str(r["condition"]),
                "name": str(r["name"]),
                "runs": int(r["runs"]),
                "n": int(r["n"]),
                "mean": _number(r["mean"]),
                "low": _number(r["ci_low"]),
                "high": _number(r["ci_high"]),
            }
            for r in table[table["measure"] == m].to_dict("records")
        ]
        for m in measures
    }
    return {"kind": "compare", "measures": measures, "cells": cells}


def _cell(r: dict[str, Any]) -> str:
    if r["n"] == 0:
        return "n/a"
    if r["low"] is None:
        return f"{r['mean']:.3g} (n={r['n']})"
    return f"{r['mean']:.3g} [{r['low']:.3g}, {r['high']:.3g}] (n={r['n']})"


def write_compare_page(table: pd.DataFrame, out: Path) -> Path:
    """Write the comparison page (``table`` from ``comparison_table``) to ``out``."""
    data = compare_page_data(table)
    conditions = list(table.drop_duplicates("condition")["condition"])
    runs = table.drop_duplicates("condition").set_index("condition")
    items = "".join(
        f"<li>{html.escape(str(c))} — config {html.escape(str(runs.loc[c, 'name']))}, "
        f"{int(runs.loc[c, 'runs'])} run(s)</li>"
        for c in conditions
    )
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in conditions)
    rows = []
    for measure, cells in data["cells"].items():
        by = {c["condition"]: c for c in cells}
        tds = "".join(
            f"<td class='num'>{html.escape(_cell(by[c])) if c in by else ''}</td>" for c in conditions
        )
        rows.append(f"<tr><th>{html.escape(measure)}</th>{tds}</tr>")
    body = (
        "<h1>neurocomm comparison</h1><p>Each condition's runs (seeds): mean and 95% Student-t "
        "confidence interval of the mean; n counts the runs where the measure is defined.</p>"
        f"<h2>Conditions</h2><ul>{items}</ul>"
        "<h2>One measure across conditions</h2><div class='controls'>"
        "<label for='measure-select'>measure</label><select id='measure-select'></select>"
        "<span id='measure-label'></span></div>"
        "<svg id='compare-chart' role='img' aria-label='means with confidence intervals'></svg>"
        f"<h2>All measures</h2><div style='overflow-x:auto'><table><tr><th>measure</th>{head}</tr>"
        f"{''.join(rows)}</table></div>"
    )
    out.write_text(render_page("neurocomm comparison", body, data), encoding="utf-8")
    return out
