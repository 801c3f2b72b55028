"""Rule options that the replications rely on: EGG's dense REINFORCE reward and fixed-length
messages."""

from __future__ import annotations

import torch

from neurocomm.agents.neuroai import NeuroAIAgent
from neurocomm.agents.rules import GumbelSoftmax, Reinforce
from neurocomm.platform.interfaces import EOS, ChannelSpec
from neurocomm.platform.seeding import rng
from neurocomm.scenarios.reconstruction import ReconstructionGame

CHANNEL = ChannelSpec(vocab_size=6, max_len=4)


def _pair() -> tuple[NeuroAIAgent, ReconstructionGame]:
    game = ReconstructionGame(ReconstructionGame.Params(n_attributes=2, n_values=5))
    torch.manual_seed(0)
    agent = NeuroAIAgent(NeuroAIAgent.Params(hidden_size=16, embed_size=8), game=game.spec,
                         channel=CHANNEL)
    return agent, game


def test_fixed_length_messages_never_end_early() -> None:
    agent, game = _pair()
    batch = game.sample(rng(0, 1), 256)
    obs = torch.from_numpy(batch.speaker_obs)
    for rule in (Reinforce(Reinforce.Params(fixed_length=True)),
                 GumbelSoftmax(GumbelSoftmax.Params(fixed_length=True))):
        for train in (True, False):
            utt = rule.speak(agent, obs, CHANNEL, torch.Generator().manual_seed(1), train=train)
            assert not (utt.tokens == EOS).any()
            assert (utt.lengths == CHANNEL.max_len).all()
    # without the option an untrained speaker ends some messages early
    utt = Reinforce().speak(agent, obs, CHANNEL, torch.Generator().manual_seed(1))
    assert (utt.lengths < CHANNEL.max_len).any()


def test_neg_loss_reward_is_the_listeners_negative_loss() -> None:
    agent, game = _pair()
    batch = game.sample(rng(0, 2), 64)
    obs = torch.from_numpy(batch.speaker_obs)
    told = {}
    for reward in ("decision", "neg_loss"):
        rule = Reinforce(Reinforce.Params(reward=reward))
        utt = rule.speak(agent, obs, CHANNEL, torch.Generator().manual_seed(3))
        heard = rule.listen(agent, game, utt.wire, batch, CHANNEL.vocab_size, groups=1)
        agent.zero_grad()
        told[reward] = (heard.feedback[0].reward, heard.decision)
    fb, decision = told["neg_loss"]
    assert torch.allclose(fb, -decision.loss[:, 0].detach())
    fb, decision = told["decision"]
    assert torch.allclose(fb, decision.reward[:, 0])
    # the fraction of attributes right takes 3 values here; the negative loss is dense
    assert len(set(told["decision"][0].tolist())) <= 3
    assert len(set(told["neg_loss"][0].tolist())) > 30
