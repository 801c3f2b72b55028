"""The report of a study: measures per run, tables per condition, effects, verdicts, figures.

Everything is written under ``{study folder}/report/`` (docs/studies.md):

* ``runs.csv``: one row per run (condition, factor values, seed, run directory, each measure);
* ``conditions.csv`` / ``conditions.md``: per condition and measure, the mean, its 95% t interval
  over seeds and n;
* ``effects.csv`` / ``effects.md``: per claim, the effect, its 95% CI, the p-value of its test
  and, for contrasts, Hedges' g with its CI;
* ``verdicts.json``: per claim, the verdict of the study's rule and everything it was read from;
* ``claim_{ID}.png`` per claim, ``over_time_{MEASURE}.png`` per curve, and ``report.md``.

Measured values are cached in ``report/measures.json`` per run directory, keyed by the run's
status and rounds, so a report after a relaunch only analyses the runs that changed.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from neurocomm.platform import console
from neurocomm.platform.analysis import measures as registry
from neurocomm.platform.analysis import stats
from neurocomm.platform.errors import RunDirError
from neurocomm.platform.rundir import atomic_write_text
from neurocomm.platform.study import Claim, Study, VerdictRule, study_folder

REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE = "reproduced", "not reproduced", "inconclusive"


_warn = console.warn


def wanted_measures(study: Study) -> list[str]:
    names = list(study.config.measures)
    for claim in study.config.claims:
        names += [claim.measure] + ([claim.effect.against] if claim.effect.against else [])
    return list(dict.fromkeys(names))


def _run_key(path: Path) -> str:
    status = json.loads((path / "run.json").read_text())
    return f"{status.get('status')}:{status.get('rounds_done')}:{status.get('finished')}"


def collect(study: Study, folder: Path,
            contexts: dict[str, registry.RunMeasures] | None = None) -> pd.DataFrame:
    """One row per (condition, seed) that has a run: factor values, run_dir and every measure.

    ``contexts`` receives each run's :class:`RunMeasures`, so curves reuse its analysis."""
    cache_path = folder / "report" / "measures.json"
    cache: dict[str, Any] = json.loads(cache_path.read_text()) if cache_path.is_file() else {}
    names = wanted_measures(study)
    rows = []
    for condition in study.conditions:
        index_path = folder / condition.id / "sweep.json"
        index = json.loads(index_path.read_text()) if index_path.is_file() else {}
        by_seed = {int(e["seed"]): Path(e["run_dir"]) for e in index.values()}
        for seed in study.seeds:
            run_dir = by_seed.get(seed)
            if run_dir is None or not (run_dir / "run.json").is_file():
                continue
            status = json.loads((run_dir / "run.json").read_text()).get("status")
            if status != "finished":  # a partial run would bias its condition: rerun the study
                _warn(f"{run_dir} is {status}, left out (relaunch `neurocomm study run` to finish it)")
                continue
            row: dict[str, Any] = {"condition": condition.id, **condition.values, "seed": seed,
                                   "run_dir": str(run_dir)}
            key = _run_key(run_dir)
            entry = cache.get(str(run_dir), {})
            values = entry.get("values", {}) if entry.get("key") == key else {}
            run = registry.RunMeasures(run_dir, study.config.distance, bool(study.config.over_time))
            if contexts is not None:
                contexts[str(run_dir)] = run
            for name in names:
                if name not in values:
                    try:
                        values[name] = registry.resolve(name).at_end(run)
                    except RunDirError as err:
                        _warn(f"{name} of {run_dir}: {err}")
                        values[name] = math.nan
                row[name] = values[name]
            cache[str(run_dir)] = {"key": key, "values": values}
            rows.append(row)
    cache_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(cache_path, json.dumps(cache, indent=1, default=float))
    if not rows:
        raise RunDirError(f"{folder}: no runs of this study yet; start them with "
                          f"`neurocomm study run {study.path} --scale {study.scale}`")
    return pd.DataFrame(rows)


