"""Studies: shipped files validate, a tiny scale of each runs end to end through the real CLI and
writes its tables, figures and verdicts; bad study files fail in one line with exit code 2."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from neurocomm.platform.analysis import measures
from neurocomm.platform.cli import main
from neurocomm.platform.study import VerdictRule, load_study, resolve_study_path, run_study
from neurocomm.platform.study_report import (
    INCONCLUSIVE,
    NOT_REPRODUCED,
    REPRODUCED,
    estimate,
    verdict,
)

ROOT = Path(__file__).resolve().parent.parent
STUDIES = ROOT / "configs" / "studies"
VALIDATING = ["naming_game", "dialect_continuum", "population_heterogeneity", "generalisation_input_size",
              "generalisation_transmission", "ease_of_teaching", "partitioned_populations",
              "iterated_learning", "egg_parity"]
VERDICTS = {REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE}


@pytest.mark.parametrize("name", VALIDATING)
@pytest.mark.parametrize("scale", ["tiny", "quick", "full"])
def test_shipped_study_validates(name: str, scale: str) -> None:
    study = load_study(resolve_study_path(name), scale)
    assert study.conditions and study.config.claims
    if scale != "tiny":
        assert len(study.seeds) >= 5


def test_every_shipped_study_is_validated_and_run_tiny_here() -> None:
    assert sorted(VALIDATING) == sorted(p.stem for p in STUDIES.glob("*.yaml"))


def _run_and_report(name: str, out: Path, capsys: pytest.CaptureFixture[str]) -> dict:
    assert main(["study", "run", name, "--scale", "tiny", "--dir", str(out)]) == 0
    export = out / "export"
    assert main(["study", "report", name, "--scale", "tiny", "--dir", str(out), "--export", str(export)]) == 0
    report = out / f"{name}__tiny" / "report"
    study = load_study(resolve_study_path(name), "tiny")
    verdicts = json.loads((report / "verdicts.json").read_text())
    assert set(verdicts) == {c.id for c in study.config.claims}
    for claim_id, v in verdicts.items():
        assert v["verdict"] in VERDICTS
        assert (report / f"claim_{claim_id}.png").stat().st_size > 1000
        assert (export / f"{name}__tiny__claim_{claim_id}.png").is_file()
    table = pd.read_csv(report / "conditions.csv")
    assert set(table["condition"]) == {c.id for c in study.conditions}
    assert (table["runs"] == 2).all() and (table["n"] <= 2).all()  # two seeds; n: runs where defined
    assert (table[table["measure"] == "tail_success"]["n"] == 2).all()
    assert {"mean", "ci_low", "ci_high", "n"} <= set(table.columns)
    assert (report / "conditions.md").read_text().startswith("| condition |")
    effects = pd.read_csv(report / "effects.csv")
    assert list(effects["claim"]) == list(verdicts)
    assert (report / "report.md").is_file() and (export / f"{name}__tiny.md").is_file()
    printed = capsys.readouterr().out
    assert all(f"{c}: {v['verdict']}" in printed for c, v in verdicts.items())
    return verdicts


def test_naming_game_study_tiny_end_to_end_and_relaunch_skips(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    verdicts = _run_and_report("naming_game", tmp_path, capsys)
    assert verdicts["complete_tconv"]["n"] == 4 and verdicts["complete_tconv"]["estimate"] > 0.5
    study = load_study(resolve_study_path("naming_game"), "tiny")
    _, outcomes = run_study(study, tmp_path, echo=lambda msg: None)
    assert outcomes == ["skipped"] * (len(study.conditions) * len(study.seeds))
    assert (tmp_path / "naming_game__tiny" / "report" / "over_time_max_words.png").is_file()


@pytest.mark.parametrize("name", [n for n in VALIDATING if n != "naming_game"])
def test_neural_study_tiny_end_to_end(name: str, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    _run_and_report(name, tmp_path, capsys)
    runs = pd.read_csv(tmp_path / f"{name}__tiny" / "report" / "runs.csv")
    assert len(runs) == 2 * len(load_study(resolve_study_path(name), "tiny").conditions)
    assert runs["tail_success"].between(0, 1).all()
    if "learnability" in runs:
        assert runs["learnability"].between(0, 1).all()


def test_learnability_measures_the_sole_speaker_of_a_directed_edge(tmp_path: Path) -> None:
    from neurocomm.platform.analysis.transmission import learnability

    name = "generalisation_transmission"
    assert main(["study", "run", name, "--scale", "tiny", "--dir", str(tmp_path)]) == 0
    run = next((tmp_path / "generalisation_transmission__tiny").rglob("run.json")).parent
    value = measures.resolve("learnability").at_end(measures.RunMeasures(run))
    # node 1 only listens on the edge 0 -> 1: the fresh listeners are taught node 0's language
    assert value == pytest.approx(learnability(run, speaker=0))
    assert value != pytest.approx(learnability(run))


def test_report_before_any_run_is_a_one_line_error(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["study", "report", "naming_game", "--scale", "tiny", "--dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "no runs of this study yet" in err


GOOD = """
name: mini
description: a study
base: {base}
factors:
  size: {{key: topology.params.n}}
  rule:
    levels:
      g: {{training.rule: gumbel}}
      r: {{training.rule: reinforce}}
conditions:
  - grid: {{size: [3, 4], rule: [g, r]}}
measures: [topsim]
claims:
  - id: c1
    statement: s
    reference: r
    published: p
    measure: topsim
    effect: {{kind: contrast, factor: rule, levels: [g, r]}}
    verdict: {{rule: direction, expect: increase}}
scales:
  quick: {{}}
  full: {{}}
