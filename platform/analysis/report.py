"""A self-contained, interactive HTML report of one run, plus its figures as PNG files.

Written to RUN/report/: report.html (one offline page: inline script, styles and data; a
checkpoint slider over the intelligibility heat map and the dialect-coloured graph, tooltips,
a filterable table of sampled games; every figure embedded as base64 PNG) and one PNG per
figure in FIGURES. Everything shown comes from one :class:`Analysis`.
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
from neurocomm.platform.analysis.report_data import render_page, run_page_data
from neurocomm.platform.analysis.run_analysis import Analysis

FIGURES: tuple[tuple[str, str, Callable[[Analysis], Any]], ...] = (
    (
        "learning_curves",
        "Communicative success over rounds: the population (black) and each agent as listener.",
        plots.learning_curves,
    ),
    (
        "edge_curves",
        "Success on each directed edge (speaker → listener) over rounds.",
        plots.edge_curves,
    ),
    (
        "training_curves",
        "The population's listener and speaker loss, message length and speaker entropy over rounds.",
        plots.training_curves,
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
    (
        "symbol_attributes",
        "Mutual information between a symbol appearing in a message and the object having an "
        "attribute value (the table below gives counts).",
        plots.symbol_attribute_heatmap,
    ),
)


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


def _interactive_html(analysis: Analysis) -> str:
    """The containers the page's script fills: slider, heat map, graph, games table."""
    return (
        "<h2>Intelligibility and dialects at each checkpoint</h2>"
        "<div class='controls'><label for='checkpoint-slider'>checkpoint</label>"
        "<input type='range' id='checkpoint-slider' min='0' max='0' step='1' value='0'>"
        "<span id='checkpoint-label'></span></div>"
        "<div class='views'><figure><svg id='heatmap' role='img' aria-label='intelligibility heat map'>"
        "</svg><figcaption>Success when the row agent speaks and the column agent listens "
        "(greedy, fixed evaluation set), agents in id order; dark purple 0, yellow 1.</figcaption></figure>"
        "<figure><svg id='graph' role='img' aria-label='interaction graph'></svg><figcaption>The "
        "interaction graph; colour = language cluster (dialect) at this checkpoint. Hover for "
        "values.</figcaption></figure></div>"
    )


def _games_html() -> str:
    any_ = "<option value='any'>any</option>"
    return (
        "<h2>Sampled games</h2><p>Games as played during training, from the messages log (a "
        "seeded sample). Target and message are attribute values and symbol ids (0 = end of "
        "message); choice and target position index the candidates the listener saw.</p>"
        "<div class='controls'>"
        f"<label>speaker <select id='filter-speaker'>{any_}</select></label>"
        f"<label>listener <select id='filter-listener'>{any_}</select></label>"
        f"<label>success <select id='filter-success'>{any_}<option value='won'>won</option>"
        "<option value='lost'>lost</option></select></label>"
        "<label>rounds from <input type='number' id='filter-round-min' min='0' style='width:6em'></label>"
        "<label>to <input type='number' id='filter-round-max' min='0' style='width:6em'></label>"
        "</div><p id='games-count'></p><table id='games-table' class='mono'><thead><tr><th>round</th>"
        "<th>speaker → listener</th><th>target</th><th>message</th><th>choice</th>"
        "<th>target position</th><th>success</th></tr></thead><tbody></tbody></table>"
    )


MAX_SYMBOL_ROWS = 40
MAX_VALUE_COLUMNS = 60


def _symbols_html(analysis: Analysis) -> str:
    table = analysis.tables.get("symbol_attributes")
    if table is None or table.empty:
        return "<p>No messages to relate symbols to attribute values.</p>"
    symbols = sorted(table["symbol"].unique())[:MAX_SYMBOL_ROWS]
    values = sorted({(int(a), int(v)) for a, v in zip(table["attribute"], table["value"])})
    values = values[:MAX_VALUE_COLUMNS]
    cells = {(int(r.symbol), int(r.attribute), int(r.value)): r for r in table.itertuples()}
    head = "".join(f"<th>a{a}={v}</th>" for a, v in values)
    rows = []
    for s in symbols:
        tds = []
        for a, v in values:
            r = cells.get((int(s), a, v))
            if r is None:
                tds.append("<td></td>")
                continue
            tip = (
                f"symbol {s} with attribute {a} = {v}: {r.count} utterances, "
                f"P(value | symbol) = {r.p_value_given_symbol:.2f}, MI = {r.mutual_information:.3f} bits"
            )
            tds.append(f"<td class='num' data-tip='{html.escape(tip)}'>{r.mutual_information:.2f}</td>")
        rows.append(f"<tr><th>{s}</th>{''.join(tds)}</tr>")
    return (
        "<p>Mutual information (bits) between a symbol appearing in a message and the object "
        "having an attribute value; hover a cell for counts. From the same utterances as the "
        f"headline language ({html.escape(analysis.language_source)}).</p>"
        f"<div style='overflow-x:auto'><table><tr><th>symbol</th>{head}</tr>{''.join(rows)}</table></div>"
    )


def _config_html(analysis: Analysis) -> str:
    import yaml

    text = yaml.safe_dump(analysis.data.config.to_dict(), sort_keys=False)
    return f"<h2>Config</h2><pre class='config'>{html.escape(text)}</pre>"


def _figure_html(name: str, caption: str, data: bytes | None) -> str:
    title = html.escape(name.replace("_", " ").capitalize())
    if data is None:
        return (
            f"<h2>{title}</h2><p>Not available for this run (it needs a checkpoint or logged messages).</p>"
        )
    encoded = base64.b64encode(data).decode("ascii")
    return (
        f"<h2>{title}</h2><figure><img alt='{html.escape(name)}' src='data:image/png;base64,{encoded}'>"
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def write_report(analysis: Analysis, folder: Path | None = None) -> Path:
    """Draw every figure, save the PNGs and the interactive report.html under ``folder`` (RUN/report)."""
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
    ]
    if s.get("mantel_warning"):
        warning = html.escape(s["mantel_warning"])
        parts.append(f"<p class='warning' id='mantel-warning'>Warning: {warning}</p>")
    parts += [_interactive_html(analysis), "<h2>Summary</h2>", _summary_table(s)]
    for name, caption, draw in FIGURES:
        fig = draw(analysis)
        data = _png(fig) if fig is not None else None
        if data is not None:
            (folder / f"{name}.png").write_bytes(data)
        parts.append(_figure_html(name, caption, data))
    parts += [
        "<h2>Symbols and attribute values</h2>",
        _symbols_html(analysis),
        "<h2>Lexicon table</h2>",
        _lexicon_html(analysis),
        _games_html(),
        _config_html(analysis),
    ]
    page = render_page(f"neurocomm report: {s['run_id']}", "".join(parts), run_page_data(analysis))
    out = folder / "report.html"
    out.write_text(page, encoding="utf-8")
    return out