def condition_table(study: Study, runs: pd.DataFrame) -> pd.DataFrame:
    out = []
    for condition in study.conditions:
        part = runs[runs["condition"] == condition.id]
        for name in wanted_measures(study):
            est = stats.mean_ci(part[name].astype(float) if len(part) else [])
            out.append({"condition": condition.id, **condition.values, "measure": name, "n": est.n,
                        "runs": len(part), "seeds": len(study.seeds), "mean": est.value,
                        "ci_low": est.low, "ci_high": est.high})
    return pd.DataFrame(out)


def _selected(claim: Claim, runs: pd.DataFrame) -> pd.DataFrame:
    mask = np.ones(len(runs), dtype=bool)
    for key, value in claim.effect.where.items():
        mask &= (runs[key] == value).to_numpy()
    return runs[mask]


def estimate(claim: Claim, runs: pd.DataFrame) -> dict[str, Any]:
    """The claim's effect: estimate, CI, p-value (and test), n, plus kind-specific extras."""
    effect, part = claim.effect, _selected(claim, runs)
    y = part[claim.measure].astype(float)
    if effect.kind == "contrast":
        a = y[part[effect.factor] == effect.levels[0]]
        b = y[part[effect.factor] == effect.levels[1]]
        d = stats.difference(a, b)
        p = d.p_permutation if effect.test == "permutation" else d.p_welch
        return {"estimate": d.diff, "ci_low": d.low, "ci_high": d.high, "p": p, "test": effect.test,
                "p_welch": d.p_welch, "p_permutation": d.p_permutation, "hedges_g": d.g,
                "g_low": d.g_low, "g_high": d.g_high, "n": d.n_a + d.n_b, "n_a": d.n_a, "n_b": d.n_b}
    if effect.kind == "slope":
        x = part[effect.factor].astype(float)
        if effect.log_factor:
            x = np.log(x.where(x > 0))
        fit = stats.loglog_slope(x, y) if effect.log else stats.linear_slope(x, y)
        return {"estimate": fit.slope, "ci_low": fit.low, "ci_high": fit.high, "p": fit.p,
                "test": "OLS t (slope = 0)", "n": fit.n, "intercept": fit.intercept, "r": fit.r}
    if effect.kind == "correlation":
        c = stats.correlation(part[effect.against].astype(float), y, method=effect.method)
        return {"estimate": c.r, "ci_low": c.low, "ci_high": c.high, "p": c.p,
                "test": f"permutation ({c.method})", "n": c.n}
    est, p = stats.one_sample(y)
    return {"estimate": est.value, "ci_low": est.low, "ci_high": est.high, "p": p,
            "test": "one-sample t (mean = 0)", "n": est.n}


def verdict(rule: VerdictRule, value: float, low: float, high: float, p: float) -> str:
    """Apply a study's verdict rule (see :class:`neurocomm.platform.study.VerdictRule`)."""
    if not all(math.isfinite(v) for v in (value, low, high)):
        return INCONCLUSIVE
    if rule.rule == "equivalence":
        assert rule.target is not None
        lo_band, hi_band = rule.target - rule.margin, rule.target + rule.margin
        if lo_band <= low and high <= hi_band:
            return REPRODUCED
        if high < lo_band or low > hi_band:
            return NOT_REPRODUCED
        return INCONCLUSIVE
    sign = 1.0 if rule.expect == "increase" else -1.0
    lo, hi = sorted((sign * low, sign * high))
    if lo > 0 and (not math.isfinite(p) or p < rule.alpha):
        return REPRODUCED
    if hi < rule.margin:
        return NOT_REPRODUCED
    return INCONCLUSIVE


def _rule_text(rule: VerdictRule) -> str:
    if rule.rule == "equivalence":
        return f"95% CI within {rule.target} ± {rule.margin}"
    side = "> 0" if rule.expect == "increase" else "< 0"
    margin = f" (not reproduced if the CI excludes effects of {rule.margin} or more)" if rule.margin else ""
    return f"effect {side}: 95% CI excludes 0 on that side and p < {rule.alpha}{margin}"


