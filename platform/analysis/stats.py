"""Statistics for studies: means with confidence intervals, two-sample tests, effect sizes, trends.

Every function takes plain sequences of numbers, drops non-finite values (a measure that is
undefined for a run is NaN), and returns plain floats (NaN where the statistic is undefined,
e.g. a CI from one value). Random procedures (bootstrap, permutations) take a ``seed`` and use
their own ``numpy.random.default_rng(seed)``; nothing touches global state.

References: Welch (1947) for the unequal-variance t-test; Hedges & Olkin (1985) for g, its
small-sample correction J and its approximate standard error; Efron & Tibshirani (1993) for the
percentile bootstrap; Phipson & Smyth (2010) for the (k + 1) / (B + 1) permutation p-value.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Literal

import numpy as np
from scipy import stats as sps

Alternative = Literal["two-sided", "greater", "less"]
EXACT_LIMIT = 20_000  # enumerate every relabelling when there are no more than this many


def finite(values: Sequence[float] | np.ndarray) -> np.ndarray:
    """The finite values, as float64."""
    a = np.asarray(values, dtype=np.float64).ravel()
    return a[np.isfinite(a)]


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its confidence interval (``level``) and the sample size."""

    value: float
    low: float
    high: float
    n: int
    level: float = 0.95


def mean_ci(values: Sequence[float], level: float = 0.95) -> Estimate:
    """Mean with the Student-t interval ``mean ± t_{n-1} · s / √n``."""
    x = finite(values)
    n = len(x)
    if n == 0:
        return Estimate(math.nan, math.nan, math.nan, 0, level)
    m = float(x.mean())
    if n < 2:
        return Estimate(m, math.nan, math.nan, n, level)
    half = float(sps.t.ppf(0.5 + level / 2, n - 1) * x.std(ddof=1) / math.sqrt(n))
    return Estimate(m, m - half, m + half, n, level)


def bootstrap_ci(
    values: Sequence[float], level: float = 0.95, resamples: int = 10_000, seed: int = 0,
    statistic: str = "mean",
) -> Estimate:
    """Percentile bootstrap interval of the mean (or ``"median"``)."""
    x = finite(values)
    n = len(x)
    fn = np.mean if statistic == "mean" else np.median
    if n == 0:
        return Estimate(math.nan, math.nan, math.nan, 0, level)
    value = float(fn(x))
    if n < 2:
        return Estimate(value, math.nan, math.nan, n, level)
    rng = np.random.default_rng(seed)
    draws = fn(x[rng.integers(0, n, size=(resamples, n))], axis=1)
    lo, hi = np.quantile(draws, [0.5 - level / 2, 0.5 + level / 2])
    return Estimate(value, float(lo), float(hi), n, level)


@dataclass(frozen=True)
class Difference:
    """``mean(b) - mean(a)`` with its Welch interval, two p-values and Hedges' g."""

    diff: float
    low: float
    high: float
    p_welch: float
    p_permutation: float
    g: float
    g_low: float
    g_high: float
    n_a: int
    n_b: int
    level: float = 0.95


def welch_test(a: Sequence[float], b: Sequence[float], level: float = 0.95,
               alternative: Alternative = "two-sided") -> tuple[float, float, float, float]:
    """Welch's t-test of ``mean(b) - mean(a)``: (difference, CI low, CI high, p)."""
    x, y = finite(a), finite(b)
    if len(x) < 2 or len(y) < 2:
        diff = float(y.mean() - x.mean()) if len(x) and len(y) else math.nan
        return diff, math.nan, math.nan, math.nan
    diff = float(y.mean() - x.mean())
    va, vb = x.var(ddof=1) / len(x), y.var(ddof=1) / len(y)
    se = math.sqrt(va + vb)
    if se == 0:
        p = 1.0 if diff == 0 else 0.0
        return diff, diff, diff, p
    df = (va + vb) ** 2 / (va**2 / (len(x) - 1) + vb**2 / (len(y) - 1))
    half = float(sps.t.ppf(0.5 + level / 2, df)) * se
    t = diff / se
    if alternative == "greater":
        p = float(sps.t.sf(t, df))
    elif alternative == "less":
        p = float(sps.t.cdf(t, df))
    else:
        p = float(2 * sps.t.sf(abs(t), df))
    return diff, diff - half, diff + half, p


