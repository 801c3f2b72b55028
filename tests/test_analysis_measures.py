"""Language measures on constructed languages whose answers are known."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neurocomm.platform.analysis.communication import (
    population_success,
    rounds_to_threshold,
    success_by_agent,
    tail_success,
)
from neurocomm.platform.analysis.compositionality import (
    bosdis,
    posdis,
    symbol_counts,
    topographic_similarity,
)
from neurocomm.platform.analysis.distances import (
    edit_distances,
    normalised_edit_distances,
    pad_messages,
    pairwise_message_distances,
)
from neurocomm.platform.analysis.information import entropy_bits, mutual_information_bits
from neurocomm.platform.analysis.message_stats import (
    homonymy,
    lexicon,
    mean_length,
    message_entropy,
    symbols_used,
    synonymy,
)

N_ATTRIBUTES, N_VALUES = 3, 4


def all_objects(n_attributes: int = N_ATTRIBUTES, n_values: int = N_VALUES) -> np.ndarray:
    return np.array(list(itertools.product(range(n_values), repeat=n_attributes)))


def compositional(objects: np.ndarray, disjoint: bool) -> list[tuple[int, ...]]:
    """One position per attribute, then end-of-message; disjoint symbols per attribute or not."""
    n_values = int(objects.max()) + 1
    if disjoint:
        return [tuple(1 + i * n_values + int(v) for i, v in enumerate(o)) + (0,) for o in objects]
    return [tuple(1 + int(v) for v in o) + (0,) for o in objects]


def levenshtein(a: tuple[int, ...], b: tuple[int, ...]) -> int:
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        prev, row[0] = row[:], i
        for j, y in enumerate(b, 1):
            row[j] = min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (x != y))
    return row[-1]


# ---------------------------------------------------------------------------- compositionality


def test_perfectly_compositional_code_scores_one() -> None:
    objects = all_objects()
    disjoint = compositional(objects, disjoint=True)
    assert topographic_similarity(objects, disjoint, "edit") == pytest.approx(1.0)
    assert topographic_similarity(objects, disjoint, "hamming") == pytest.approx(1.0)
    assert posdis(objects, disjoint) == pytest.approx(1.0)
    assert bosdis(objects, disjoint) == pytest.approx(1.0)


def test_compositional_code_with_shared_symbols() -> None:
    """Positions still encode attributes (posdis 1, Hamming topsim 1), but counting symbols
    mixes attributes (bosdis < 1), and Levenshtein can align shifted symbols (edit topsim < 1)."""
    objects = all_objects()
    shared = compositional(objects, disjoint=False)
    assert posdis(objects, shared) == pytest.approx(1.0)
    assert topographic_similarity(objects, shared, "hamming") == pytest.approx(1.0)
    assert 0.8 < topographic_similarity(objects, shared, "edit") < 1.0
    assert bosdis(objects, shared) < 0.5


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_bijection_and_shuffled_messages_score_near_zero(seed: int) -> None:
    rng = np.random.default_rng(seed)
    objects = all_objects()
    words = list(itertools.product(range(1, 8), repeat=3))
    picked = rng.choice(len(words), size=len(objects), replace=False)
    bijection = [words[k] + (0,) for k in picked]
    assert abs(topographic_similarity(objects, bijection)) < 0.15
    shuffled = compositional(objects, disjoint=True)
    shuffled = [shuffled[k] for k in rng.permutation(len(objects))]
    assert abs(topographic_similarity(objects, shuffled)) < 0.15
    assert posdis(objects, shuffled) < 0.15
    assert bosdis(objects, shuffled) < 0.15


def test_posdis_matches_the_reference_value() -> None:
    """EGG's documented example (Chaabouni et al. 2020): two attributes sent as two symbols."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    a1 = torch.randint(low=0, high=10, size=(1000, 1))
    a2 = torch.randint(low=0, high=10, size=(1000, 1))
    attributes = torch.cat([a1, a2], dim=1).numpy()
    assert round(posdis(attributes, attributes), 6) == pytest.approx(0.978656)
    padded = np.concatenate([attributes, np.zeros_like(attributes)], axis=1)
    assert round(posdis(attributes, padded), 6) == pytest.approx(0.978656)


