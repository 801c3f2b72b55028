"""The report's figures, drawn with matplotlib's Agg backend (no display needed).

Each function takes an :class:`Analysis` and returns a matplotlib Figure, or None when the run
has nothing to draw for it (e.g. no checkpoint for the intelligibility heatmap).
"""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402 - the backend must be chosen first
import networkx as nx  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from neurocomm.platform.analysis.communication import smoothed  # noqa: E402
from neurocomm.platform.analysis.language import POPULATION  # noqa: E402
from neurocomm.platform.analysis.run_analysis import THRESHOLDS, Analysis  # noqa: E402

CLUSTER_COLOURS = plt.get_cmap("tab10")
COMMUNITY_SHAPES = "osD^vph8<>"
MAX_LEXICON_OBJECTS = 32
MAX_LEXICON_AGENTS = 16


def learning_curves(analysis: Analysis, window: int = 10) -> Figure:
    """Population success (smoothed) and each agent's success as listener, over rounds."""
    fig, ax = plt.subplots(figsize=(7, 4))
    per_agent = analysis.tables["success_by_agent"]
    listeners = per_agent[per_agent["role"] == "listener"]
    for agent, part in listeners.groupby("agent"):
        ax.plot(
            part["round"],
            smoothed(part["success"].reset_index(drop=True), window),
            lw=0.8,
            alpha=0.5,
            label=f"agent {agent} (listener)" if agent < 8 else None,
        )
    pop = analysis.tables["success_population"]
    ax.plot(
        pop["round"],
        smoothed(pop["success"].reset_index(drop=True), window),
        color="black",
        lw=2,
        label="population",
    )
    evaluated = pop.dropna(subset=["eval_success"]) if "eval_success" in pop else pop.iloc[:0]
    if len(evaluated):
        ax.plot(
            evaluated["round"],
            evaluated["eval_success"],
            color="black",
            ls="--",
            marker="o",
            ms=3,
            lw=1,
            label="population, greedy evaluation (unsmoothed)",
        )
    for t in THRESHOLDS:
        ax.axhline(t, color="grey", ls=":", lw=0.8)
    ax.set_xlabel("round")
    ax.set_ylabel(f"success ({window}-round moving mean)")
    ax.set_ylim(0, 1.02)
    ax.set_title("Communicative success")
    ax.legend(fontsize=7, loc="lower right", ncol=2)
    fig.tight_layout()
    return fig


def cluster_order(analysis: Analysis) -> list[int]:
    """Agent indices sorted by language cluster, then id."""
    clusters = analysis.language_clusters
    ids = analysis.agent_ids
    if clusters is None:
        return list(range(len(ids)))
    return sorted(range(len(ids)), key=lambda k: (int(clusters[k]), ids[k]))


def intelligibility_heatmap(analysis: Analysis) -> Figure | None:
    """Success when row speaks and column listens, agents ordered by language cluster."""
    matrix = analysis.intelligibility
    if matrix is None:
        return None
    order = cluster_order(analysis)
    m = matrix[np.ix_(order, order)]
    n = len(order)
    size = min(9.0, 3 + 0.35 * n)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(m, vmin=0, vmax=1, cmap="viridis")
    labels = [str(analysis.agent_ids[k]) for k in order]
    ax.set_xticks(range(n), labels, fontsize=7 if n > 16 else 9)
    ax.set_yticks(range(n), labels, fontsize=7 if n > 16 else 9)
    ax.set_xlabel("listener")
    ax.set_ylabel("speaker")
    if n <= 12:
        for i in range(n):
            for j in range(n):
                ax.text(
                    j,
                    i,
                    f"{m[i, j]:.2f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if m[i, j] < 0.6 else "black",
                )
    clusters = analysis.language_clusters
    if clusters is not None:
        ordered = [int(clusters[k]) for k in order]
        for k in range(1, n):
            if ordered[k] != ordered[k - 1]:
                ax.axhline(k - 0.5, color="red", lw=1.5)
                ax.axvline(k - 0.5, color="red", lw=1.5)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="success")
    ax.set_title(
        f"Mutual intelligibility at round {analysis.checkpoint_round}\n"
        "(ordered by language cluster; red lines separate clusters)",
        fontsize=10,
    )
    fig.tight_layout()
    return fig


