"""docs/python-api.md runs as written: its python blocks, top to bottom, in a folder that
`neurocomm init` filled, as a notebook would."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

from neurocomm.platform.examples import copy_examples
from tests.conftest import REPO

PAGE = REPO / "docs" / "python-api.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def test_the_python_api_page_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = python_blocks(PAGE.read_text(encoding="utf-8"))
    assert len(blocks) >= 6
    copy_examples(tmp_path)
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "__docs__"}
    printed = io.StringIO()
    # the page's runs have 4 agents: the analysis warns that the Mantel test says little there
    with contextlib.redirect_stdout(printed), pytest.warns(UserWarning, match="Mantel test on 4 agents"):
        for i, block in enumerate(blocks):
            exec(compile(block, f"{PAGE.name} block {i + 1}", "exec"), namespace)  # noqa: S102
    out = printed.getvalue()
    assert "population.vocab_size: must be >= 2" in out  # the error example did raise
    result = namespace["result"]
    assert result.status == "finished" and result.rounds == 40  # type: ignore[attr-defined]
    assert namespace["words"].outcome["converged"] is True  # type: ignore[attr-defined]
    assert len(list((tmp_path / "runs").iterdir())) == 5  # quickstart x2, the pair x2, naming game