def _fmt(x: Any, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    return f"{x:.{digits}g}" if isinstance(x, float) else str(x)


def _markdown(frame: pd.DataFrame) -> str:
    cols = list(frame.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, row in frame.iterrows():
        lines.append("| " + " | ".join(_fmt(row[c]) for c in cols) + " |")
    return "\n".join(lines)


def _wide_conditions(study: Study, table: pd.DataFrame) -> pd.DataFrame:
    cells = table.assign(cell=[f"{_fmt(m)} [{_fmt(lo)}, {_fmt(hi)}] (n={n})"
                               for m, lo, hi, n in zip(table["mean"], table["ci_low"], table["ci_high"],
                                                       table["n"])])
    wide = cells.pivot(index="condition", columns="measure", values="cell")
    wide = wide.reindex(index=[c.id for c in study.conditions], columns=wanted_measures(study))
    return wide.reset_index()


def over_time_table(study: Study, runs: pd.DataFrame, folder: Path,
                    contexts: dict[str, registry.RunMeasures] | None = None) -> pd.DataFrame:
    """Per condition, measure and round: mean, 95% CI and n over seeds. Each run's curves are
    cached in ``report/curves.parquet`` under the same key as its measured values."""
    cache_path = folder / "report" / "curves.parquet"
    cache = pd.read_parquet(cache_path) if cache_path.is_file() else pd.DataFrame(
        columns=["run_dir", "key", "measure", "round", "value"])
    frames, fresh = [], []
    for name in study.config.over_time:
        curve_fn = registry.resolve(name).over_time
        assert curve_fn is not None
        for _, row in runs.iterrows():
            key = _run_key(Path(row["run_dir"]))
            hit = cache[(cache["run_dir"] == row["run_dir"]) & (cache["key"] == key)
                        & (cache["measure"] == name)]
            if len(hit):
                curve = hit[["round", "value"]]
            else:
                run = (contexts or {}).get(row["run_dir"]) or registry.RunMeasures(
                    row["run_dir"], study.config.distance, True)
                try:
                    curve = curve_fn(run)
                except RunDirError as err:
                    _warn(f"{name} over time of {row['run_dir']}: {err}")
                    continue
            fresh.append(curve[["round", "value"]].assign(run_dir=row["run_dir"], key=key, measure=name))
            frames.append(curve.assign(measure=name, condition=row["condition"], seed=row["seed"]))
    if fresh:
        pd.concat(fresh, ignore_index=True).astype({"round": float, "value": float}).to_parquet(
            cache_path, index=False)
    if not frames:
        return pd.DataFrame(columns=["measure", "condition", "round", "n", "mean", "ci_low", "ci_high"])
    long = pd.concat(frames, ignore_index=True)
    out = []
    for (name, cond, round_), part in long.groupby(["measure", "condition", "round"], sort=True):
        est = stats.mean_ci(part["value"].astype(float))
        out.append({"measure": name, "condition": cond, "round": round_, "n": est.n, "mean": est.value,
                    "ci_low": est.low, "ci_high": est.high})
    return pd.DataFrame(out)


def write_report(study: Study, root: str | Path | None = None, export: str | Path | None = None
                 ) -> dict[str, Any]:
    """Measure every run, write the tables, verdicts and figures; returns the verdicts."""
    from neurocomm.platform import study_figures

    folder = study_folder(study, root)
    out = folder / "report"
    contexts: dict[str, registry.RunMeasures] = {}
    runs = collect(study, folder, contexts)
    out.mkdir(parents=True, exist_ok=True)
    runs.to_csv(out / "runs.csv", index=False)
    table = condition_table(study, runs)
    table.to_csv(out / "conditions.csv", index=False)
    atomic_write_text(out / "conditions.md", _markdown(_wide_conditions(study, table)) + "\n")
    verdicts: dict[str, Any] = {}
    effect_rows = []
    for claim in study.config.claims:
        est = estimate(claim, runs)
        result = verdict(claim.verdict, est["estimate"], est["ci_low"], est["ci_high"], est["p"])
        verdicts[claim.id] = {"verdict": result, "statement": claim.statement.strip(),
                              "reference": claim.reference, "published": claim.published.strip(),
                              "measure": claim.measure,
                              "effect": {"kind": claim.effect.kind, "factor": claim.effect.factor,
                                         "levels": list(claim.effect.levels), "log": claim.effect.log,
                                         "log_factor": claim.effect.log_factor,
                                         "against": claim.effect.against, "where": claim.effect.where},
                              "rule": _rule_text(claim.verdict), **est,
                              "figure": f"claim_{claim.id}.png"}
        effect_rows.append({"claim": claim.id, "measure": claim.measure, "kind": claim.effect.kind, **est,
                            "verdict": result})
        study_figures.claim_figure(study, claim, runs, verdicts[claim.id], out / f"claim_{claim.id}.png")
    effects = pd.DataFrame(effect_rows)
    effects.to_csv(out / "effects.csv", index=False)
    shown = [c for c in ("claim", "measure", "kind", "estimate", "ci_low", "ci_high", "p", "test",
                         "hedges_g", "g_low", "g_high", "n", "verdict") if c in effects]
    atomic_write_text(out / "effects.md", _markdown(effects[shown]) + "\n")
    atomic_write_text(out / "verdicts.json", json.dumps(verdicts, indent=2, default=_plain) + "\n")
    curves = over_time_table(study, runs, folder, contexts)
    curves.to_csv(out / "over_time.csv", index=False)
    figures = [f"claim_{c.id}.png" for c in study.config.claims]
    for name in study.config.over_time:
        path = out / f"over_time_{name}.png"
        study_figures.curve_figure(curves[curves["measure"] == name], name, path)
        figures.append(path.name)
    atomic_write_text(out / "report.md", _report_markdown(study, table, effects, verdicts, figures))
    if export is not None:
        _export(study, out, Path(export), figures)
    return verdicts


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def _report_markdown(study: Study, table: pd.DataFrame, effects: pd.DataFrame, verdicts: dict[str, Any],
                     figures: list[str]) -> str:
    cfg = study.config
    lines = [f"# Study {cfg.name} ({study.scale})", "", cfg.description.strip(), "",
             f"Scale `{study.scale}`: {cfg.scales[study.scale].description.strip()}", "",
             f"Seeds: {', '.join(map(str, study.seeds))}. Conditions: {len(study.conditions)}.", "",
             "## Verdicts", ""]
    for cid, v in verdicts.items():
        lines += [f"### {cid}: **{v['verdict']}**", "", f"{v['statement']} ({v['reference']}; published: "
                  f"{v['published']})", "",
                  f"{v['measure']}, {v['effect']['kind']}: {_fmt(v['estimate'])} "
                  f"[95% CI {_fmt(v['ci_low'])}, {_fmt(v['ci_high'])}], p = {_fmt(v['p'])} ({v['test']}), "
                  f"n = {v['n']}" + (f", Hedges' g = {_fmt(v['hedges_g'])} [{_fmt(v['g_low'])}, "
                                     f"{_fmt(v['g_high'])}]" if "hedges_g" in v else "")
                  + f". Rule: {v['rule']}.", "", f"![{cid}]({v['figure']})", ""]
    lines += ["## Effects", ""]
    shown = [c for c in ("claim", "estimate", "ci_low", "ci_high", "p", "hedges_g", "n", "verdict")
             if c in effects]
    lines += [_markdown(effects[shown]), "", "## Conditions (mean [95% CI] (n) over seeds)", "",
              _markdown(_wide_conditions(study, table)), ""]
    for fig in figures[len(verdicts):]:
        lines += [f"![{fig}]({fig})", ""]
    return "\n".join(lines)


def _export(study: Study, out: Path, target: Path, figures: list[str]) -> None:
    """Copy report.md and the figures to ``target``, prefixed with NAME__SCALE."""
    target.mkdir(parents=True, exist_ok=True)
    prefix = study.folder_name
    text = (out / "report.md").read_text()
    for fig in figures:
        shutil.copyfile(out / fig, target / f"{prefix}__{fig}")
        text = text.replace(f"]({fig})", f"]({prefix}__{fig})")
    for name in ("verdicts.json", "conditions.csv", "effects.csv"):
        shutil.copyfile(out / name, target / f"{prefix}__{name}")
    atomic_write_text(target / f"{prefix}.md", text)
