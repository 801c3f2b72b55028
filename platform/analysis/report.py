"""A self-contained HTML report of one run: figures embedded as base64 PNG, plus the PNG files.

Written to RUN/report/: report.html, learning_curves.png, intelligibility.png,
dialect_graph.png, distance_vs_graph.png, compositionality_over_time.png, lexicon.png.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from neurocomm.platform.analysis import plots
from neurocomm.platform.analysis.run_analysis import Analysis

FIGURES: tuple[tuple[str, str, Callable[[Analysis], Any]], ...] = (
    (
        "learning_curves",
        "Communicative success over rounds: the population (black) and each agent as listener.",
        plots.learning_curves,
    ),
    (
        "intelligibility",
        "Mutual intelligibility from the checkpoint weights: success when the row "
        "agent speaks and the column agent listens, on a fixed evaluation set, for every pair "
        "(including agents that never talked).",
        plots.intelligibility_heatmap,
    ),
    (
        "dialect_graph",
        "The interaction graph: colour = language cluster, shape = graph community.",
        plots.dialect_graph,
    ),
    (
        "distance_vs_graph",
        "Language distance of each pair of agents against their shortest-path "
        "distance in the graph, with the Mantel test.",
        plots.distance_scatter,
    ),
    (
        "compositionality_over_time",
        "Compositionality and population measures over the run: from "
        "the messages log at each logged round (lines) and from greedy productions at each "
        "checkpoint (markers).",
        plots.compositionality_over_time,
    ),
    (
        "lexicon",
        "Lexicon: each agent's most frequent message for each object (first 32 objects, 16 agents).",
        plots.lexicon_table,
    ),
)

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 2em; }
table { border-collapse: collapse; font-size: 0.85em; }
td, th { border: 1px solid #ccc; padding: 2px 6px; text-align: left; }
th { background: #f3f3f3; } figure { margin: 1em 0; } figcaption { font-size: 0.85em; color: #555; }
img { max-width: 100%; } .mono td { font-family: ui-monospace, monospace; }
"""


def _png(fig: Any) -> bytes:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()


def _value(v: Any) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return "n/a" if not math.isfinite(v) else f"{v:.4g}"
    if isinstance(v, dict):
        return ", ".join(f"{k}: {_value(x)}" for k, x in v.items())
    return str(v)


def _summary_table(summary: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(_value(v))}</td></tr>" for k, v in summary.items()
    )
    return f"<table>{rows}</table>"


def _lexicon_html(analysis: Analysis) -> str:
    objects, agents, cells = plots.lexicon_grid(analysis)
    if not objects:
        return "<p>No messages to build a lexicon from.</p>"
    head = "".join(f"<th>agent {html.escape(a)}</th>" for a in agents)
    body = "".join(
        f"<tr><th>{html.escape(o)}</th>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
        for o, row in zip(objects, cells)
    )
    source = analysis.tables["lexicon"]["source"].iloc[0] if len(analysis.tables["lexicon"]) else ""
    note = (
        "greedy productions at the checkpoint"
        if source == "checkpoint"
        else "most frequent message in the messages log (last 10% of rounds)"
    )
    return (
        f"<p>Objects as attribute values; messages as symbol ids (0 = end of message); "
        f"source: {note}.</p><table class='mono'><tr><th>object</th>{head}</tr>{body}</table>"
    )


def write_report(analysis: Analysis, folder: Path | None = None) -> Path:
    """Draw every figure, save the PNGs and report.html under ``folder`` (RUN/report)."""
    folder = Path(folder) if folder is not None else analysis.data.path / "report"
    folder.mkdir(parents=True, exist_ok=True)
    s = analysis.summary
    parts = [
        f"<h1>neurocomm run {html.escape(str(s['run_id']))}</h1>",
        f"<p>Status <b>{html.escape(str(s['status']))}</b>, {s['rounds_done']} rounds, "
        f"{s['n_agents']} agents; language measured from "
        f"{html.escape(str(s['language_source']))}"
        + (f" (checkpoint at round {s['checkpoint_round']})" if s["checkpoint_round"] is not None else "")
        + ".</p>",
        "<h2>Summary</h2>",
        _summary_table(s),
    ]
    for name, caption, draw in FIGURES:
        fig = draw(analysis)
        if fig is None:
            parts.append(
                f"<h2>{html.escape(name.replace('_', ' '))}</h2><p>Not available for this run "
                f"(it needs a checkpoint or logged messages).</p>"
            )
            continue
        data = _png(fig)
        (folder / f"{name}.png").write_bytes(data)
        encoded = base64.b64encode(data).decode("ascii")
        parts.append(
            f"<h2>{html.escape(name.replace('_', ' ').capitalize())}</h2><figure>"
            f"<img alt='{html.escape(name)}' src='data:image/png;base64,{encoded}'>"
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )
    parts.append("<h2>Lexicon table</h2>")
    parts.append(_lexicon_html(analysis))
    page = (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>neurocomm report: {html.escape(str(s['run_id']))}</title><style>{_STYLE}</style>"
        f"</head><body>{''.join(parts)}</body></html>\n"
    )
    out = folder / "report.html"
    out.write_text(page, encoding="utf-8")
    return out