def test_undefined_measures_are_nan() -> None:
    objects = all_objects()
    same = [(1, 0)] * len(objects)
    assert math.isnan(topographic_similarity(objects, same))  # constant message distances
    assert math.isnan(posdis(objects, same))  # no position varies
    assert math.isnan(posdis(objects[:, :1], compositional(objects[:, :1], True)))  # one attribute
    assert math.isnan(topographic_similarity(objects[:2], same[:2]))


def test_symbol_counts_ignore_end_of_message() -> None:
    counts = symbol_counts([(3, 3, 0), (1, 0), (1, 3)])
    assert counts.tolist() == [[0, 2], [1, 0], [1, 1]]


# ---------------------------------------------------------------------------- distances


def test_edit_distance_normalisations() -> None:
    a, b = [(1, 2, 3, 0)], [(1, 3, 0)]
    assert normalised_edit_distances(a, b)[0] == pytest.approx(1 / 4)  # one deletion / longer
    assert pairwise_message_distances(a + b, "edit")[0] == pytest.approx(1 / 3.5)  # / mean length
    assert pairwise_message_distances(a + b, "hamming")[0] == pytest.approx(2 / 4)  # padded with 0


messages_strategy = st.lists(st.integers(0, 5), min_size=0, max_size=6).map(tuple)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(messages_strategy, messages_strategy), min_size=1, max_size=20))
def test_vectorised_edit_distance_matches_reference(pairs: list) -> None:
    a = [p[0] for p in pairs]
    b = [p[1] for p in pairs]
    ta, la = pad_messages(a)
    tb, lb = pad_messages(b)
    assert edit_distances(ta, la, tb, lb).tolist() == [levenshtein(x, y) for x, y in pairs]
    there, back = normalised_edit_distances(a, b), normalised_edit_distances(b, a)
    assert np.allclose(there, back)
    assert ((there >= 0) & (there <= 1)).all()
    assert np.allclose(normalised_edit_distances(a, a), 0)


# ---------------------------------------------------------------------------- properties


languages = st.integers(0, 10_000).map(lambda seed: _random_language(np.random.default_rng(seed)))


def _random_language(rng: np.random.Generator) -> tuple[np.ndarray, list[tuple[int, ...]]]:
    n = int(rng.integers(3, 30))
    objects = rng.integers(0, 3, size=(n, 3))
    messages = [tuple(int(s) for s in rng.integers(1, 6, size=rng.integers(1, 4))) + (0,) for _ in range(n)]
    return objects, messages


def _relabel(messages: list[tuple[int, ...]], seed: int) -> list[tuple[int, ...]]:
    perm = np.random.default_rng(seed).permutation(np.arange(1, 6))
    table = {0: 0, **{i + 1: int(p) for i, p in enumerate(perm)}}
    return [tuple(table[s] for s in m) for m in messages]


@settings(max_examples=60, deadline=None)
@given(languages, st.integers(0, 100))
def test_measures_in_range_and_invariant_under_symbol_relabelling(language, seed: int) -> None:
    objects, messages = language
    relabelled = _relabel(messages, seed)
    for distance in ("edit", "hamming"):
        t = topographic_similarity(objects, messages, distance)
        assert math.isnan(t) or -1 - 1e-9 <= t <= 1 + 1e-9
        t2 = topographic_similarity(objects, relabelled, distance)
        assert (math.isnan(t) and math.isnan(t2)) or t == pytest.approx(t2)
    for measure in (posdis, bosdis):
        v, v2 = measure(objects, messages), measure(objects, relabelled)
        assert math.isnan(v) or -1e-9 <= v <= 1 + 1e-9
        assert (math.isnan(v) and math.isnan(v2)) or v == pytest.approx(v2)
    for stat in (message_entropy, symbols_used, mean_length):
        assert stat(messages) == pytest.approx(stat(relabelled))
    assert synonymy(objects, messages) == pytest.approx(synonymy(objects, relabelled))
    assert homonymy(objects, messages) == pytest.approx(homonymy(objects, relabelled))
    assert synonymy(objects, messages) >= 1 and homonymy(objects, messages) >= 1


