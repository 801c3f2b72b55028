"""Emergent-language analysis: measures over run logs and checkpoints (docs/analysis.md).

The measures are plain functions over arrays and tables; ``analyze_run`` applies all of them
to a run directory. The HTML report lives in ``neurocomm.platform.analysis.report`` (it
imports matplotlib).
"""

from neurocomm.platform.analysis.communication import (
    final_eval_success,
    population_success,
    rounds_to_threshold,
    success_by_agent,
    success_by_edge,
    tail_success,
)
from neurocomm.platform.analysis.compositionality import (
    bosdis,
    compositionality,
    posdis,
    topographic_similarity,
)
from neurocomm.platform.analysis.dialects import (
    MantelResult,
    cluster_languages,
    graph_communities,
    graph_distance_matrix,
    language_distance,
    language_distance_matrix,
    mantel_test,
    normalized_mutual_information,
)
from neurocomm.platform.analysis.intelligibility import (
    evaluation_batch,
    greedy_productions,
    intelligibility_matrix,
    load_population,
)
from neurocomm.platform.analysis.language import language_measures
from neurocomm.platform.analysis.loading import RunData, load_run
from neurocomm.platform.analysis.message_stats import (
    homonymy,
    lexicon,
    mean_length,
    message_entropy,
    message_statistics,
    symbols_used,
    synonymy,
)
from neurocomm.platform.analysis.run_analysis import Analysis, analyze_run, write_analysis
from neurocomm.platform.analysis.transmission import learnability, learning_curve

__all__ = [
    "Analysis",
    "MantelResult",
    "RunData",
    "analyze_run",
    "bosdis",
    "cluster_languages",
    "compositionality",
    "evaluation_batch",
    "final_eval_success",
    "graph_communities",
    "graph_distance_matrix",
    "greedy_productions",
    "homonymy",
    "intelligibility_matrix",
    "language_distance",
    "language_distance_matrix",
    "language_measures",
    "learnability",
    "learning_curve",
    "lexicon",
    "load_population",
    "load_run",
    "mantel_test",
    "mean_length",
    "message_entropy",
    "message_statistics",
    "normalized_mutual_information",
    "population_success",
    "posdis",
    "rounds_to_threshold",
    "success_by_agent",
    "success_by_edge",
    "symbols_used",
    "synonymy",
    "tail_success",
    "topographic_similarity",
    "write_analysis",
]
