"""Dialects: how far apart agents' languages are, and whether that follows the graph.

* Language distance between two agents: the mean normalised edit distance (Levenshtein over the
  longer length, in [0, 1]) between their messages for the same objects.
* Mantel test (Mantel 1967): permutation test of the correlation between two distance
  matrices, here language distance and shortest-path distance in the topology.
* Dialect clusters: average-linkage hierarchical clustering of the language distances, the
  number of clusters picked by the mean silhouette (Rousseeuw 1987). When no split has a
  silhouette above 0.25 ("no substantial structure", Kaufman & Rousseeuw 1990) the agents
  form one dialect if their mean language distance is at most 0.5, else one dialect each.
* Graph communities: Louvain (Blondel et al. 2008) or greedy modularity (Clauset et al. 2004),
  seeded; clusters and communities are compared with normalised mutual information
  (arithmetic-mean normalisation, Strehl & Ghosh 2002 / Vinh et al. 2010).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import networkx as nx
import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import squareform
from scipy.stats import rankdata

from neurocomm.platform.analysis.distances import normalised_edit_distances
from neurocomm.platform.analysis.information import entropy_bits, mutual_information_bits

Lexicon = Mapping[Hashable, Sequence[int]]

NO_STRUCTURE_SILHOUETTE = 0.25
DEFAULT_THRESHOLD = 0.5


# ---------------------------------------------------------------------------- distances


def language_distance(a: Lexicon, b: Lexicon) -> float:
    """Mean normalised edit distance between two lexicons ({object: message}) on shared objects."""
    shared = sorted(set(a) & set(b), key=repr)
    if not shared:
        return math.nan
    return float(np.mean(normalised_edit_distances([a[o] for o in shared], [b[o] for o in shared])))


def language_distance_matrix(lexicons: Mapping[int, Lexicon], ids: Sequence[int] | None = None) -> np.ndarray:
    """(N, N) language distances; NaN for a pair with no object in common."""
    ids = list(ids) if ids is not None else sorted(lexicons)
    out = np.zeros((len(ids), len(ids)))
    for a, b in itertools.combinations(range(len(ids)), 2):
        d = language_distance(lexicons.get(ids[a], {}), lexicons.get(ids[b], {}))
        out[a, b] = out[b, a] = d
    return out


def graph_distance_matrix(graph: nx.Graph, ids: Sequence[int] | None = None) -> np.ndarray:
    """(N, N) shortest-path lengths in hops, edges taken as undirected; inf when unreachable."""
    ids = list(ids) if ids is not None else sorted(graph.nodes)
    undirected = graph.to_undirected(as_view=True) if graph.is_directed() else graph
    lengths = dict(nx.all_pairs_shortest_path_length(undirected))
    out = np.full((len(ids), len(ids)), np.inf)
    for a, u in enumerate(ids):
        for b, v in enumerate(ids):
            if v in lengths.get(u, {}):
                out[a, b] = lengths[u][v]
    return out


def filled(distances: np.ndarray) -> np.ndarray:
    """A copy with non-finite off-diagonal entries replaced by the mean of the finite ones."""
    out = np.array(distances, dtype=float)
    off = ~np.eye(len(out), dtype=bool)
    ok = np.isfinite(out) & off
    fill = float(out[ok].mean()) if ok.any() else 1.0
    out[off & ~np.isfinite(out)] = fill
    np.fill_diagonal(out, 0.0)
    return out


# ---------------------------------------------------------------------------- Mantel test


@dataclass(frozen=True)
class MantelResult:
    r: float
    p_value: float
    permutations: int
    pairs: int
    method: str
    exact: bool


def _corr(x: np.ndarray, y: np.ndarray, method: str) -> float:
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan
    if method == "spearman":
        x, y = rankdata(x), rankdata(y)
    return float(np.corrcoef(x, y)[0, 1])


def mantel_test(
    a: np.ndarray,
    b: np.ndarray,
    *,
    permutations: int = 999,
    seed: int = 0,
    method: Literal["pearson", "spearman"] = "pearson",
    alternative: Literal["greater", "two-sided"] = "greater",
) -> MantelResult:
    """Correlation of two symmetric distance matrices and its permutation p-value.

    The agents' labels of ``b`` are permuted (rows and columns together). Pairs where either
    distance is not finite are left out. When N! ≤ ``permutations`` every permutation is
    enumerated and the p-value is exact; otherwise ``permutations`` random ones are drawn from
    ``numpy.random.default_rng(seed)`` and p = (k + 1) / (permutations + 1).
    ``alternative="greater"`` tests for a positive correlation (the usual Mantel question).
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"need two square matrices of the same shape, got {a.shape} and {b.shape}")
    n = a.shape[0]
    iu = np.triu_indices(n, k=1)
    x = a[iu]

    def statistic(bm: np.ndarray) -> float:
        y = bm[iu]
        ok = np.isfinite(x) & np.isfinite(y)
        return _corr(x[ok], y[ok], method)

    observed = statistic(b)
    pairs = int((np.isfinite(x) & np.isfinite(b[iu])).sum())
    if math.isnan(observed):
        return MantelResult(math.nan, math.nan, 0, pairs, method, False)
    exact = n <= 12 and math.factorial(n) <= permutations
    if exact:
        orders: Sequence[Sequence[int]] = list(itertools.permutations(range(n)))
    else:
        rng = np.random.default_rng(seed)
        orders = [rng.permutation(n) for _ in range(permutations)]
    stats = np.array([statistic(b[np.ix_(p, p)]) for p in orders])
    stats = np.nan_to_num(stats, nan=0.0)
    tol = 1e-12
    if alternative == "greater":
        hits = int((stats >= observed - tol).sum())
    else:
        hits = int((np.abs(stats) >= abs(observed) - tol).sum())
    p_value = hits / len(orders) if exact else (hits + 1) / (len(orders) + 1)
    return MantelResult(observed, float(p_value), len(orders), pairs, method, exact)


