"""The digits game (scenarios/digits.py) and the conv perception of ``neuroai-rnn``: held-out
images never reach training, distractors follow their rule, a conv front on a vector game is one
config error, a missing scikit-learn names the extra, and a pair trains through the real CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from neurocomm.agents.neuroai import NeuroAIAgent
from neurocomm.platform import checks
from neurocomm.platform.cli import main
from neurocomm.platform.interfaces import ChannelSpec
from neurocomm.platform.rundir import RunDir
from neurocomm.platform.typed import from_mapping
from tests.conftest import REPO, tiny_config

pytest.importorskip("sklearn", reason="needs the images extra: pip install neurocomm[images]")

from neurocomm.scenarios.digits import DigitsGame, _digits  # noqa: E402

EXE = str(Path(sys.executable).parent / "neurocomm")
CONV = {"kind": "conv", "channels": [4, 8], "kernel": 3, "stride": 2}


def game(**params: object) -> DigitsGame:
    return DigitsGame(from_mapping(DigitsGame.Params, params))


def test_heldout_images_never_appear_in_training_games() -> None:
    g = game(heldout_fraction=0.2)
    train, held = set(g.image_ids("train")), set(g.image_ids("heldout"))
    _, labels = _digits()
    assert not train & held and len(train) + len(held) == len(labels)
    # a fifth of every class is held out
    for c in range(10):
        n = int((labels == c).sum())
        assert int((labels[list(held)] == c).sum()) == round(0.2 * n)
    for split, allowed in (("train", train), ("eval", train), ("heldout", held)):
        batch = g.sample(np.random.default_rng(1), 512, split)
        seen = set(batch.extra["candidates"].ravel()) | set(batch.extra["image_id"])
        assert seen <= allowed, split
    # the split is fixed by split_seed, not by the run's generator
    assert np.array_equal(game(split_seed=0).image_ids("heldout"), g.image_ids("heldout"))
    assert not np.array_equal(game(split_seed=1).image_ids("heldout"), g.image_ids("heldout"))


@pytest.mark.parametrize("distractors", ["other_class", "any"])
def test_candidates_hold_the_target_and_follow_the_distractor_rule(distractors: str) -> None:
    g = game(n_distractors=5, distractors=distractors)
    images, labels = _digits()
    batch = g.sample(np.random.default_rng(7), 400, "train")
    cand, label, target = batch.extra["candidates"], batch.extra["label"], batch.extra["image_id"]
    assert cand.shape == (400, 6)
    assert np.array_equal(cand[np.arange(400), label], target)
    assert np.array_equal(batch.speaker_obs, images[target]) and batch.speaker_obs.max() <= 1.0
    assert np.array_equal(batch.target[:, 0], labels[target])
    others = np.stack([np.delete(row, k) for row, k in zip(cand, label)])
    assert not (others == target[:, None]).any()  # never the target image again
    same_class = labels[others] == labels[target][:, None]
    if distractors == "other_class":
        assert not same_class.any()
        assert all(len(set(labels[row])) == 6 for row in cand)  # one image per class
    else:
        assert same_class.any()  # about 1 in 10 distractors shares the target's class
    assert np.bincount(label, minlength=6).min() > 40  # the target's slot is shuffled


def test_bad_params_are_one_line_config_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cases = [
        ({"scenario": {"name": "digits", "params": {"n_distractors": 10}}},
         "scenario.params.n_distractors: at most 9 with distractors: other_class"),
        ({"scenario": {"name": "digits", "params": {"heldout_fraction": 0.0}}},
         "scenario.params.heldout_fraction: must be in (0, 0.5)"),
        # a conv front on a game of attribute vectors
        ({"population": {"agent": {"params": {"perception": CONV}}}},
         "population.agent.params.perception.kind: conv needs a scenario whose observations are images"),
        ({"scenario": {"name": "digits"},
          "population": {"agent": {"params": {"perception": {**CONV, "channels": []}}}}},
         "population.agent.params.perception.channels: at least one convolution"),
        ({"scenario": {"name": "digits"},
          "population": {"agent": {"params": {"perception": {"kind": "dense"}}}}},
         "population.agent.params.perception.kind: expected one of 'mlp', 'conv'"),
    ]
    for i, (change, expected) in enumerate(cases):
        cfg = tiny_config(tmp_path)
        for key, value in change.items():
            if key == "population":
                cfg[key]["agent"]["params"].update(value["agent"]["params"])
            else:
                cfg[key] = value
        path = tmp_path / f"bad{i}.yaml"
        path.write_text(yaml.safe_dump(cfg))
        assert main(["validate", str(path)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and f"{path}: {expected}" in err, err
    assert not (tmp_path / "runs").exists()


def test_missing_scikit_learn_names_the_extra(tmp_path: Path) -> None:
    """Without scikit-learn (made unimportable in a fresh interpreter) the config is refused in
    one line that says which extra to install."""
    cfg = tmp_path / "digits.yaml"
    cfg.write_text(yaml.safe_dump(tiny_config(tmp_path, scenario={"name": "digits", "params": {}})))
    code = ("import sys; sys.modules['sklearn'] = None; "
            "from neurocomm.platform.cli import main; sys.exit(main(sys.argv[1:]))")
    out = subprocess.run([sys.executable, "-c", code, "validate", str(cfg)], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 2, out.stderr
    err = out.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert "scenario.name" in err and "pip install 'neurocomm[images]'" in err


def test_conv_agents_conform_on_the_image_game_only() -> None:
    """The conformance kit with a conv front: determinism, grouping and stacking (outputs and
    gradients), finite gradients, pickling and checkpoint round-trips; the vector games are left
    out, as their config would be refused (that the conv weights learn: the CLI test below)."""
    params = from_mapping(NeuroAIAgent.Params, {"hidden_size": 16, "embed_size": 8, "perception": CONV})
    played = checks.check_agent_model(NeuroAIAgent, params)
    assert played and all(p.startswith("digits x ") for p in played)


def test_digits_pair_trains_through_the_cli_and_logs_heldout_success(tmp_path: Path) -> None:
    cfg = tiny_config(
        tmp_path, scenario={"name": "digits", "params": {"n_distractors": 3}},
        training={"rounds": 4, "batch_size": 16},
        logging={"dir": str(tmp_path / "runs"), "progress": False, "eval_every": 2, "eval_games": 32,
                 "messages_every": 2, "messages_per_edge": 4, "checkpoint_every": 2},
    )
    cfg["population"]["agent"]["params"]["perception"] = CONV
    path = tmp_path / "digits.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = subprocess.run([EXE, "run", str(path)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    (run_dir,) = (tmp_path / "runs").iterdir()
    metrics = pd.read_parquet(run_dir / "metrics.parquet")
    evaluated = metrics.dropna(subset=["heldout_success"])
    assert sorted(evaluated["round"].unique()) == [0, 2, 3]
    assert evaluated["heldout_success"].between(0, 1).all()
    games = pd.read_parquet(run_dir / "messages")
    assert set(games["target"].map(lambda t: t[0])) <= set(range(10))
    # the conv weights learn between checkpoints, and load into a fresh agent of the config
    first, last = (next(iter(RunDir(run_dir).load_checkpoint(r)["agents"].values()))["model"]
                   for r in (2, 4))
    assert {"perception.conv.0.weight", "perception.conv.2.weight"} <= set(last)
    for name in ("perception.conv.0.weight", "perception.conv.2.weight"):
        assert not torch.equal(first[name], last[name]), name
    params = from_mapping(NeuroAIAgent.Params, cfg["population"]["agent"]["params"])
    agent = NeuroAIAgent(params, game=game().spec, channel=ChannelSpec(6, 2))
    agent.load_state_dict(last)
    analyzed = subprocess.run([EXE, "analyze", str(run_dir)], capture_output=True, text=True, timeout=300)
    assert analyzed.returncode == 0, analyzed.stderr[-2000:]


def test_shipped_digits_config_uses_a_conv_front() -> None:
    cfg = yaml.safe_load((REPO / "configs" / "digits.yaml").read_text())
    assert cfg["scenario"]["name"] == "digits"
    assert cfg["population"]["agent"]["params"]["perception"]["kind"] == "conv"
