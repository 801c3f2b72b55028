"""The report's views and interactive page, the comparison labels and page, the Mantel warning.

Run directories are written by ``make_fake_run`` (real logs with the run directory's schemas,
real agent weights); the pages are opened in headless Chromium and driven through the DevTools
protocol by scripts/drive_report.py: key presses on the slider and selects, typing into the
round filter, pointer moves over cells, nodes and points.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from neurocomm.platform.analysis import analyze_run, mantel_test
from neurocomm.platform.analysis.compare import condition_labels
from neurocomm.platform.analysis.dialects import mantel_warning
from neurocomm.platform.analysis.report import FIGURES, write_report
from neurocomm.platform.analysis.run_details import symbol_attributes
from neurocomm.platform.cli import main
from tests.test_analysis_rundir import make_fake_run

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
needs_chromium = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Chromium")


def _driver() -> Any:
    spec = importlib.util.spec_from_file_location("drive_report", REPO / "scripts" / "drive_report.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _page_data(page: Path) -> dict[str, Any]:
    text = page.read_text(encoding="utf-8")
    found = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', text, re.S)
    assert found is not None
    return json.loads(found.group(1))


@pytest.fixture(scope="module")
def rich(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two checkpoints with different weights, a quarter of the logged games lost."""
    run = make_fake_run(tmp_path_factory.mktemp("rich"), lost_every=4, distinct_checkpoints=True)
    assert main(["report", str(run)]) == 0
    return run


def test_symbol_attributes_on_a_known_code() -> None:
    utterances = pd.DataFrame(
        {
            "object": [(0, 0), (0, 1), (1, 0), (1, 1)] * 2,
            "message": [(1, 3, 0), (1, 4, 0), (2, 3, 0), (2, 4, 0)] * 2,
        }
    )
    table = symbol_attributes(utterances).set_index(["symbol", "attribute", "value"])
    assert sorted(table.index.get_level_values("symbol").unique()) == [1, 2, 3, 4]  # 0 = end
    assert table.loc[(1, 0, 0), "mutual_information"] == pytest.approx(1.0)  # symbol 1 <=> a0 = 0
    assert table.loc[(1, 0, 0), "p_value_given_symbol"] == 1.0 and table.loc[(1, 0, 0), "count"] == 4
    assert table.loc[(1, 1, 0), "mutual_information"] == pytest.approx(0.0)  # independent of a1
    assert table.loc[(4, 1, 1), "mutual_information"] == pytest.approx(1.0)


def test_report_views_come_from_one_analysis(rich: Path) -> None:
    analysis = analyze_run(rich)
    intel = analysis.tables["intelligibility_by_checkpoint"]
    assert sorted(intel["round"].unique()) == [10, 20]
    at10 = intel[intel["round"] == 10]["success"].to_numpy()
    at20 = intel[intel["round"] == 20]["success"].to_numpy()
    assert not np.array_equal(at10, at20)  # different weights, different intelligibility
    assert np.array_equal(at20, analysis.intelligibility.reshape(-1))  # the headline checkpoint
    curves = analysis.tables["training_curves"]
    level = np.minimum(1.0, 0.3 + 0.02 * curves["round"].to_numpy())
    assert np.allclose(curves["listener_loss"], 1 - level) and np.allclose(curves["msg_length"], 3.0)

    page = write_report(analysis, rich / "report_again")
    data = _page_data(page)
    views = data["checkpoints"]
    assert [v["round"] for v in views] == [10, 20]
    assert np.allclose(np.array(views[0]["intelligibility"]).reshape(-1), at10, atol=1e-4)
    assert len(views[1]["clusters"]) == analysis.data.n_agents
    logged = analysis.data.messages
    assert data["games"]["logged"] == len(logged)
    rows = data["games"]["rows"]
    assert 0 < len(rows) <= len(logged) and any(r[7] is False for r in rows)
    first = rows[0]
    match = logged[(logged["round"] == first[0]) & (logged["speaker"] == first[1])]
    assert first[4] in {" ".join(map(str, m)) for m in match["message"]}  # message as logged
    text = page.read_text(encoding="utf-8")
    assert "barbell_graph" in text  # the run's config
    assert "Symbols and attribute values" in text and "data-tip='symbol" in text
    assert text.count("src='data:image/png;base64,") == len(FIGURES)
    for name in ("edge_curves", "training_curves", "symbol_attributes"):
        assert (page.parent / f"{name}.png").read_bytes()[:4] == b"\x89PNG"


def test_report_slider_starts_at_the_analysed_checkpoint(rich: Path) -> None:
    earlier = _page_data(write_report(analyze_run(rich, at=10), rich / "report_at10"))
    assert earlier["start"] == 0 and [v["round"] for v in earlier["checkpoints"]] == [10, 20]
    headline_only = analyze_run(rich, with_over_time=False)
    views = _page_data(write_report(headline_only, rich / "report_short"))["checkpoints"]
    assert [v["round"] for v in views] == [20] and views[0]["label"] == "checkpoint at round 20"
    assert np.allclose(np.array(views[0]["intelligibility"]), headline_only.intelligibility, atol=1e-4)