def permutation_test(a: Sequence[float], b: Sequence[float], permutations: int = 9_999,
                     seed: int = 0, alternative: Alternative = "two-sided") -> float:
    """p-value of ``mean(b) - mean(a)`` under random relabelling of the pooled values.

    Every relabelling is enumerated (exact p, the observed one included) when there are at most
    ``EXACT_LIMIT``; otherwise ``(k + 1) / (permutations + 1)`` from random relabellings.
    """
    x, y = finite(a), finite(b)
    if not len(x) or not len(y):
        return math.nan
    pooled = np.concatenate([x, y])
    n, nb = len(pooled), len(y)
    observed = y.mean() - x.mean()
    total = pooled.sum()
    if math.comb(n, nb) <= EXACT_LIMIT:
        idx = np.array(list(combinations(range(n), nb)), dtype=np.int64)
        sb = pooled[idx].sum(axis=1)
        diffs = sb / nb - (total - sb) / (n - nb)
        exact = True
    else:
        rng = np.random.default_rng(seed)
        perm = rng.permuted(np.tile(np.arange(n), (permutations, 1)), axis=1)[:, :nb]
        sb = pooled[perm].sum(axis=1)
        diffs = sb / nb - (total - sb) / (n - nb)
        exact = False
    tol = 1e-12 * max(1.0, abs(observed))
    if alternative == "greater":
        k = int((diffs >= observed - tol).sum())
    elif alternative == "less":
        k = int((diffs <= observed + tol).sum())
    else:
        k = int((np.abs(diffs) >= abs(observed) - tol).sum())
    return k / len(diffs) if exact else (k + 1) / (len(diffs) + 1)


