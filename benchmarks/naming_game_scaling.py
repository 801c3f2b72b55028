"""How the naming game's convergence time scales with the population size, per graph family.

For each family and size N, ``--runs`` independent runs to consensus; the exponent alpha of
mean t_conv ∝ N^alpha is a least-squares line through (log N, log mean t_conv). Published values:
complete graph 1.5 (Baronchelli et al. 2006), ring 3 (Baronchelli et al. 2006, Dall'Asta et al.
2006), Watts–Strogatz small world 1.4 (Dall'Asta et al. 2006).

    OMP_NUM_THREADS=1 python benchmarks/naming_game_scaling.py
    python benchmarks/naming_game_scaling.py --graphs ring --sizes ring=16,32,64 --runs 10

``--sizes`` takes ``family=n1,n2,...`` items, or a bare ``n1,n2,...`` for every family;
``--runs`` takes ``family=K`` items or a bare ``K``. The ring's t_conv varies a lot from run to
run (its standard deviation is close to its mean), so it gets more runs by default. Sizes run in
increasing order; a size whose predicted time (the last size's, times the published power of N)
would overrun the family's share of what is left of ``--max-seconds`` is skipped (and listed).
The last columns fit alpha over every size and over the largest four only: small sizes carry
finite-size corrections (on the complete graph t_conv / N^1.5 only settles from N ≈ 4000 on).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable

import networkx as nx
import numpy as np

from neurocomm.scenarios.naming_game import NamingGame, NamingGameParams
from neurocomm.scenarios.naming_pairs import ORDERS, Adjacency

FAMILIES = ("complete", "ring", "smallworld")
DEFAULT_RUNS = {"complete": 10, "ring": 20, "smallworld": 10}
DEFAULT_SIZES = {
    "complete": (250, 500, 1000, 2000, 4000, 8000, 16000),
    "ring": (16, 24, 32, 48, 64, 96),
    "smallworld": (250, 500, 1000, 2000, 4000),
}
EXPECTED = {
    "complete": (1.5, "Baronchelli et al. 2006"),
    "ring": (3.0, "Baronchelli et al. 2006; Dall'Asta et al. 2006"),
    "smallworld": (1.4, "Dall'Asta et al. 2006"),
}


def adjacency_maker(family: str, k: int, p: float) -> Callable[[int, int], Adjacency]:
    """(N, graph seed) → Adjacency. The complete graph skips networkx (5e7 edges at N = 1e4)."""
    if family == "complete":
        return lambda n, seed: Adjacency.complete(n)
    if family == "ring":
        return lambda n, seed: Adjacency.from_graph(nx.cycle_graph(n))
    return lambda n, seed: Adjacency.from_graph(nx.connected_watts_strogatz_graph(n, k, p, seed=seed))


def per_family(option: str, items: list[str] | None, families: list[str], defaults: dict,
               parse: Callable[[str], object]) -> dict:
    """``family=value`` items (or a bare value for every family) over the defaults."""
    values = {f: defaults[f] for f in families}
    for item in items or []:
        family, sep, value = item.rpartition("=")
        for target in [family] if sep else families:
            if target not in values:
                raise SystemExit(f"{option}: unknown family {target!r}; one of {', '.join(families)}")
            try:
                values[target] = parse(value)
            except ValueError:
                raise SystemExit(f"{option}: cannot read {item!r}") from None
    return values


def fit_exponent(ns: list[int], means: list[float]) -> tuple[float, float]:
    """Slope of log(mean) on log(N) and its standard error (nan with too few points)."""
    if len(ns) < 2:
        return math.nan, math.nan
    x, y = np.log(ns), np.log(means)
    slope, intercept = np.polyfit(x, y, 1)
    if len(ns) < 3:
        return float(slope), math.nan
    residuals = y - (slope * x + intercept)
    se = math.sqrt(residuals @ residuals / (len(ns) - 2) / ((x - x.mean()) @ (x - x.mean())))
    return float(slope), se


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--graphs", default=",".join(FAMILIES),
                        help="comma-separated families: complete, ring, smallworld")
    parser.add_argument("--sizes", nargs="*", help="family=n1,n2,... or n1,n2,... (all families)")
    parser.add_argument("--runs", nargs="*", help="runs per size: K or family=K (default "
                        + ", ".join(f"{f}={k}" for f, k in DEFAULT_RUNS.items()) + ")")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-seconds", type=float, default=270.0,
                        help="time budget for the whole benchmark; each family gets an even "
                        "share of what the earlier ones left")
    parser.add_argument("--order", choices=ORDERS, default="direct")
    parser.add_argument("--k", type=int, default=6, help="small world: neighbours per node")
    parser.add_argument("--p", type=float, default=0.1, help="small world: rewiring probability")
    args = parser.parse_args(argv)
    families = [f for f in args.graphs.split(",") if f]
    for f in families:
        if f not in FAMILIES:
            parser.error(f"--graphs: unknown family {f!r}; one of {', '.join(FAMILIES)}")
    sizes = per_family("--sizes", args.sizes, families, DEFAULT_SIZES,
                       lambda v: sorted({int(x) for x in v.split(",") if x}))
    runs = per_family("--runs", args.runs, families, DEFAULT_RUNS, int)
    game = NamingGame(NamingGameParams(order=args.order))
    began = time.perf_counter()

    print(f"# {' '.join(['python', *sys.argv])}")
    print(f"# order={args.order} runs={runs} seed={args.seed} smallworld k={args.k} p={args.p}")
    print(f"{'family':<11} {'N':>6} {'mean t_conv':>13} {'std':>11} {'t_conv/N^a_ref':>15} "
          f"{'mean N_w^max':>13} {'s/run':>7}")
    summary = []
    for fi, family in enumerate(families):
        make = adjacency_maker(family, args.k, args.p)
        budget = (args.max_seconds - (time.perf_counter() - began)) / (len(families) - fi)
        k = runs[family]
        alpha_ref, source = EXPECTED[family]
        spent, ns, means, skipped = 0.0, [], [], []
        last: tuple[int, float] | None = None
        for n in sizes[family]:
            if last is not None:
                predicted = last[1] * (n / last[0]) ** alpha_ref
                if spent + predicted * k > budget:
                    skipped.append(n)
                    continue
            t_conv, peaks, start = [], [], time.perf_counter()
            for run in range(k):
                seq = np.random.SeedSequence(args.seed, spawn_key=(fi, n, run))
                graph_seed, game_seed = seq.spawn(2)
                adjacency = make(n, int(graph_seed.generate_state(1)[0]))
                result = game.run(adjacency, np.random.default_rng(game_seed))
                t_conv.append(result.t_conv)
                peaks.append(result.max_words)
            elapsed = time.perf_counter() - start
            spent += elapsed
            last = (n, elapsed / k)
            mean, std = float(np.mean(t_conv)), float(np.std(t_conv, ddof=1)) if k > 1 else 0.0
            ns.append(n)
            means.append(mean)
            print(f"{family:<11} {n:>6} {mean:>13.4g} {std:>11.3g} {mean / n**alpha_ref:>15.4g} "
                  f"{np.mean(peaks):>13.4g} {elapsed / k:>7.2f}", flush=True)
        fits = [fit_exponent(ns, means), fit_exponent(ns[-4:], means[-4:])]
        summary.append((family, k, ns, fits, alpha_ref, source, skipped))

    print()
    print(f"{'family':<11} {'runs':>4} {'N (all)':>11} {'alpha':>6} {'± se':>5} "
          f"{'N (top 4)':>11} {'alpha':>6} {'± se':>5} {'published':>9}  source")
    for family, k, ns, fits, alpha_ref, source, skipped in summary:
        cells = []
        for sub, (alpha, se) in zip([ns, ns[-4:]], fits, strict=True):
            span = f"{sub[0]}-{sub[-1]}" if sub else "-"
            cells.append(f"{span:>11} {alpha:>6.2f} {se:>5.2f}")
        note = f"  (skipped N={skipped}: time budget)" if skipped else ""
        print(f"{family:<11} {k:>4} {' '.join(cells)} {alpha_ref:>9.1f}  {source}{note}")
    print(f"# total {time.perf_counter() - began:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