"""

BAD = [
    ("colour: red\n", "colour: unknown key"),
    ("scales: {quick: {}}", "scales: a 'full' scale is required"),
    ("seeds: [0, 1]", "seeds: 2 seeds; a claim needs at least 5"),
    ("measures: [nonsense]", "measures[0]: unknown measure 'nonsense'"),
    ("conditions: [{grid: {size: [3], rule: [x]}}]", "conditions[0].grid.rule: 'x' is not a level of rule"),
    ("conditions: [{grid: {size: [3]}}]", "conditions[0].grid.rule: rule has no values here"),
    ("conditions: [{grid: {size: [3], rule: [g]}}]",
     "claims[0].effect.levels[1]: no condition has rule = 'r'"),
    ("conditions: [{grid: {size: [3], rule: [g, r]}, set: {training.rounds: 0}}]",
     "__size-3): training.rounds: must be >= 1"),
]


@pytest.mark.parametrize(("change", "message"), BAD)
def test_bad_study_file_is_one_line_exit_2(change: str, message: str, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    import yaml

    data = yaml.safe_load(GOOD.format(base=ROOT / "configs" / "quickstart.yaml"))
    data.update(yaml.safe_load(change))
    path = tmp_path / "mini.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["study", "validate", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    assert str(path) in err and message in err


def test_good_study_file_validates(tmp_path: Path) -> None:
    path = tmp_path / "mini.yaml"
    path.write_text(GOOD.format(base=ROOT / "configs" / "quickstart.yaml"))
    study = load_study(path, "quick")
    assert [c.id for c in study.conditions] == ["size-3__rule-g", "size-3__rule-r", "size-4__rule-g",
                                                "size-4__rule-r"]
    assert study.conditions[1].overrides == {"topology.params.n": 3, "training.rule": "reinforce"}
    assert main(["study", "validate", "no_such_study"]) == 2


def test_verdict_rules() -> None:
    up = VerdictRule(rule="direction", expect="increase")
    assert verdict(up, 0.3, 0.1, 0.5, 0.01) == REPRODUCED
    assert verdict(up, 0.3, 0.1, 0.5, 0.2) == INCONCLUSIVE  # CI and test disagree
    assert verdict(up, 0.1, -0.1, 0.3, 0.4) == INCONCLUSIVE
    assert verdict(up, -0.3, -0.5, -0.1, 0.01) == NOT_REPRODUCED
    down = VerdictRule(rule="direction", expect="decrease", margin=0.05)
    assert verdict(down, -0.3, -0.5, -0.1, 0.01) == REPRODUCED
    assert verdict(down, 0.0, -0.02, 0.02, 0.9) == NOT_REPRODUCED  # excludes effects of 0.05 or more
    band = VerdictRule(rule="equivalence", target=1.5, margin=0.1)
    assert verdict(band, 1.47, 1.44, 1.51, 0.0) == REPRODUCED
    assert verdict(band, 1.42, 1.35, 1.45, 0.0) == INCONCLUSIVE  # CI straddles the band's edge
    assert verdict(band, 1.34, 1.29, 1.39, 0.0) == NOT_REPRODUCED
    assert verdict(band, math.nan, math.nan, math.nan, math.nan) == INCONCLUSIVE


def test_planted_contrast_and_exponent_are_reproduced(tmp_path: Path) -> None:
    path = tmp_path / "mini.yaml"
    path.write_text(GOOD.format(base=ROOT / "configs" / "quickstart.yaml"))
    claim = load_study(path, "quick").config.claims[0]
    rng = np.random.default_rng(0)
    runs = pd.DataFrame({"rule": ["g"] * 5 + ["r"] * 5, "size": [3] * 10,
                         "topsim": np.r_[rng.normal(0.3, 0.02, 5), rng.normal(0.5, 0.02, 5)]})
    est = estimate(claim, runs)
    assert est["estimate"] == pytest.approx(0.2, abs=0.05) and est["hedges_g"] > 3
    assert est["p"] == pytest.approx(2 / 252)  # exact permutation p: complete separation
    assert verdict(claim.verdict, est["estimate"], est["ci_low"], est["ci_high"], est["p"]) == REPRODUCED
    null = runs.assign(topsim=rng.normal(0.3, 0.02, 10))
    est = estimate(claim, null)
    assert verdict(claim.verdict, est["estimate"], est["ci_low"], est["ci_high"], est["p"]) != REPRODUCED


def test_measure_registry_names_and_unknown_names() -> None:
    assert {"topsim", "posdis", "t_conv", "max_words", "heldout_success", "mantel_r"} <= set(measures.names())
    with pytest.raises(LookupError, match="unknown measure 'nope'; known: .*topsim"):
        measures.resolve("nope")


def test_report_leaves_out_runs_that_did_not_finish(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["study", "run", "naming_game", "--scale", "tiny", "--dir", str(tmp_path)]) == 0
    folder = tmp_path / "naming_game__tiny"
    index = json.loads((folder / "graph-ring__size-8" / "sweep.json").read_text())
    stopped = Path(next(e["run_dir"] for e in index.values() if e["seed"] == 1))
    status = json.loads((stopped / "run.json").read_text())
    (stopped / "run.json").write_text(json.dumps({**status, "status": "interrupted"}))
    capsys.readouterr()
    assert main(["study", "report", "naming_game", "--scale", "tiny", "--dir", str(tmp_path)]) == 0
    assert f"{stopped} is interrupted, left out" in capsys.readouterr().err
    table = pd.read_csv(folder / "report" / "conditions.csv")
    ring8 = table[(table["condition"] == "graph-ring__size-8") & (table["measure"] == "t_conv")]
    assert ring8["runs"].item() == 1 and ring8["seeds"].item() == 2
    runs = pd.read_csv(folder / "report" / "runs.csv")
    assert str(stopped) not in set(runs["run_dir"])
