"""A config's relative graph file is read next to the config, whatever the working directory."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from neurocomm.platform.cli import main
from neurocomm.platform.config import load_config
from tests.conftest import tiny_config


def test_relative_topology_file_resolves_against_the_config(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "configs"
    (folder / "graphs").mkdir(parents=True)
    (folder / "graphs" / "pair.edgelist").write_text("0 1\n")
    data = tiny_config(tmp_path, topology={"generator": None, "file": "graphs/pair.edgelist",
                                           "directed": True})
    path = folder / "pair.yaml"
    path.write_text(yaml.safe_dump(data))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # a file named relative to the working directory would not be found
    cfg = load_config(path)
    assert cfg.topology.file == str((folder / "graphs" / "pair.edgelist").resolve())
    assert main(["run", str(path)]) == 0
    (run,) = [p.parent for p in (tmp_path / "runs").rglob("config.yaml")]
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["topology"]["file"] == cfg.topology.file  # the run folder's copy reads from anywhere