def hedges_g(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """Hedges' g of ``b - a`` (pooled SD, small-sample corrected) with its normal-approx CI."""
    x, y = finite(a), finite(b)
    na, nb = len(x), len(y)
    if na < 2 or nb < 2:
        return math.nan, math.nan, math.nan
    pooled = math.sqrt(((na - 1) * x.var(ddof=1) + (nb - 1) * y.var(ddof=1)) / (na + nb - 2))
    diff = float(y.mean() - x.mean())
    if pooled == 0:
        g = 0.0 if diff == 0 else math.copysign(math.inf, diff)
        return g, g, g
    j = 1 - 3 / (4 * (na + nb) - 9)
    g = j * diff / pooled
    se = math.sqrt((na + nb) / (na * nb) + g**2 / (2 * (na + nb)))
    z = float(sps.norm.ppf(0.5 + level / 2))
    return g, g - z * se, g + z * se


def difference(a: Sequence[float], b: Sequence[float], level: float = 0.95,
               alternative: Alternative = "two-sided", permutations: int = 9_999,
               seed: int = 0) -> Difference:
    """Everything about ``mean(b) - mean(a)`` (b is the condition expected to differ)."""
    diff, lo, hi, p = welch_test(a, b, level, alternative)
    p_perm = permutation_test(a, b, permutations, seed, alternative)
    g, g_lo, g_hi = hedges_g(a, b, level)
    return Difference(diff, lo, hi, p, p_perm, g, g_lo, g_hi, len(finite(a)), len(finite(b)), level)


@dataclass(frozen=True)
class Slope:
    """Least-squares slope of y on x with its t interval and the p-value of slope = 0."""

    slope: float
    low: float
    high: float
    p: float
    intercept: float
    n: int
    r: float
    level: float = 0.95


def linear_slope(x: Sequence[float], y: Sequence[float], level: float = 0.95) -> Slope:
    """OLS slope with the Student-t interval (n - 2 degrees of freedom); pairs with a
    non-finite coordinate are dropped."""
    xa, ya = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    keep = np.isfinite(xa) & np.isfinite(ya)
    xa, ya = xa[keep], ya[keep]
    n = len(xa)
    if n < 2 or np.ptp(xa) == 0:
        return Slope(math.nan, math.nan, math.nan, math.nan, math.nan, n, math.nan, level)
    fit = sps.linregress(xa, ya)
    if n < 3:
        return Slope(float(fit.slope), math.nan, math.nan, math.nan, float(fit.intercept), n,
                     float(fit.rvalue), level)
    half = float(sps.t.ppf(0.5 + level / 2, n - 2)) * float(fit.stderr)
    return Slope(float(fit.slope), fit.slope - half, fit.slope + half, float(fit.pvalue),
                 float(fit.intercept), n, float(fit.rvalue), level)


def loglog_slope(x: Sequence[float], y: Sequence[float], level: float = 0.95) -> Slope:
    """The exponent a of y ∝ x^a: :func:`linear_slope` of log y on log x (positive pairs only)."""
    xa, ya = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    keep = (xa > 0) & (ya > 0) & np.isfinite(xa) & np.isfinite(ya)
    return linear_slope(np.log(xa[keep]), np.log(ya[keep]), level)


@dataclass(frozen=True)
class Correlation:
    """A correlation coefficient with its Fisher-z interval and a permutation p-value."""

    r: float
    low: float
    high: float
    p: float
    n: int
    method: str
    level: float = 0.95


def correlation(x: Sequence[float], y: Sequence[float], method: Literal["pearson", "spearman"] = "spearman",
                level: float = 0.95, permutations: int = 9_999, seed: int = 0) -> Correlation:
    """Pearson or Spearman r; CI from Fisher's z (SE 1/√(n-3)); two-sided permutation p."""
    xa, ya = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    keep = np.isfinite(xa) & np.isfinite(ya)
    xa, ya = xa[keep], ya[keep]
    n = len(xa)
    if n < 3 or np.ptp(xa) == 0 or np.ptp(ya) == 0:
        return Correlation(math.nan, math.nan, math.nan, math.nan, n, method, level)
    if method == "spearman":
        xa, ya = sps.rankdata(xa), sps.rankdata(ya)
    r = float(np.corrcoef(xa, ya)[0, 1])
    lo = hi = math.nan
    if n > 3:
        z, se = math.atanh(max(min(r, 1 - 1e-12), -1 + 1e-12)), 1 / math.sqrt(n - 3)
        q = float(sps.norm.ppf(0.5 + level / 2))
        lo, hi = math.tanh(z - q * se), math.tanh(z + q * se)
    rng = np.random.default_rng(seed)
    shuffled = rng.permuted(np.tile(ya, (permutations, 1)), axis=1)
    xc = xa - xa.mean()
    sc = shuffled - shuffled.mean(axis=1, keepdims=True)
    null = (sc @ xc) / (np.linalg.norm(sc, axis=1) * np.linalg.norm(xc))
    k = int((np.abs(null) >= abs(r) - 1e-12).sum())
    return Correlation(r, lo, hi, (k + 1) / (permutations + 1), n, method, level)


def one_sample(values: Sequence[float], null: float = 0.0, level: float = 0.95,
               alternative: Alternative = "two-sided") -> tuple[Estimate, float]:
    """Mean with its t interval and the one-sample t-test p-value against ``null``."""
    est = mean_ci(values, level)
    x = finite(values)
    if len(x) < 2:
        return est, math.nan
    sd = x.std(ddof=1)
    if sd == 0:
        return est, 1.0 if est.value == null else 0.0
    t = (est.value - null) / (sd / math.sqrt(len(x)))
    if alternative == "greater":
        p = float(sps.t.sf(t, len(x) - 1))
    elif alternative == "less":
        p = float(sps.t.cdf(t, len(x) - 1))
    else:
        p = float(2 * sps.t.sf(abs(t), len(x) - 1))
    return est, p