def dialect_graph(analysis: Analysis, seed: int = 0) -> Figure:
    """The topology, nodes coloured by language cluster, shaped by graph community."""
    graph = analysis.data.graph
    fig, ax = plt.subplots(figsize=(6, 5))
    pos = graph_layout(analysis, seed)
    ids = analysis.agent_ids
    clusters = analysis.language_clusters if analysis.language_clusters is not None else np.zeros(len(ids))
    communities = analysis.communities if analysis.communities is not None else np.zeros(len(ids))
    nx.draw_networkx_edges(graph, pos, ax=ax, alpha=0.4)
    for community in sorted({int(c) for c in communities}):
        members = [i for i, c in zip(ids, communities) if int(c) == community]
        nx.draw_networkx_nodes(
            graph,
            pos,
            nodelist=members,
            ax=ax,
            node_size=380,
            edgecolors="black",
            node_shape=COMMUNITY_SHAPES[community % len(COMMUNITY_SHAPES)],
            node_color=[CLUSTER_COLOURS(int(clusters[ids.index(i)]) % 10) for i in members],
        )
    nx.draw_networkx_labels(graph, pos, labels={i: str(i) for i in ids}, font_size=8, ax=ax)
    s = analysis.summary
    nmi = s.get("clusters_communities_nmi")
    nmi_text = f"NMI = {nmi:.2f}" if nmi is not None else "NMI n/a"
    ax.set_title(
        f"Dialects: fill = language cluster ({s.get('language_clusters')}), "
        f"shape = graph community ({s.get('graph_communities')})\n{nmi_text}",
        fontsize=9,
    )
    ax.set_axis_off()
    fig.tight_layout()
    return fig


def distance_scatter(analysis: Analysis) -> Figure | None:
    """Language distance of each pair of agents against their distance in the graph."""
    table = analysis.tables.get("language_distance")
    if table is None or table.empty:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    finite = table[np.isfinite(table["graph_distance"]) & np.isfinite(table["language_distance"])]
    jitter = np.random.default_rng(0).uniform(-0.08, 0.08, len(finite))
    ax.scatter(finite["graph_distance"] + jitter, finite["language_distance"], s=18, alpha=0.7)
    means = finite.groupby("graph_distance")["language_distance"].mean()
    ax.plot(means.index, means.values, color="black", marker="o", lw=1.5, label="mean")
    ax.set_xlabel("shortest-path distance in the graph (hops)")
    ax.set_ylabel("language distance (normalised edit)")
    ax.set_ylim(-0.02, 1.02)
    mantel = analysis.mantel
    if mantel is not None and np.isfinite(mantel.r):
        kind = "exact" if mantel.exact else f"{mantel.permutations} permutations"
        ax.set_title(f"Mantel r = {mantel.r:.3f}, p = {mantel.p_value:.3g} ({kind})", fontsize=10)
    else:
        ax.set_title("Mantel test undefined (constant distances)", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def compositionality_over_time(analysis: Analysis) -> Figure | None:
    """Population topsim, posdis, bosdis (and intelligibility) over rounds."""
    table = analysis.tables.get("over_time")
    if table is None or table.empty:
        return None
    pop = table[table["scope"] == POPULATION]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    colours = {"topsim": "C0", "posdis": "C1", "bosdis": "C2"}
    for measure, colour in colours.items():
        logged = pop[pop["source"] == "messages"]
        if len(logged):
            axes[0].plot(
                logged["round"],
                logged[measure],
                color=colour,
                lw=1,
                alpha=0.8,
                label=f"{measure} (messages log)",
            )
        ckpt = pop[pop["source"] == "checkpoint"]
        if len(ckpt):
            axes[0].plot(
                ckpt["round"],
                ckpt[measure],
                color=colour,
                marker="o",
                ls="--",
                label=f"{measure} (checkpoint, greedy)",
            )
    axes[0].set_xlabel("round")
    axes[0].set_ylabel("population value")
    axes[0].set_title(f"Compositionality ({analysis.distance} distance for topsim)", fontsize=10)
    axes[0].legend(fontsize=7)
    ckpt = pop[pop["source"] == "checkpoint"]
    if len(ckpt) and "intelligibility" in ckpt:
        axes[1].plot(
            ckpt["round"],
            ckpt["intelligibility"],
            marker="o",
            label="intelligibility (mean, i ≠ j)",
        )
        axes[1].plot(ckpt["round"], ckpt["language_distance"], marker="s", label="language distance (mean)")
    logged = pop[pop["source"] == "messages"]
    if len(logged):
        axes[1].plot(
            logged["round"],
            logged["entropy"] / max(1.0, float(logged["entropy"].max())),
            color="grey",
            lw=1,
            label="message entropy (scaled to max)",
        )
    axes[1].set_xlabel("round")
    axes[1].set_ylim(-0.02, 1.02)
    axes[1].set_title("Population over time", fontsize=10)
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    return fig


def lexicon_grid(analysis: Analysis) -> tuple[list[str], list[str], list[list[str]]]:
    """(objects, agents, cells): each agent's most frequent message per object, as text.

    At most 32 objects and 16 agents (the first ones in order).
    """
    lex = analysis.tables["lexicon"]
    objects = sorted({tuple(o) for o in lex["object"]})[:MAX_LEXICON_OBJECTS]
    agents = sorted({int(a) for a in lex["agent"]})[:MAX_LEXICON_AGENTS]
    lookup = {(int(a), tuple(o)): tuple(m) for a, o, m in zip(lex["agent"], lex["object"], lex["message"])}
    cells = [[" ".join(map(str, lookup.get((a, o), ()))) or "-" for a in agents] for o in objects]
    return [object_label(o) for o in objects], [str(a) for a in agents], cells


def object_label(obj: tuple[int, ...]) -> str:
    """An object's attribute values as text: digits run together when all are below 10."""
    return "".join(map(str, obj)) if all(0 <= v < 10 for v in obj) else ",".join(map(str, obj))


def lexicon_table(analysis: Analysis) -> Figure | None:
    """The lexicon grid drawn as a table (objects as rows, agents as columns)."""
    objects, agents, cells = lexicon_grid(analysis)
    if not objects:
        return None
    fig, ax = plt.subplots(figsize=(1.5 + 0.9 * len(agents), 0.8 + 0.24 * len(objects)))
    ax.set_axis_off()
    table = ax.table(
        cellText=cells,
        rowLabels=objects,
        colLabels=[f"agent {a}" for a in agents],
        loc="center",
        cellLoc="center",
    )
    table.auto_set_font_size(False)
    table.set_fontsize(7)
    ax.set_title("Lexicon: each agent's most frequent message per object", fontsize=9)
    fig.tight_layout()
    return fig


def graph_layout(analysis: Analysis, seed: int = 0) -> dict[int, tuple[float, float]]:
    """Node positions of the interaction graph (spring layout, seeded): the figure's and the page's."""
    pos = nx.spring_layout(analysis.data.graph, seed=seed)
    return {int(k): (float(v[0]), float(v[1])) for k, v in pos.items()}


MAX_EDGE_PANELS = 36


def edge_curves(analysis: Analysis, window: int = 10) -> Figure | None:
    """One small panel per directed edge: its training success (smoothed) and greedy evaluation."""
    table = analysis.tables["success_by_edge"]
    edges = sorted({(int(s), int(t)) for s, t in zip(table["speaker"], table["listener"])})
    if not edges:
        return None
    shown = edges[:MAX_EDGE_PANELS]
    cols = min(6, len(shown))
    rows = math.ceil(len(shown) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.9 * cols + 0.6, 1.5 * rows + 0.6), squeeze=False)
    by_edge = dict(iter(table.groupby(["speaker", "listener"])))
    for ax, (s, t) in zip(axes.flat, shown):
        part = by_edge[(s, t)]
        ax.plot(part["round"], smoothed(part["success"].reset_index(drop=True), window), lw=1)
        evaluated = part.dropna(subset=["eval_success"])
        if len(evaluated):
            ax.plot(evaluated["round"], evaluated["eval_success"], "k.", ms=3)
        ax.set_ylim(0, 1.02)
        ax.set_title(f"{s} → {t}", fontsize=8)
        ax.tick_params(labelsize=6)
    for ax in list(axes.flat)[len(shown) :]:
        ax.set_axis_off()
    more = f" (first {len(shown)} of {len(edges)})" if len(edges) > len(shown) else ""
    fig.suptitle(
        f"Success per directed edge, speaker → listener{more}: {window}-round mean (line), "
        "greedy evaluation (dots)",
        fontsize=9,
    )
    fig.tight_layout()
    return fig


