"""The data behind the report's interactive views, as plain JSON-ready values.

Everything here is read from an :class:`Analysis` (its tables) and the run's messages log; the
page's script only draws it. ``render_page`` fills the one HTML template that both the run
report and the comparison page use.
"""

from __future__ import annotations

import html
import json
import math
import re
from importlib import resources
from typing import Any

import pandas as pd

from neurocomm.platform.analysis.plots import graph_layout
from neurocomm.platform.analysis.run_analysis import Analysis
from neurocomm.platform.analysis.run_details import sample_games

TEMPLATE = "report_page.html"
MAX_GAMES = 1000


def _number(v: Any) -> float | None:
    if v is None:
        return None
    v = float(v)
    return round(v, 4) if math.isfinite(v) else None


def _text(values: Any) -> str:
    return " ".join(str(int(x)) for x in values)


def checkpoint_views(analysis: Analysis) -> list[dict[str, Any]]:
    """One entry per checkpoint (round, N×N intelligibility or None, cluster per agent).

    Without the per-checkpoint tables (an analysis run ``with_over_time=False``), or without a
    checkpoint, one entry for the headline language when the run has a language at all.
    """
    ids = analysis.agent_ids
    intel = analysis.tables.get("intelligibility_by_checkpoint")
    dialects = analysis.tables.get("dialects_by_checkpoint")
    views: list[dict[str, Any]] = []
    if dialects is not None and len(dialects):
        for round_, part in dialects.groupby("round", sort=True):
            clusters = dict(zip(part["agent"].astype(int), part["language_cluster"].astype(int)))
            matrix = None
            if intel is not None and len(intel):
                cells = intel[intel["round"] == round_]
                pairs = zip(cells["speaker"], cells["listener"], cells["success"])
                lookup = {(int(s), int(t)): float(v) for s, t, v in pairs}
                if lookup:
                    matrix = [[_number(lookup.get((a, b))) for b in ids] for a in ids]
            views.append(
                {
                    "label": f"checkpoint at round {int(round_)}",
                    "round": int(round_),
                    "intelligibility": matrix,
                    "clusters": [clusters.get(a) for a in ids],
                }
            )
    elif analysis.language_clusters is not None:
        at = analysis.checkpoint_round
        matrix = analysis.intelligibility
        views.append(
            {
                "label": f"checkpoint at round {at}"
                if at is not None
                else "messages log (last 10% of rounds)",
                "round": at,
                "intelligibility": [[_number(v) for v in row] for row in matrix]
                if matrix is not None
                else None,
                "clusters": [int(c) for c in analysis.language_clusters],
            }
        )
    return views


def graph_view(analysis: Analysis) -> dict[str, Any]:
    """Nodes (id, x, y in [0, 1], community, degree) and undirected edges of the topology."""
    graph = analysis.data.graph
    pos = graph_layout(analysis)
    xs = [p[0] for p in pos.values()] or [0.0]
    ys = [p[1] for p in pos.values()] or [0.0]
    span_x, span_y = (max(xs) - min(xs)) or 1.0, (max(ys) - min(ys)) or 1.0
    communities = analysis.communities
    nodes = [
        {
            "id": a,
            "x": round((pos[a][0] - min(xs)) / span_x, 4),
            "y": round((pos[a][1] - min(ys)) / span_y, 4),
            "community": int(communities[k]) if communities is not None else 0,
            "degree": int(graph.degree(a)),
        }
        for k, a in enumerate(analysis.agent_ids)
    ]
    edges = sorted({tuple(sorted((int(u), int(v)))) for u, v in graph.edges() if u != v})
    return {"nodes": nodes, "edges": [list(e) for e in edges]}


def games_view(messages: pd.DataFrame, n: int = MAX_GAMES, seed: int = 0) -> dict[str, Any]:
    """A seeded sample of the messages log as rows for the games table."""
    games = sample_games(messages, n, seed)
    rows = [
        [
            int(g["round"]),
            int(g["speaker"]),
            int(g["listener"]),
            _text(g["target"]),
            _text(g["message"]),
            int(g["choice"]) if "choice" in g and pd.notna(g["choice"]) else None,
            int(g["target_index"]) if "target_index" in g and pd.notna(g["target_index"]) else None,
            bool(g["success"]) if "success" in g and pd.notna(g["success"]) else None,
        ]
        for g in games.to_dict("records")
    ]
    columns = ["round", "speaker", "listener", "target", "message", "choice", "target_index", "success"]
    return {"columns": columns, "rows": rows, "logged": int(len(messages))}


def run_page_data(analysis: Analysis) -> dict[str, Any]:
    """Everything the run page's script draws."""
    views = checkpoint_views(analysis)
    rounds = [v["round"] for v in views]
    return {
        "kind": "run",
        "agents": analysis.agent_ids,
        "checkpoints": views,
        # the slider starts at the analysed checkpoint (``--at``), else the last one
        "start": rounds.index(analysis.checkpoint_round)
        if analysis.checkpoint_round in rounds
        else len(views) - 1,
        "graph": graph_view(analysis),
        "games": games_view(analysis.data.messages),
    }


def render_page(title: str, body: str, data: dict[str, Any]) -> str:
    """The HTML template with its title, static body and the data as inline JSON."""
    template = resources.files("neurocomm.platform.analysis").joinpath(TEMPLATE).read_text(encoding="utf-8")
    payload = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    fill = {"TITLE": html.escape(title), "BODY": body, "DATA": payload}
    return re.sub(r"\{\{(TITLE|BODY|DATA)\}\}", lambda m: fill[m.group(1)], template)