MIN_MANTEL_PERMUTATIONS = 100


def mantel_warning(result: MantelResult, n_agents: int) -> str | None:
    """A one-line warning when the test had too few permutations to mean much, else None.

    With N agents there are only N! distinct relabellings (24 for 4 agents), so p cannot fall
    below 1/N! and r rests on N(N-1)/2 pairs; under MIN_MANTEL_PERMUTATIONS the p-value cannot
    reach 0.01 and r and p are best read as descriptive.
    """
    if result.permutations == 0 or result.permutations >= MIN_MANTEL_PERMUTATIONS:
        return None
    remedy = "more agents" if result.exact else "more permutations"
    return (
        f"Mantel test on {n_agents} agents has only {result.permutations} permutations "
        f"({result.pairs} pairs): p cannot go below {1 / result.permutations:.3f}, so r and p "
        f"say little; it needs {remedy}"
    )


# ---------------------------------------------------------------------------- clustering


def _canonical(labels: Sequence[int] | np.ndarray) -> np.ndarray:
    """Labels renumbered 0, 1, ... in order of first appearance."""
    seen: dict[int, int] = {}
    return np.array([seen.setdefault(int(x), len(seen)) for x in labels], dtype=np.int64)


def silhouette(distances: np.ndarray, labels: Sequence[int] | np.ndarray) -> float:
    """Mean silhouette of a clustering (singletons count 0); NaN for 1 cluster or all singletons."""
    d = np.asarray(distances, dtype=float)
    labels = np.asarray(labels)
    clusters = np.unique(labels)
    if len(clusters) < 2 or len(clusters) >= len(labels):
        return math.nan
    scores = np.zeros(len(labels))
    for i in range(len(labels)):
        own = labels == labels[i]
        if own.sum() == 1:
            continue
        a = d[i, own & (np.arange(len(labels)) != i)].mean()
        b = min(d[i, labels == c].mean() for c in clusters if c != labels[i])
        scores[i] = 0.0 if max(a, b) == 0 else (b - a) / max(a, b)
    return float(scores.mean())