def training_curves(analysis: Analysis, window: int = 10) -> Figure | None:
    """The population's listener and speaker loss, message length and entropy over rounds."""
    table = analysis.tables.get("training_curves")
    if table is None or table.empty:
        return None
    panels = (
        ("listener_loss", "listener loss"),
        ("speaker_loss", "speaker loss"),
        ("msg_length", "message length (symbols)"),
        ("entropy", "speaker entropy"),
    )
    fig, axes = plt.subplots(1, 4, figsize=(13, 3))
    for ax, (column, label) in zip(axes, panels):
        values = table[column].astype(float).reset_index(drop=True)
        if values.notna().any():
            ax.plot(table["round"], values, lw=0.6, alpha=0.4, color="C0")
            ax.plot(table["round"], smoothed(values, window), lw=1.5, color="C0")
        else:
            ax.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("round", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.suptitle(f"Training curves (population mean per round; bold: {window}-round mean)", fontsize=9)
    fig.tight_layout()
    return fig


def symbol_attribute_heatmap(analysis: Analysis) -> Figure | None:
    """Mutual information of each symbol with each attribute value (rows symbols, columns values)."""
    table = analysis.tables.get("symbol_attributes")
    if table is None or table.empty:
        return None
    grid = table.pivot_table(index="symbol", columns=["attribute", "value"], values="mutual_information")
    fig, ax = plt.subplots(
        figsize=(min(14, max(6.0, 2 + 0.45 * grid.shape[1])), min(10, 2 + 0.3 * grid.shape[0]))
    )
    image = ax.imshow(grid.to_numpy(), aspect="auto", cmap="magma", vmin=0)
    ax.set_xticks(range(grid.shape[1]), [f"a{a}={v}" for a, v in grid.columns], rotation=90, fontsize=7)
    ax.set_yticks(range(grid.shape[0]), [str(s) for s in grid.index], fontsize=7)
    ax.set_xlabel("attribute = value")
    ax.set_ylabel("symbol")
    fig.colorbar(image, ax=ax, label="mutual information (bits)")
    ax.set_title("Symbols × attribute values: I(symbol in message; object has value)", fontsize=9)
    fig.tight_layout()
    return fig
