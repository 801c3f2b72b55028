"""The study statistics on data whose answer is known: coverage, power, null rates, exponents."""

from __future__ import annotations

import math

import numpy as np
import pytest

from neurocomm.platform.analysis import stats


def test_t_interval_covers_the_true_mean_at_the_nominal_rate() -> None:
    rng = np.random.default_rng(1)
    samples = rng.normal(3.0, 2.0, size=(1000, 6))
    hits = [(e.low <= 3.0 <= e.high) for e in map(stats.mean_ci, samples)]
    assert 0.93 <= np.mean(hits) <= 0.97


def test_bootstrap_interval_covers_the_true_mean() -> None:
    # the percentile bootstrap under-covers for tiny n; with n = 30 it is close to nominal
    rng = np.random.default_rng(2)
    samples = rng.normal(-1.0, 1.0, size=(1000, 30))
    hits = [stats.bootstrap_ci(s, resamples=1000, seed=i).low <= -1.0 <= stats.bootstrap_ci(
        s, resamples=1000, seed=i).high for i, s in enumerate(samples)]
    assert 0.92 <= np.mean(hits) <= 0.97


def test_welch_interval_covers_the_true_difference_with_unequal_variances() -> None:
    rng = np.random.default_rng(3)
    hits = 0
    for _ in range(1000):
        a, b = rng.normal(0.0, 1.0, 5), rng.normal(0.7, 3.0, 8)
        _, lo, hi, _ = stats.welch_test(a, b)
        hits += lo <= 0.7 <= hi
    assert 0.93 <= hits / 1000 <= 0.97


def test_planted_effect_is_found_and_null_is_rejected_at_about_alpha() -> None:
    rng = np.random.default_rng(4)
    found = [stats.difference(rng.normal(0, 1, 8), rng.normal(2.0, 1, 8), permutations=999, seed=i)
             for i in range(200)]
    # power of a two-sample test at d = 2, n = 8 per group is about 0.95
    assert np.mean([d.p_welch < 0.05 for d in found]) > 0.85
    assert np.mean([d.p_permutation < 0.05 for d in found]) > 0.85
    assert np.mean([d.low > 0 for d in found]) > 0.85
    null = [stats.difference(rng.normal(0, 1, 8), rng.normal(0, 1, 8), permutations=999, seed=i)
            for i in range(1000)]
    for rate in (np.mean([d.p_welch < 0.05 for d in null]), np.mean([d.p_permutation < 0.05 for d in null])):
        assert 0.03 <= rate <= 0.07


def test_exact_permutation_p_on_a_complete_separation() -> None:
    # 5 vs 5, every b above every a: one relabelling of 252 is as extreme on each side
    p = stats.permutation_test([1, 2, 3, 4, 5], [6, 7, 8, 9, 10], alternative="greater")
    assert p == pytest.approx(1 / 252)
    assert stats.permutation_test([1, 2, 3, 4, 5], [6, 7, 8, 9, 10]) == pytest.approx(2 / 252)


def test_hedges_g_matches_the_textbook_value_and_its_interval_covers() -> None:
    a, b = np.array([1.0, 2.0, 3.0, 4.0]), np.array([3.0, 4.0, 5.0, 6.0])
    g, lo, hi = stats.hedges_g(a, b)
    d = 2.0 / np.std(a, ddof=1)
    assert g == pytest.approx(d * (1 - 3 / (4 * 8 - 9)))
    assert lo < g < hi
    rng = np.random.default_rng(5)
    true_d = 1.0
    hits = 0
    for _ in range(1000):
        g, lo, hi = stats.hedges_g(rng.normal(0, 1, 10), rng.normal(true_d, 1, 10))
        hits += lo <= true_d <= hi
    assert 0.92 <= hits / 1000 <= 0.98


def test_exact_power_law_exponent_is_recovered() -> None:
    n = np.array([100, 200, 400, 800, 1600])
    fit = stats.loglog_slope(n, 3.0 * n**1.5)
    assert fit.slope == pytest.approx(1.5)
    assert fit.low == pytest.approx(1.5) and fit.high == pytest.approx(1.5)


def test_noisy_power_law_slope_interval_covers_the_exponent() -> None:
    rng = np.random.default_rng(6)
    n = np.repeat([100, 200, 400, 800], 5)
    hits = 0
    for _ in range(1000):
        y = n**3.0 * np.exp(rng.normal(0, 0.5, n.size))
        fit = stats.loglog_slope(n, y)
        hits += fit.low <= 3.0 <= fit.high
    assert 0.93 <= hits / 1000 <= 0.97


def test_correlation_finds_a_planted_one_and_not_a_null_one() -> None:
    rng = np.random.default_rng(7)
    x = rng.normal(size=30)
    strong = stats.correlation(x, x + rng.normal(0, 0.3, 30), method="pearson", seed=0)
    assert strong.r > 0.8 and strong.p < 0.01 and strong.low > 0.5
    rates = [stats.correlation(rng.normal(size=20), rng.normal(size=20), permutations=499, seed=i).p < 0.05
             for i in range(300)]
    assert 0.02 <= np.mean(rates) <= 0.09


def test_one_sample_and_undefined_cases() -> None:
    est, p = stats.one_sample([0.2, 0.3, 0.25, 0.35, 0.3], alternative="greater")
    assert est.low > 0 and p < 0.001
    assert math.isnan(stats.mean_ci([1.0]).low)
    assert stats.mean_ci([1.0, math.nan, 3.0]).n == 2
    assert math.isnan(stats.welch_test([1.0], [2.0, 3.0])[3])
    assert math.isnan(stats.loglog_slope([1, 1], [2, 3]).slope)