def cluster_languages(
    distances: np.ndarray,
    *,
    n_clusters: int | None = None,
    threshold: float | None = None,
    method: str = "average",
    max_clusters: int = 10,
) -> np.ndarray:
    """Dialect label (0, 1, ...) of each agent from the language-distance matrix.

    ``n_clusters`` cuts the tree into that many clusters; ``threshold`` cuts it at that
    distance; with neither, the number of clusters (2..N-1) with the best mean silhouette is
    used when it exceeds 0.25; otherwise there is no substantial structure and the agents form
    one dialect when their mean distance is at most 0.5, else one dialect each. Fewer than three
    agents are cut at 0.5.
    Missing distances are filled with the mean distance (:func:`filled`).
    """
    d = filled(distances)
    n = len(d)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if n == 1:
        return np.zeros(1, dtype=np.int64)
    tree = linkage(squareform((d + d.T) / 2, checks=False), method=method)
    if n_clusters is not None:
        return _canonical(fcluster(tree, t=n_clusters, criterion="maxclust"))
    if threshold is not None or n < 3:
        cut = DEFAULT_THRESHOLD if threshold is None else threshold
        return _canonical(fcluster(tree, t=cut, criterion="distance"))
    best, best_score = None, -math.inf
    for k in range(2, min(n - 1, max_clusters) + 1):
        labels = fcluster(tree, t=k, criterion="maxclust")
        score = silhouette(d, labels)
        if not math.isnan(score) and score > best_score + 1e-12:
            best, best_score = _canonical(labels), score
    if best is not None and best_score > NO_STRUCTURE_SILHOUETTE:
        return best
    # No substantial structure: everyone speaks alike, or everyone speaks differently.
    if off_diagonal_mean(d) <= DEFAULT_THRESHOLD:
        return np.zeros(n, dtype=np.int64)
    return np.arange(n, dtype=np.int64)


def off_diagonal_mean(matrix: np.ndarray) -> float:
    """Mean of the finite entries off the diagonal (NaN when there are none)."""
    values = np.asarray(matrix, dtype=float)[~np.eye(len(matrix), dtype=bool)]
    values = values[np.isfinite(values)]
    return float(values.mean()) if len(values) else math.nan


def graph_communities(
    graph: nx.Graph, *, method: Literal["louvain", "greedy"] = "louvain", seed: int = 0
) -> np.ndarray:
    """Community label (0, 1, ...) of each node 0..N-1, by modularity (edges as undirected)."""
    undirected = nx.Graph(graph.to_undirected()) if graph.is_directed() else graph
    if method == "louvain":
        found = nx.community.louvain_communities(undirected, weight=None, seed=seed)
    elif method == "greedy":
        found = nx.community.greedy_modularity_communities(undirected, weight=None)
    else:
        raise ValueError(f"method must be 'louvain' or 'greedy', not {method!r}")
    nodes = sorted(undirected.nodes)
    label = {}
    for c, members in enumerate(sorted(found, key=min)):
        for v in members:
            label[v] = c
    return np.array([label[v] for v in nodes], dtype=np.int64)


def normalized_mutual_information(a: Sequence[int] | np.ndarray, b: Sequence[int] | np.ndarray) -> float:
    """NMI = I(A; B) / mean(H(A), H(B)); 1 when both are a single cluster, 0 when only one is."""
    ha, hb = entropy_bits(list(a)), entropy_bits(list(b))
    if ha == 0 and hb == 0:
        return 1.0
    if ha == 0 or hb == 0:
        return 0.0
    return float(min(1.0, mutual_information_bits(list(a), list(b)) / ((ha + hb) / 2)))