def test_report_page_fetches_nothing(rich: Path) -> None:
    text = (rich / "report" / "report.html").read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", text)
    assert "<link" not in text and "@import" not in text and "url(" not in text


def test_mantel_warning_on_four_agents(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = np.array([[0, 1, 2, 3], [1, 0, 1, 2], [2, 1, 0, 1], [3, 2, 1, 0]], dtype=float)
    b = np.array([[0, 3, 2, 1], [3, 0, 1, 2], [2, 1, 0, 3], [1, 2, 3, 0]], dtype=float)
    result = mantel_test(a, b)
    assert result.exact and result.permutations == 24
    assert "only 24 permutations" in (mantel_warning(result, 4) or "")
    big = np.abs(np.subtract.outer(np.arange(7.0), np.arange(7.0)))
    assert mantel_warning(mantel_test(big, big), 7) is None  # 7! = 5040 > 999: 999 drawn

    run = make_fake_run(tmp_path, changes=("topology.params.m1=2",), checkpoints=False)
    assert main(["analyze", str(run)]) == 0
    out = capsys.readouterr().out
    assert "warning: Mantel test on 4 agents has only 24 permutations" in out
    assert main(["report", str(run)]) == 0
    assert "id='mantel-warning'" in (run / "report" / "report.html").read_text(encoding="utf-8")


def test_compare_labels_conditions_by_parameters(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "sweep"
    for point, rule in enumerate(("gumbel", "reinforce")):
        for seed in (0, 1):
            make_fake_run(
                root,
                name=f"grid-p{point:03d}",
                seed=seed,
                checkpoints=False,
                changes=(f"training.rule={rule}", f"scenario.params.n_distractors={2 + point}"),
            )
    out = tmp_path / "out"
    assert main(["compare", str(root), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    label = "scenario.params.n_distractors=2, training.rule=gumbel"
    assert f"{label} (config grid-p000): 2" in printed
    table = pd.read_csv(out / "compare.csv")
    assert set(table["condition"]) == {label, "scenario.params.n_distractors=3, training.rule=reinforce"}
    data = _page_data(out / "compare.html")
    assert {c["condition"] for c in data["cells"]["tail_success"]} == set(table["condition"])
    assert condition_labels(["a", "b"], [{"seed": 0, "x": 1}, {"seed": 1, "x": 1}]) == ["a", "b"]


@needs_chromium
def test_run_report_controls_work_in_chromium(rich: Path) -> None:
    drive = _driver()
    with drive.Browser(CHROMIUM) as browser:
        seen = drive.drive_run_report(browser, rich / "report" / "report.html")
    assert seen["fetched"] == []
    assert drive.check_run_report(seen) == []
    first, second = seen["slider_first"], seen["slider_next"]
    assert first["label"].startswith("checkpoint at round 10") and second["label"].startswith(
        "checkpoint at round 20"
    )
    assert first["cells"] != second["cells"] and len(first["cells"]) == 36
    assert seen["cell_tooltip"].startswith("speaker ") and "success" in seen["cell_tooltip"]
    assert seen["node_tooltip"].startswith("agent ") and "dialect" in seen["node_tooltip"]
    assert 0 < seen["matching_rounds"] < seen["matching_all"]
    assert seen["matching_lost"] > 0 and seen["matching_won"] > 0
    assert seen["matching_won"] + seen["matching_lost"] == seen["matching_rounds"]
    assert min(seen["rounds_filtered"]) >= seen["round_min"]
    assert seen["speaker_choice"] == "0" and 0 < seen["matching_speaker"] < seen["matching_lost"]
    assert set(seen["speakers_filtered"]) == {"0"}


@needs_chromium
def test_compare_page_controls_work_in_chromium(tmp_path: Path) -> None:
    for name, changes in (("a", ("training.rule=gumbel",)), ("b", ())):
        for seed in (0, 1):
            make_fake_run(tmp_path / "runs", name=name, seed=seed, checkpoints=False, changes=changes)
    assert main(["compare", str(tmp_path / "runs"), "--out", str(tmp_path / "out")]) == 0
    drive = _driver()
    with drive.Browser(CHROMIUM) as browser:
        seen = drive.drive_compare_page(browser, tmp_path / "out" / "compare.html")
    assert drive.check_compare_page(seen) == []
    assert seen["measure_start"] == "tail_success" and seen["points"] == 2
    assert "training.rule=gumbel" in seen["chart_start"]
    assert "[" in seen["point_tooltip"] and "n = 2 of 2 runs" in seen["point_tooltip"]
