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
    final_eval_success,
    population_success,
    rounds_to_threshold,
    success_by_agent,
    success_by_edge,
    tail_success,
)
from neurocomm.platform.analysis.dialects import (
    MantelResult,
    cluster_languages,
    graph_communities,
    graph_distance_matrix,
    language_distance_matrix,
    mantel_test,
    mantel_warning,
    normalized_mutual_information,
    off_diagonal_mean,
)
from neurocomm.platform.analysis.distances import MESSAGE_DISTANCES, MessageDistance
from neurocomm.platform.analysis.intelligibility import DEFAULT_EVAL_GAMES, intelligibility_table
from neurocomm.platform.analysis.language import (
    MEASURES,
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
from neurocomm.platform.analysis.run_details import symbol_attributes, training_curves
from neurocomm.platform.errors import RunDirError

THRESHOLDS = (0.5, 0.8, 0.9)
ANALYSIS_VERSION = 3  # 2: summary key final_success renamed tail_success; 3: per-checkpoint tables


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
    checkpoints: list[CheckpointLanguage] = field(default_factory=list)  # every one measured


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


def _finite(x: Any) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _population_curves(metrics: pd.DataFrame) -> pd.DataFrame:
    """Columns round, success, eval_success (NaN at rounds without a greedy evaluation)."""
    train = population_success(metrics)
    evaluated = population_success(metrics, "eval_success").rename(columns={"success": "eval_success"})
    return train.merge(evaluated, on="round", how="left")


def _language_tables(
    window: pd.DataFrame, chosen: CheckpointLanguage | None, distance: MessageDistance
) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """(language measures of both sources, lexicon, source of the headline language)."""
    frames = [language_measures(utterances_from_log(window), distance).assign(source="messages")]
    if chosen is not None:
        frames.insert(0, chosen.measures.assign(source="checkpoint"))
        productions = chosen.productions.rename(columns={"agent": "speaker", "object": "target"})
        lex, source = lexicon(productions), "checkpoint"
    else:
        lex, source = lexicon(window), "messages" if len(window) else "none"
    measures = pd.concat(frames, ignore_index=True)
    return measures, lex.assign(source=source), source


def _add_dialects(
    analysis: Analysis, chosen: CheckpointLanguage | None, permutations: int, seed: int
) -> None:
    """Language distances, Mantel test, clusters and intelligibility onto ``analysis``."""
    ids, graph, tables = analysis.agent_ids, analysis.data.graph, analysis.tables
    analysis.communities = graph_communities(graph, seed=seed)
    analysis.graph_distances = graph_distance_matrix(graph, ids)
    if analysis.language_source == "none":
        return
    if chosen is not None:
        language, analysis.intelligibility = chosen.language_distances, chosen.intelligibility
    else:
        language = language_distance_matrix(lexicon_mapping(tables["lexicon"]), ids)
    analysis.language_distances = language
    analysis.mantel = mantel_test(language, analysis.graph_distances, permutations=permutations, seed=seed)
    analysis.language_clusters = cluster_languages(language)
    tables["language_distance"] = _pairs_table(ids, language, analysis.graph_distances)
    tables["dialects"] = pd.DataFrame(
        {
            "agent": ids,
            "language_cluster": analysis.language_clusters,
            "graph_community": analysis.communities,
        }
    )
    if analysis.intelligibility is not None:
        tables["intelligibility"] = intelligibility_table(analysis.intelligibility, ids, graph)


def _checkpoint_tables(checkpoints: list[CheckpointLanguage], graph: Any) -> dict[str, pd.DataFrame]:
    """Intelligibility (speaker, listener, success, ...) and dialects (agent, language_cluster)
    at every checkpoint, each row with its ``round``."""
    tables: dict[str, pd.DataFrame] = {}
    intel = [
        intelligibility_table(c.intelligibility, c.agent_ids, graph).assign(round=c.round)
        for c in checkpoints
        if c.intelligibility is not None
    ]
    if intel:
        tables["intelligibility_by_checkpoint"] = pd.concat(intel, ignore_index=True)
    dialects = [
        pd.DataFrame(
            {
                "round": c.round,
                "agent": c.agent_ids,
                "language_cluster": cluster_languages(c.language_distances),
            }
        )
        for c in checkpoints
    ]
    if dialects:
        tables["dialects_by_checkpoint"] = pd.concat(dialects, ignore_index=True)
    return tables


def analyze_run(
    path: str | Path,
    *,
    at: int | None = None,
    distance: MessageDistance = "edit",
    eval_games: int = DEFAULT_EVAL_GAMES,
    permutations: int = 999,
    seed: int = 0,
    with_over_time: bool = True,
    trust: bool = False,
) -> Analysis:
    """Every measure of the run at ``path`` (checkpoint ``at``, or the latest one).

    ``trust``: import plug-in code that the run's config names by import path (see
    :func:`~neurocomm.platform.analysis.loading.load_run`).

    ``seed`` drives the Mantel permutations and the community detection; ``eval_games`` is
    the size of the evaluation set for checkpoint productions and intelligibility.
    """
    if distance not in MESSAGE_DISTANCES:
        raise ValueError(f"distance must be one of {', '.join(MESSAGE_DISTANCES)}")
    data = load_run(path, trust=trust)
    ckpt_round = _pick_checkpoint(data, at)
    end = ckpt_round if at is not None and ckpt_round is not None else data.rounds_done
    tables = {
        "success_by_edge": success_by_edge(data.metrics),
        "success_by_agent": success_by_agent(data.metrics),
        "success_population": _population_curves(data.metrics),
        "training_curves": training_curves(data.metrics),
    }
    checkpoints: list[CheckpointLanguage] = []
    if ckpt_round is not None:
        wanted = [r for r, _ in data.checkpoints] if with_over_time else [ckpt_round]
        checkpoints = over_checkpoints(data.run, data.config, distance, eval_games, rounds=wanted)
    chosen = next((c for c in checkpoints if c.round == ckpt_round), None)
    window = log_window(data.messages, end)
    tables["language"], tables["lexicon"], source = _language_tables(window, chosen, distance)
    analysis = Analysis(data, distance, ckpt_round, source, list(range(data.n_agents)), tables)
    analysis.checkpoints = checkpoints
    spoken = chosen.productions if chosen is not None else utterances_from_log(window)
    tables["symbol_attributes"] = symbol_attributes(spoken)
    _add_dialects(analysis, chosen, permutations, seed)
    if with_over_time:
        frames = [over_logged_rounds(data.messages, distance), checkpoint_rows(checkpoints)]
        frames = [f for f in frames if len(f)]
        tables["over_time"] = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        tables.update(_checkpoint_tables(checkpoints, data.graph))
    analysis.summary = _summary(analysis, data.metrics[data.metrics["round"] < end], end)
    return analysis


def _summary(analysis: Analysis, metrics: pd.DataFrame, end: int) -> dict[str, Any]:
    data, source = analysis.data, analysis.language_source
    language = analysis.tables["language"]
    headline = language[language["source"] == source]
    pop = headline[headline["scope"] == POPULATION]
    pop_row = pop.iloc[0].to_dict() if len(pop) else {}
    until = population_success(metrics)
    tail = tail_success(metrics)
    mantel = analysis.mantel
    clusters, intel = analysis.language_clusters, analysis.intelligibility
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
        "checkpoint_round": analysis.checkpoint_round,
        "language_source": source,
        "distance": analysis.distance,
        "tail_success": _finite(tail["population"]),
        "final_eval_success": _finite(final_eval_success(metrics)),
        "rounds_to_success": {str(t): rounds_to_threshold(until, t) for t in THRESHOLDS},
    }
    for key in MEASURES:
        summary[key] = _finite(pop_row.get(key))
    summary["topsim_agent_mean"] = _finite(agent_mean(headline, "topsim")) if len(headline) else None
    summary["intelligibility_mean"] = _finite(off_diagonal_mean(intel)) if intel is not None else None
    summary["intelligibility_neighbours"] = summary["intelligibility_strangers"] = None
    if intel is not None:
        others = analysis.tables["intelligibility"]
        others = others[~others["self"]]
        for key, linked in (
            ("intelligibility_neighbours", True),
            ("intelligibility_strangers", False),
        ):
            part = others[others["neighbours"] == linked]["success"]
            summary[key] = _finite(part.mean()) if len(part) else None
    lang_d = analysis.language_distances
    summary["language_distance_mean"] = _finite(off_diagonal_mean(lang_d)) if lang_d is not None else None
    summary["mantel_r"] = _finite(mantel.r) if mantel else None
    summary["mantel_p"] = _finite(mantel.p_value) if mantel else None
    summary["mantel_permutations"] = mantel.permutations if mantel else 0
    summary["mantel_warning"] = mantel_warning(mantel, data.n_agents) if mantel else None
    summary["language_clusters"] = int(len(set(clusters.tolist()))) if clusters is not None else None
    communities = analysis.communities
    summary["graph_communities"] = int(len(set(communities.tolist()))) if communities is not None else None
    summary["clusters_communities_nmi"] = (
        _finite(normalized_mutual_information(clusters, communities))
        if clusters is not None and communities is not None
        else None
    )
    return summary


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
    lines = [f"run: {s['run_id']} ({s['status']}, {s['rounds_done']} rounds, {s['n_agents']} agents)"]
    if s["status"] != "finished":
        lines.append(f"  partial run: analysed the {s['rounds_done']} rounds written so far")
    if s["checkpoint_round"] is not None:
        origin = f"greedy productions of the checkpoint at round {s['checkpoint_round']}"
    elif s["language_source"] == "messages":
        origin = "the messages log, last 10% of rounds (no checkpoint: no intelligibility)"
    else:
        origin = "nothing: no checkpoint and no logged messages"
    lines.append(f"language measured from: {origin}")
    reached = ", ".join(f"{t}: {_fmt(r)}" for t, r in s["rounds_to_success"].items())
    lines.append(
        f"communication: final success {_fmt(s['tail_success'])} (training games, last 10% of "
        f"rounds), {_fmt(s['final_eval_success'])} (greedy evaluation, last evaluated round); "
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
    if s["language_source"] == "none":
        return "\n".join(lines)
    lines.append(
        f"dialects: mean language distance {_fmt(s['language_distance_mean'])}; "
        f"Mantel r {_fmt(s['mantel_r'])} (p {_fmt(s['mantel_p'])}) vs graph distance; "
        f"{s['language_clusters']} language cluster(s), {s['graph_communities']} graph "
        f"communities, NMI {_fmt(s['clusters_communities_nmi'])}"
    )
    if s.get("mantel_warning"):
        lines.append(f"  warning: {s['mantel_warning']}")
    return "\n".join(lines)