@settings(max_examples=60, deadline=None)
@given(languages)
def test_pairwise_distances_symmetric_and_bounded(language) -> None:
    _, messages = language
    d = pairwise_message_distances(messages, "edit")
    reversed_d = pairwise_message_distances(messages[::-1], "edit")
    assert sorted(np.round(d, 9)) == sorted(np.round(reversed_d, 9))
    assert (d >= 0).all() and (d <= 2).all()
    h = pairwise_message_distances(messages, "hamming")
    assert ((h >= 0) & (h <= 1)).all()


# ---------------------------------------------------------------------------- message statistics


def test_message_statistics_on_a_known_lexicon() -> None:
    objects = [(0,), (0,), (1,), (2,)]
    messages = [(1, 0), (2, 0), (3, 0), (3, 0)]
    assert message_entropy(messages) == pytest.approx(1.5)  # p = 1/4, 1/4, 1/2
    assert symbols_used(messages) == 3
    assert mean_length(messages) == 2
    assert synonymy(objects, messages) == pytest.approx(4 / 3)  # object 0 has two names
    assert homonymy(objects, messages) == pytest.approx(4 / 3)  # message (3, 0) names two objects


def test_information_in_bits() -> None:
    assert entropy_bits([0, 1, 0, 1]) == pytest.approx(1.0)
    assert mutual_information_bits([0, 1, 0, 1], [5, 6, 5, 6]) == pytest.approx(1.0)
    assert mutual_information_bits([0, 1, 0, 1], [5, 5, 6, 6]) == pytest.approx(0.0)


def test_lexicon_picks_the_most_frequent_message() -> None:
    games = pd.DataFrame(
        {
            "speaker": [0, 0, 0, 1],
            "target": [(1,), (1,), (1,), (1,)],
            "message": [(2, 0), (3, 0), (3, 0), (4, 0)],
        }
    )
    table = lexicon(games).set_index("agent")
    assert table.loc[0, "message"] == (3, 0)
    assert table.loc[0, "share"] == pytest.approx(2 / 3)
    assert table.loc[1, "message"] == (4, 0)


# ---------------------------------------------------------------------------- communication


def _metrics() -> pd.DataFrame:
    rows = []
    for r in range(40):
        for s, lis, games in ((0, 1, 10), (1, 0, 30)):
            rows.append(
                {
                    "round": r,
                    "speaker": s,
                    "listener": lis,
                    "games": games,
                    "success": min(1.0, r / 20) if s == 0 else 0.5,
                }
            )
    return pd.DataFrame(rows)


def test_success_curves_and_rounds_to_threshold() -> None:
    metrics = _metrics()
    per_agent = success_by_agent(metrics)
    as_speaker = per_agent[(per_agent["role"] == "speaker") & (per_agent["agent"] == 1)]
    assert (as_speaker["success"] == 0.5).all()
    pop = population_success(metrics)
    assert pop.loc[pop["round"] == 39, "success"].item() == pytest.approx((10 * 1.0 + 30 * 0.5) / 40)
    curve = pd.DataFrame({"round": range(40), "success": [min(1.0, r / 20) for r in range(40)]})
    assert rounds_to_threshold(curve, 0.5, window=1) == 11  # round 10 reaches 0.5: 11 rounds
    assert rounds_to_threshold(curve, 1.01) is None
    final = tail_success(metrics)
    assert final["speaker:1"] == pytest.approx(0.5)
    assert final["listener:1"] == pytest.approx(1.0)
