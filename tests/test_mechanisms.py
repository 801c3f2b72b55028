"""NeuroAI mechanisms of ``neuroai-rnn``: self-monitoring, plasticity, top-down feedback, lesions.

Each switch is off by default and then changes nothing; each does what it says when on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from neurocomm.agents.grouped import one_group, plastic_rnn
from neurocomm.agents.monitoring import SelfMonitor, understood_at_end
from neurocomm.agents.neuroai import NeuroAIAgent
from neurocomm.agents.plasticity import PlasticRNN
from neurocomm.agents.rules import GumbelSoftmax, Reinforce
from neurocomm.platform.config import build_config, load_config
from neurocomm.platform.errors import ConfigError
from neurocomm.platform.interfaces import ChannelSpec, Feedback
from neurocomm.platform.metrics import TIMING_COLUMNS
from neurocomm.platform.runner import run
from neurocomm.platform.typed import from_mapping
from neurocomm.scenarios.referential import ReferentialGame
from tests.conftest import REPO, tiny_config

GAME = ReferentialGame(ReferentialGame.Params(n_attributes=2, n_values=3, n_distractors=2))
CHANNEL = ChannelSpec(vocab_size=6, max_len=3)
RULES = [Reinforce, GumbelSoftmax]


def make_agent(seed: int = 0, **params: Any) -> NeuroAIAgent:
    torch.manual_seed(seed)
    p = from_mapping(NeuroAIAgent.Params, {"hidden_size": 16, "embed_size": 8,
                                           "perception_layers": [16], **params})
    return NeuroAIAgent(p, game=GAME.spec, channel=CHANNEL)


def games(seed: int = 0, n: int = 16) -> Any:
    return GAME.sample(np.random.default_rng(seed), n)


def speaker_obs(batch: Any) -> torch.Tensor:
    return torch.from_numpy(batch.speaker_obs)


# ---------------------------------------------------------------------------- off by default


def test_defaults_are_off() -> None:
    agent = make_agent()
    assert agent.monitor is None
    assert isinstance(agent.comprehension.rnn, nn.GRU)
    assert all(p.requires_grad for p in agent.parameters())
    assert not any(k.startswith("perception.feedback") for k in agent.state_dict())


def metrics(tmp_path: Path, rule: str, **params: Any) -> pd.DataFrame:
    base = {"hidden_size": 32, "embed_size": 16, "perception_layers": [32]}
    cfg = tiny_config(tmp_path, seed=3, training={"rounds": 4, "batch_size": 16, "rule": rule})
    cfg["population"]["agent"] = {"lr": 0.005, "params": {**base, **params}}
    result = run(build_config(cfg))
    df = pd.read_parquet(result.run_dir / "metrics.parquet")
    return df.drop(columns=[c for c in df.columns if df[c].dtype.kind not in "fiu" or c in TIMING_COLUMNS])


@pytest.mark.parametrize("rule", ["reinforce", "gumbel"])
def test_cut_monitor_and_explicit_off_train_exactly_as_the_default(rule: str, tmp_path: Path) -> None:
    default = metrics(tmp_path / "default", rule)
    off = metrics(tmp_path / "off", rule, self_monitor="off", plasticity=False, topdown_iterations=0,
                  lesions=[])
    cut = metrics(tmp_path / "cut", rule, self_monitor="select", lesions=["cut_monitor"])
    selecting = metrics(tmp_path / "select", rule, self_monitor="select")
    pd.testing.assert_frame_equal(default, off)
    pd.testing.assert_frame_equal(default, cut)
    assert not default.equals(selecting)


# ---------------------------------------------------------------------------- plasticity


def plain_twin(plastic: PlasticRNN) -> nn.RNN:
    rnn = nn.RNN(plastic.weight_ih.shape[1], plastic.hidden_size, batch_first=True)
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(plastic.weight_ih)
        rnn.weight_hh_l0.copy_(plastic.weight_hh)
        rnn.bias_ih_l0.copy_(plastic.bias_ih)
        rnn.bias_hh_l0.copy_(plastic.bias_hh)
    return rnn


def run_plastic(plastic: PlasticRNN, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return plastic_rnn(x, one_group(plastic, "rnn."), "rnn", 1)


def test_plastic_rnn_with_zero_alpha_is_a_plain_tanh_rnn() -> None:
    torch.manual_seed(0)
    plastic = PlasticRNN(8, 16, alpha=0.0, eta=0.5)
    x = torch.randn(32, 5, 8)
    states, hebb = run_plastic(plastic, x)
    expected, _ = plain_twin(plastic)(x)
    # the grouped matmuls (bmm) round differently from nn.RNN's kernel in the last bits
    torch.testing.assert_close(states, expected, rtol=0, atol=1e-6)
    assert hebb[:, -1].abs().sum() > 0  # the trace still runs; alpha=0 only ignores it


def test_fast_weights_change_within_an_episode_and_act_from_the_third_step() -> None:
    torch.manual_seed(0)
    plastic = PlasticRNN(8, 16, alpha=0.5, eta=0.3)
    x = torch.randn(4, 4, 8)
    states, hebb = run_plastic(plastic, x)
    # Hebb_1 = eta * h_0^T h_1 with h_0 = 0; from then on each step changes the trace.
    assert hebb[:, 0].abs().max() == 0
    for t in range(1, 4):
        assert not torch.allclose(hebb[:, t], hebb[:, t - 1])
    plain, _ = plain_twin(plastic)(x)
    # Steps 1 and 2 read Hebb_0 and Hebb_1 (both zero); step 3 reads a non-zero trace.
    torch.testing.assert_close(states[:, :2], plain[:, :2], rtol=0, atol=1e-6)
    assert not torch.allclose(states[:, 2:], plain[:, 2:])
    states.sum().backward()
    assert plastic.alpha.grad.abs().sum() > 0 and plastic.eta_logit.grad.abs() > 0


def test_plasticity_switch_puts_a_plastic_rnn_in_comprehension() -> None:
    agent = make_agent(plasticity=True, plasticity_alpha=0.2, plasticity_eta=0.4)
    assert isinstance(agent.comprehension.rnn, PlasticRNN)
    assert torch.all(agent.comprehension.rnn.alpha == 0.2)
    message = torch.nn.functional.one_hot(torch.tensor([[1, 2, 0]]), CHANNEL.vocab_size).float()
    assert agent.comprehend(message).shape == (1, 3, 16)


# ---------------------------------------------------------------------------- top-down feedback


def test_topdown_feedback_starts_as_feed_forward_and_learns() -> None:
    topdown = make_agent(topdown_iterations=3)
    plain = make_agent()
    plain.load_state_dict({k: v for k, v in topdown.state_dict().items() if "feedback" not in k})
    obs = torch.randn(5, GAME.spec.obs_dim)
    # zero feedback: the same function at the start
    assert torch.equal(topdown.perceive(obs), plain.perceive(obs))
    topdown.perceive(obs).pow(2).sum().backward()
    assert topdown.perception.feedback_weight.grad.abs().sum() > 0
    with torch.no_grad():
        topdown.perception.feedback_weight.normal_()
    assert not torch.allclose(topdown.perceive(obs), plain.perceive(obs))


# ---------------------------------------------------------------------------- self-monitoring


@dataclass(frozen=True)
class RecordingMonitor(SelfMonitor):
    calls: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = field(default_factory=list)

    def choose(self, agent: Any, meaning: torch.Tensor, messages: torch.Tensor,
               lengths: torch.Tensor) -> torch.Tensor:
        pick = super().choose(agent, meaning, messages, lengths)
        self.calls.append((messages.detach(), lengths, pick))
        return pick


@pytest.mark.parametrize("rule_cls", RULES)
@pytest.mark.parametrize("train", [True, False])
def test_select_keeps_the_candidate_the_speaker_understands_best(rule_cls: type, train: bool) -> None:
    agent, rule, obs = make_agent(), rule_cls(), speaker_obs(games())
    gen = torch.Generator().manual_seed(0)
    greedy = rule.speak(agent, obs, CHANNEL, gen, train=False).tokens
    agent.monitor = RecordingMonitor(samples=5)
    with torch.set_grad_enabled(train):
        utt = rule.speak(agent, obs, CHANNEL, gen, train=train)
    (messages, lengths, pick), = agent.monitor.calls
    b = torch.arange(len(obs))
    chosen = messages[b, pick].argmax(-1)
    assert torch.equal(chosen * (torch.arange(3) < utt.lengths[:, None]), utt.tokens)
    with torch.no_grad():
        meaning = agent.perceive(obs)
        understood = understood_at_end(agent, messages.flatten(0, 1), lengths.flatten())
        scores = torch.einsum("bkh,bh->bk", understood.view(len(obs), 5, -1), meaning)
    assert torch.equal(scores[b, pick], scores.max(-1).values)
    if not train:  # the greedy message is always a candidate
        first = messages[:, 0].argmax(-1) * (torch.arange(3) < lengths[:, :1])
        assert torch.equal(first, greedy)


def speaker_grads(agent: NeuroAIAgent, rule: Any) -> dict[str, float]:
    """Speak once and learn from null feedback: only the self-monitor can make gradient."""
    utt = rule.speak(agent, speaker_obs(games()), CHANNEL, torch.Generator().manual_seed(0))
    null = Feedback(0.0, message_grad=torch.zeros_like(utt.wire)) if isinstance(rule, GumbelSoftmax) \
        else Feedback(0.0, reward=torch.zeros(16))
    rule.learn(agent, utt.kept, [null], [{}])
    return {name: sum(float(p.grad.abs().sum()) for p in getattr(agent, name).parameters()
                      if p.grad is not None)
            for name in ("perception", "production", "comprehension")}


@pytest.mark.parametrize("rule", [Reinforce(Reinforce.Params(entropy_coeff=0.0)), GumbelSoftmax()],
                         ids=["reinforce", "gumbel"])
def test_self_monitor_loss_trains_comprehension_and_production_while_speaking(rule: Any) -> None:
    silent = speaker_grads(make_agent(), rule)
    assert silent["comprehension"] == silent["production"] == 0
    monitored = speaker_grads(make_agent(self_monitor="loss", monitor_weight=1.0), rule)
    assert monitored["comprehension"] > 0 and monitored["production"] > 0


# ---------------------------------------------------------------------------- lesions


def train_pair(agents: list[NeuroAIAgent], rule: Any, rounds: int = 3) -> None:
    """The shard's round in miniature: speak, listen, learn on both edges, one step each."""
    opts = [torch.optim.Adam(a.parameters(), lr=0.01) for a in agents]
    gen = torch.Generator().manual_seed(0)
    for r in range(rounds):
        for s, listener in ((0, 1), (1, 0)):
            batch = games(r)
            utt = rule.speak(agents[s], speaker_obs(batch), CHANNEL, gen)
            heard = rule.listen(agents[listener], GAME, utt.wire, batch, CHANNEL.vocab_size, groups=1)
            rule.learn(agents[s], utt.kept, heard.feedback, [{}])
        for opt in opts:
            opt.step()
            opt.zero_grad()


