"""``neurocomm init DIR``: the shipped example configs, copied where they can be edited and run."""

from __future__ import annotations

from pathlib import Path

import pytest

from neurocomm.platform.cli import main
from neurocomm.platform.examples import example_files, examples_root
from tests.conftest import REPO

SHIPPED = sorted(p.relative_to(REPO / "configs") for p in (REPO / "configs").rglob("*")
                 if p.suffix in (".yaml", ".edgelist"))


def test_the_examples_are_the_source_trees_configs() -> None:
    assert examples_root().resolve() == (REPO / "configs").resolve()  # one copy, in configs/
    assert example_files() == SHIPPED


def test_init_copies_every_example_and_they_run_from_there(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["init", str(tmp_path / "project")]) == 0
    assert f"wrote {len(SHIPPED)} example files" in capsys.readouterr().out
    copied = tmp_path / "project" / "configs"
    for rel in SHIPPED:
        assert (copied / rel).read_bytes() == (REPO / "configs" / rel).read_bytes(), rel
    monkeypatch.chdir(tmp_path / "project")
    # relative paths between the files hold: a sweep's base, a config's graph file, a study
    assert main(["validate", "configs/quickstart.yaml"]) == 0
    assert main(["validate", "configs/egg_compo_vs_generalization.yaml"]) == 0
    assert main(["sweep", "configs/sweeps/topology_x_rule.yaml", "--dry-run"]) == 0
    assert main(["study", "validate", "configs/studies/naming_game.yaml", "--scale", "tiny"]) == 0


def test_init_never_overwrites_without_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["init", str(tmp_path)]) == 0
    mine = tmp_path / "configs" / "quickstart.yaml"
    mine.write_text("name: mine\n")
    capsys.readouterr()
    assert main(["init", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "exists" in err and "--force" in err
    assert mine.read_text() == "name: mine\n"  # nothing on disk lost
    assert main(["init", str(tmp_path), "--force"]) == 0
    assert mine.read_bytes() == (REPO / "configs" / "quickstart.yaml").read_bytes()


def test_init_into_a_file_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "a-file"
    target.write_text("keep")
    assert main(["init", str(target)]) == 2
    assert "not a folder" in capsys.readouterr().err and target.read_text() == "keep"
