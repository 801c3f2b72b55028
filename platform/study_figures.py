"""One PNG per claim of a study (and one per curve over time), drawn with matplotlib (Agg)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from neurocomm.platform.study import Claim, Study


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _fmt(x: Any) -> str:
    return "n/a" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.3g}"


def _title(claim: Claim, v: dict[str, Any]) -> str:
    return (f"{claim.id}: {v['verdict']}\n{claim.effect.kind} {_fmt(v['estimate'])} "
            f"[{_fmt(v['ci_low'])}, {_fmt(v['ci_high'])}], p={_fmt(v['p'])}, n={v['n']}")


def _strip(ax: Any, groups: list[tuple[str, np.ndarray]]) -> None:
    """Each group's runs as dots, with the mean and its 95% t interval."""
    from neurocomm.platform.analysis.stats import mean_ci

    for i, (_, values) in enumerate(groups):
        x = np.full(len(values), i) + np.linspace(-0.12, 0.12, max(len(values), 1))[: len(values)]
        ax.scatter(x, values, s=14, alpha=0.6, color="C0")
        est = mean_ci(values)
        if est.n:
            err = [[est.value - est.low], [est.high - est.value]] if math.isfinite(est.low) else None
            ax.errorbar([i + 0.3], [est.value], yerr=err, fmt="o", color="C3", capsize=4)
    ax.set_xticks(range(len(groups)), [g for g, _ in groups], rotation=20, ha="right", fontsize=8)


def claim_figure(study: Study, claim: Claim, runs: pd.DataFrame, v: dict[str, Any], path: Path) -> Path:
    plt = _plt()
    effect = claim.effect
    part = runs
    for key, value in effect.where.items():
        part = part[part[key] == value]
    fig, ax = plt.subplots(figsize=(6, 4.2))
    y = part[claim.measure].astype(float)
    if effect.kind == "contrast":
        groups = [(f"{effect.factor}={lvl}", y[part[effect.factor] == lvl].to_numpy())
                  for lvl in effect.levels]
        _strip(ax, groups)
    elif effect.kind == "mean":
        groups = [(c, y[part["condition"] == c].to_numpy()) for c in part["condition"].drop_duplicates()]
        _strip(ax, groups)
        ax.axhline(0, color="grey", lw=0.8)
    elif effect.kind == "slope":
        x = part[effect.factor].astype(float)
        ax.scatter(x, y, s=14, alpha=0.6, label="runs")
        means = part.assign(_y=y).groupby(effect.factor)["_y"].mean()
        ax.plot(means.index.astype(float), means.to_numpy(), "o", color="C3", label="mean over seeds")
        if math.isfinite(v.get("intercept", math.nan)):
            xs = np.linspace(float(x.min()), float(x.max()), 50)
            if effect.log:
                fit = np.exp(v["intercept"]) * xs ** v["estimate"]
            elif effect.log_factor:
                fit = v["intercept"] + v["estimate"] * np.log(xs)
            else:
                fit = v["intercept"] + v["estimate"] * xs
            ax.plot(xs, fit, "-", color="C1", label=f"fit: slope {_fmt(v['estimate'])}")
        if effect.log or effect.log_factor:
            ax.set_xscale("log")
        if effect.log:
            ax.set_yscale("log")
        ax.set_xlabel(effect.factor)
        ax.legend(fontsize=8)
    else:
        x = part[effect.against].astype(float)
        for cond in part["condition"].drop_duplicates():
            sel = part["condition"] == cond
            ax.scatter(x[sel], y[sel], s=14, alpha=0.7, label=cond)
        ax.set_xlabel(effect.against)
        ax.legend(fontsize=6)
    ax.set_ylabel(claim.measure)
    where = ", ".join(f"{k}={val}" for k, val in effect.where.items())
    ax.set_title(_title(claim, v) + (f"\n({where})" if where else ""), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def curve_figure(curves: pd.DataFrame, measure: str, path: Path) -> Path:
    """Mean over seeds per condition against the round, with the 95% band."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, (cond, part) in enumerate(curves.groupby("condition", sort=False)):
        # rounds that fewer than half of the runs reached (runs that stop early, such as the
        # naming game at consensus) would make the mean jump: they are left out of the figure
        part = part[part["n"] >= max(1, part["n"].max() / 2)].sort_values("round")
        ax.plot(part["round"], part["mean"], color=f"C{i % 10}", label=cond)
        ok = np.isfinite(part["ci_low"].astype(float))
        ax.fill_between(part["round"][ok], part["ci_low"][ok], part["ci_high"][ok], color=f"C{i % 10}",
                        alpha=0.2)
    ax.set_xlabel("round")
    ax.set_ylabel(measure)
    ax.set_title(f"{measure} over the run (mean and 95% CI over seeds; rounds reached by at least "
                 "half of the runs)", fontsize=8)
    if len(curves):
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