FROZEN = {"freeze_perception": ["perception"], "freeze_production": ["production"],
          "freeze_comprehension": ["comprehension", "readout"]}


@pytest.mark.parametrize("rule_cls", RULES)
@pytest.mark.parametrize("lesions", [["freeze_perception"], ["freeze_production"],
                                     ["freeze_comprehension"], list(FROZEN)])
def test_frozen_modules_stay_bit_identical(rule_cls: type, lesions: list[str]) -> None:
    agents = [make_agent(seed, lesions=lesions, self_monitor="loss") for seed in (0, 1)]
    before = [{k: v.clone() for k, v in a.state_dict().items()} for a in agents]
    train_pair(agents, rule_cls())
    frozen = tuple(f"{m}." for lesion in lesions for m in FROZEN[lesion])
    for agent, start in zip(agents, before):
        for name, value in agent.state_dict().items():
            if name.startswith(frozen):
                assert torch.equal(value, start[name]), name
            elif name.startswith(("perception.", "production.", "comprehension.")):
                assert not torch.equal(value, start[name]), name
        assert all(p.grad is None for p in agent.parameters() if not p.requires_grad)


# ---------------------------------------------------------------------------- configs


@pytest.mark.parametrize("bad", [
    {"self_monitor": "sometimes"}, {"lesions": ["freeze_everything"]},
    {"self_monitor": "select", "monitor_samples": 1}, {"self_monitor": "loss", "monitor_weight": 0},
    {"plasticity_eta": 1.5}, {"plasticity_eta": 0.0}, {"topdown_iterations": 1, "perception_layers": []},
    {"topdown_iterations": -1}, {"lesions": ["cut_monitor", "cut_monitor"]},
])
def test_bad_mechanism_params_name_the_field(bad: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as err:
        from_mapping(NeuroAIAgent.Params, bad, "population.agent.params")
    assert "population.agent.params." in str(err.value)


ABLATIONS = sorted((REPO / "configs" / "ablations").glob("*.yaml"))


def test_every_mechanism_has_an_ablation_config() -> None:
    switched = set()
    for path in ABLATIONS:
        params = load_config(path).population.agent.params
        switched |= {k for k in ("self_monitor", "plasticity", "topdown_iterations") if params.get(k)}
        switched |= set(params.get("lesions", ()))
    assert switched >= {"self_monitor", "plasticity", "topdown_iterations", "cut_monitor", *FROZEN}


@pytest.mark.parametrize("path", ABLATIONS, ids=lambda p: p.stem)
def test_ablation_config_runs(path: Path, tmp_path: Path) -> None:
    overrides = ["runtime.backend=local", f"logging.dir={tmp_path}", "logging.progress=false",
                 "training.rounds=2", "training.batch_size=16", "logging.eval_games=16"]
    result = run(load_config(path, overrides))
    assert result.status == "finished"
