"""Analyse one run directory: every measure, as tables and a summary, written under RUN/analysis/.

The language is measured from two sources when both exist:

* ``checkpoint``: the agents rebuilt from a checkpoint (the latest, or ``at``), speaking
  greedily about a fixed evaluation set: clean, every agent on the same objects;
* ``messages``: the games of the messages log in the last 10% of the rounds analysed.

Dialects and intelligibility use the checkpoint when there is one, else the messages log
(without intelligibility, which needs weights).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from neurocomm.platform.analysis.communication import (
    final_success,
    population_success,
    rounds_to_threshold,
    success_by_agent,
    success_by_edge,
)
from neurocomm.platform.analysis.dialects import (
    MantelResult,
    cluster_languages,
    graph_communities,
    graph_distance_matrix,
    language_distance_matrix,
    mantel_test,
    normalized_mutual_information,
    off_diagonal_mean,
)
from neurocomm.platform.analysis.distances import MESSAGE_DISTANCES, MessageDistance
from neurocomm.platform.analysis.intelligibility import DEFAULT_EVAL_GAMES, intelligibility_table
from neurocomm.platform.analysis.language import (
    POPULATION,
    agent_mean,
    language_measures,
    log_window,
    utterances_from_log,
)
from neurocomm.platform.analysis.loading import RunData, load_run
from neurocomm.platform.analysis.message_stats import lexicon, lexicon_mapping
from neurocomm.platform.analysis.over_time import (
    CheckpointLanguage,
    checkpoint_rows,
    over_checkpoints,
    over_logged_rounds,
)
from neurocomm.platform.errors import RunDirError

THRESHOLDS = (0.5, 0.8, 0.9)
ANALYSIS_VERSION = 1


@dataclass
class Analysis:
    """Everything measured on one run; ``tables`` are what ``write_analysis`` saves."""

    data: RunData
    distance: str
    checkpoint_round: int | None
    language_source: str
    agent_ids: list[int]
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    intelligibility: np.ndarray | None = None
    language_distances: np.ndarray | None = None
    graph_distances: np.ndarray | None = None
    language_clusters: np.ndarray | None = None
    communities: np.ndarray | None = None
    mantel: MantelResult | None = None


def _pick_checkpoint(data: RunData, at: int | None) -> int | None:
    have = [r for r, _ in data.checkpoints]
    if at is None:
        return have[-1] if have else None
    if at not in have:
        listed = ", ".join(str(r) for r in have) or "none"
        raise RunDirError(f"{data.path}: no checkpoint at round {at}; checkpoints: {listed}")
    return at


def _pairs_table(ids: list[int], language: np.ndarray, graph: np.ndarray) -> pd.DataFrame:
    rows = []
    for a in range(len(ids)):
        for b in range(a + 1, len(ids)):
            rows.append(
                {
                    "agent_a": ids[a],
                    "agent_b": ids[b],
                    "language_distance": float(language[a, b]),
                    "graph_distance": float(graph[a, b]),
                }
            )
    return pd.DataFrame(rows, columns=["agent_a", "agent_b", "language_distance", "graph_distance"])


def _finite(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def analyze_run(
    path: str | Path,
    *,
    at: int | None = None,
    distance: MessageDistance = "edit",
    eval_games: int = DEFAULT_EVAL_GAMES,
    permutations: int = 999,
    seed: int = 0,
    with_over_time: bool = True,
) -> Analysis:
    """Every measure of the run at ``path`` (checkpoint ``at``, or the latest one)."""
    if distance not in MESSAGE_DISTANCES:
        raise ValueError(f"distance must be one of {', '.join(MESSAGE_DISTANCES)}")
    data = load_run(path)
    ckpt_round = _pick_checkpoint(data, at)
    end = ckpt_round if at is not None and ckpt_round is not None else data.rounds_done
    metrics = data.metrics[data.metrics["round"] < end]
    ids = list(range(data.n_agents))

    # -- communication
    population = population_success(data.metrics)
    tables = {
        "success_by_edge": success_by_edge(data.metrics),
        "success_by_agent": success_by_agent(data.metrics),
        "success_population": population,
    }

    # -- language, from the messages log and from the checkpoint(s)
    window = log_window(data.messages, end)
    log_measures = language_measures(utterances_from_log(window), distance).assign(
        source="messages"
    )
    checkpoints: list[CheckpointLanguage] = []
    if ckpt_round is not None:
        wanted = [r for r, _ in data.checkpoints] if with_over_time else [ckpt_round]
        checkpoints = over_checkpoints(data.run, data.config, distance, eval_games, rounds=wanted)
    chosen = next((c for c in checkpoints if c.round == ckpt_round), None)
    measure_frames = [log_measures]
    if chosen is not None:
        measure_frames.insert(0, chosen.measures.assign(source="checkpoint"))
        lex = lexicon(chosen.productions.rename(columns={"agent": "speaker", "object": "target"}))
        lex_source = "checkpoint"
    else:
        lex = lexicon(window)
        lex_source = "messages"
    tables["language"] = pd.concat([f for f in measure_frames if len(f)], ignore_index=True)
    tables["lexicon"] = lex.assign(source=lex_source)

    # -- dialects and intelligibility
    if chosen is not None:
        language = chosen.language_distances
        intel = chosen.intelligibility
    else:
        language = language_distance_matrix(lexicon_mapping(lex), ids)
        intel = None
    graph_d = graph_distance_matrix(data.graph, ids)
    mantel = mantel_test(language, graph_d, permutations=permutations, seed=seed)
    clusters = cluster_languages(language)
    communities = graph_communities(data.graph, seed=seed)
    nmi = normalized_mutual_information(clusters, communities)
    tables["language_distance"] = _pairs_table(ids, language, graph_d)
    tables["dialects"] = pd.DataFrame(
        {"agent": ids, "language_cluster": clusters, "graph_community": communities}
    )
    if intel is not None:
        tables["intelligibility"] = intelligibility_table(intel, ids, data.graph)

    # -- over time
    if with_over_time:
        frames = [over_logged_rounds(data.messages, distance), checkpoint_rows(checkpoints)]
        frames = [f for f in frames if len(f)]
        tables["over_time"] = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    headline = tables["language"]
    source = "checkpoint" if chosen is not None else "messages"
    pop = headline[(headline["source"] == source) & (headline["scope"] == POPULATION)]
    pop_row = pop.iloc[0].to_dict() if len(pop) else {}
    final = final_success(metrics)
    until = population_success(metrics)
    summary: dict[str, Any] = {
        "analysis_version": ANALYSIS_VERSION,
        "run_dir": str(data.path),
        "run_id": data.status.get("run_id", data.path.name),
        "name": data.config.name,
        "seed": data.config.seed,
        "status": data.status.get("status"),
        "rounds_done": data.rounds_done,
        "rounds_planned": data.status.get("rounds_planned"),
        "rounds_analysed": end,
        "n_agents": data.n_agents,
        "checkpoint_round": ckpt_round,
        "language_source": source,
        "distance": distance,
        "final_success": _finite(final["population"]),
        "rounds_to_success": {str(t): rounds_to_threshold(until, t) for t in THRESHOLDS},
        **{
            k: _finite(pop_row.get(k))
            for k in (
                "topsim",
                "posdis",
                "bosdis",
                "entropy",
                "synonymy",
                "homonymy",
                "mean_length",
            )
        },
        "symbols_used": _finite(pop_row.get("symbols_used")),
        "topsim_agent_mean": _finite(agent_mean(headline[headline["source"] == source], "topsim"))
        if len(headline)
        else None,
        "intelligibility_mean": _finite(off_diagonal_mean(intel)) if intel is not None else None,
        "intelligibility_neighbours": None,
        "intelligibility_strangers": None,
        "language_distance_mean": _finite(off_diagonal_mean(language)),
        "mantel_r": _finite(mantel.r),
        "mantel_p": _finite(mantel.p_value),
        "mantel_permutations": mantel.permutations,
        "language_clusters": int(len(set(clusters.tolist()))),
        "graph_communities": int(len(set(communities.tolist()))),
        "clusters_communities_nmi": _finite(nmi),
    }
    if intel is not None:
        table = tables["intelligibility"]
        others = table[~table["self"]]
        for key, linked in (
            ("intelligibility_neighbours", True),
            ("intelligibility_strangers", False),
        ):
            part = others[others["neighbours"] == linked]["success"]
            summary[key] = _finite(float(part.mean())) if len(part) else None
    return Analysis(
        data=data,
        distance=distance,
        checkpoint_round=ckpt_round,
        language_source=source,
        agent_ids=ids,
        tables=tables,
        summary=summary,
        intelligibility=intel,
        language_distances=language,
        graph_distances=graph_d,
        language_clusters=clusters,
        communities=communities,
        mantel=mantel,
    )


def _parquet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """Tuples become lists (Parquet list columns); everything else is kept."""
    out = frame.copy()
    for col in out.columns:
        if out[col].dtype == object and len(out) and isinstance(out[col].iloc[0], tuple):
            out[col] = [list(v) for v in out[col]]
    return out


def write_analysis(analysis: Analysis, folder: Path | None = None) -> Path:
    """Write every table as ``NAME.parquet`` and ``summary.json`` to ``folder`` (RUN/analysis)."""
    folder = Path(folder) if folder is not None else analysis.data.path / "analysis"
    folder.mkdir(parents=True, exist_ok=True)
    for name, table in analysis.tables.items():
        _parquet_safe(table).to_parquet(folder / f"{name}.parquet", index=False)
    (folder / "summary.json").write_text(json.dumps(analysis.summary, indent=2) + "\n")
    return folder


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return "n/a" if not math.isfinite(value) else f"{value:.{digits}f}"
    return str(value)


def format_summary(analysis: Analysis) -> str:
    """A few readable lines about the run's language."""
    s = analysis.summary
    lines = [
        f"run: {s['run_id']} ({s['status']}, {s['rounds_done']} rounds, {s['n_agents']} agents)"
    ]
    if s["status"] != "finished":
        lines.append(f"  partial run: analysed the {s['rounds_done']} rounds written so far")
    ckpt = (
        f"checkpoint at round {s['checkpoint_round']}"
        if s["checkpoint_round"] is not None
        else "no checkpoint (language from the messages log; no intelligibility)"
    )
    lines.append(f"language measured from: {ckpt}")
    reached = ", ".join(f"{t}: {_fmt(r)}" for t, r in s["rounds_to_success"].items())
    lines.append(
        f"communication: final success {_fmt(s['final_success'])}; "
        f"rounds to success (10-round mean) {reached}"
    )
    lines.append(
        f"messages: entropy {_fmt(s['entropy'])} bits, {_fmt(s['symbols_used'], 0)} symbols "
        f"used, mean length {_fmt(s['mean_length'], 2)}, synonymy {_fmt(s['synonymy'], 2)}, "
        f"homonymy {_fmt(s['homonymy'], 2)}"
    )
    lines.append(
        f"compositionality (population, {s['distance']} distance): topsim {_fmt(s['topsim'])}, "
        f"posdis {_fmt(s['posdis'])}, bosdis {_fmt(s['bosdis'])}; "
        f"mean topsim per agent {_fmt(s['topsim_agent_mean'])}"
    )
    if s["intelligibility_mean"] is not None:
        lines.append(
            f"intelligibility: mean {_fmt(s['intelligibility_mean'])} between agents "
            f"(neighbours {_fmt(s['intelligibility_neighbours'])}, "
            f"never talked {_fmt(s['intelligibility_strangers'])})"
        )
    lines.append(
        f"dialects: mean language distance {_fmt(s['language_distance_mean'])}; "
        f"Mantel r {_fmt(s['mantel_r'])} (p {_fmt(s['mantel_p'])}) vs graph distance; "
        f"{s['language_clusters']} language cluster(s), {s['graph_communities']} graph "
        f"communities, NMI {_fmt(s['clusters_communities_nmi'])}"
    )
    return "\n".join(lines)
