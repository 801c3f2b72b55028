"""The PettingZoo door: PettingZoo's own conformance tests, and agents of our own writing
playing through it into a run directory that ``neurocomm analyze`` reads."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from neurocomm.platform.config import build_config
from neurocomm.platform.errors import ConfigError
from tests.conftest import REPO, tiny_config

pytest.importorskip("pettingzoo", reason="needs the pettingzoo extra: pip install neurocomm[pettingzoo]")

from pettingzoo.test import parallel_api_test, parallel_seed_test  # noqa: E402

from neurocomm.platform.pettingzoo_env import LISTEN, SPEAK, CommunicationEnv  # noqa: E402

EXE = str(Path(sys.executable).parent / "neurocomm")
SCENARIOS = {
    "referential": {"name": "referential", "params": {"n_attributes": 2, "n_values": 3, "n_distractors": 2}},
    "reconstruction": {"name": "reconstruction", "params": {"n_attributes": 2, "n_values": 3}},
}


def env_config(tmp_path: Path, scenario: str = "referential"):  # noqa: ANN201 - RunConfig
    return build_config(tiny_config(tmp_path, topology={"generator": "cycle_graph", "params": {"n": 5}},
                                    scenario=SCENARIOS[scenario]))


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_pettingzoo_api_and_seed_tests(tmp_path: Path, scenario: str) -> None:
    cfg = env_config(tmp_path, scenario)
    parallel_api_test(CommunicationEnv(cfg, turns=7), num_cycles=60)
    parallel_seed_test(lambda: CommunicationEnv(cfg, turns=7), num_cycles=60)


def test_roles_rewards_and_recorded_games(tmp_path: Path) -> None:
    """A speaker that names its object's first attribute and a listener that picks the
    candidate with that attribute: the env scores exactly those games, and the run directory
    holds them as the docs say (one metrics row per edge and episode, every game logged)."""
    env = CommunicationEnv(env_config(tmp_path), turns=4, record=True)
    n_values = env.scenario.spec.n_values
    wins = games = 0
    for episode in range(3):
        obs, infos = env.reset(seed=episode)
        while env.agents:
            actions = {}
            for a in env.agents:
                o = obs[a]
                message = np.zeros(2, dtype=np.int64)
                choice = 0
                if o["role"] == SPEAK:
                    message[0] = 1 + int(o["object"][:n_values].argmax())
                elif o["role"] == LISTEN:
                    firsts = o["candidates"][:, :n_values].argmax(-1)
                    choice = int(np.flatnonzero(firsts == o["message"][0] - 1)[0])
                actions[a] = {"message": message, "choice": choice}
            obs, rewards, _, _, infos = env.step(actions)
            for a, info in infos.items():
                if "success" in info:
                    assert rewards[a] == float(info["success"])
                    wins += info["success"]
                    games += 1
    env.close()
    # distractors that share the first attribute make some of these games undecidable
    assert 0.5 < wins / games < 1.0
    assert games % 2 == 0  # speaker and listener both told
    run = env.run_dir
    assert run is not None and json.loads((run / "run.json").read_text())["status"] == "finished"
    metrics = pd.read_parquet(run / "metrics.parquet")
    messages = pd.read_parquet(run / "messages")
    assert sorted(metrics["round"].unique()) == [0, 1, 2]
    assert int(metrics["games"].sum()) == games // 2 == len(messages)
    per_edge = messages.groupby(["round", "speaker", "listener"])["success"].mean()
    logged = metrics.set_index(["round", "speaker", "listener"])["success"]
    assert np.allclose(per_edge.sort_index().to_numpy(), logged.sort_index().to_numpy())
    assert (messages["length"] == 2).all() and all(m[-1] == 0 for m in messages["message"])


def test_standalone_scenario_is_refused(tmp_path: Path) -> None:
    data = tiny_config(tmp_path, scenario={"name": "naming-game", "params": {}})
    with pytest.raises(ConfigError, match="scenario.name"):
        CommunicationEnv(build_config(data))


@pytest.mark.parametrize("agents", ["urn", "torch"])
def test_documented_example_learns_and_is_analysed(tmp_path: Path, agents: str) -> None:
    """examples/pettingzoo_agents.py: tabular or plain-PyTorch agents written against the
    PettingZoo API only; their games become a run directory that `neurocomm analyze` reads."""
    out = subprocess.run(
        [sys.executable, str(REPO / "examples" / "pettingzoo_agents.py"), "--episodes", "150",
         "--agents", agents, "--set", f"logging.dir={tmp_path / 'runs'}"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    (run_dir,) = list((tmp_path / "runs").iterdir())
    assert f"run directory: {run_dir}" in out.stdout
    success = pd.read_parquet(run_dir / "metrics.parquet").groupby("round")["success"].mean()
    assert len(success) == 150
    # fixed seeds: from chance (1/3) to well above it
    assert success.iloc[:20].mean() < 0.45 < success.iloc[-20:].mean()

    analysed = subprocess.run([EXE, "analyze", str(run_dir)], capture_output=True, text=True, timeout=300)
    assert analysed.returncode == 0, analysed.stderr[-3000:]
    summary = json.loads((run_dir / "analysis" / "summary.json").read_text())
    assert summary["rounds_done"] == 150
    assert "topsim" in analysed.stdout
