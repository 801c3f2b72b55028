"""Your own agents playing a neurocomm game through PettingZoo, logged as a neurocomm run.

Two kinds of agents, neither using neurocomm's model interface, only the PettingZoo API:
``--agents urn`` (default), tabular Roth-Erev learners (urns of weights, reinforced on
success); ``--agents torch``, small plain-PyTorch policies trained with REINFORCE. Their games
land in a normal run directory, so ``neurocomm analyze RUN_DIR`` measures the language they
invented.

    python examples/pettingzoo_agents.py [--agents urn|torch] [--episodes 300]
    neurocomm analyze runs/pettingzoo-tabular__seed0__...
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from torch import nn

from neurocomm.platform.pettingzoo_env import LISTEN, SPEAK, CommunicationEnv

HERE = Path(__file__).resolve().parent


class UrnAgent:
    """Roth-Erev reinforcement: pick in proportion to weights; add 1 to what won."""

    def __init__(self, n_values: int, vocab_size: int, max_len: int, rng: np.random.Generator) -> None:
        self.n_values, self.vocab_size, self.max_len, self.rng = n_values, vocab_size, max_len, rng
        self.speak_urn: dict[tuple[int, ...], np.ndarray] = defaultdict(lambda: np.ones(vocab_size - 1))
        self.listen_urn: dict[tuple[int, ...], dict[tuple[int, ...], float]] = defaultdict(dict)
        self.last: tuple[str, tuple[int, ...], tuple[int, ...]] | None = None

    def objects(self, one_hot: np.ndarray) -> list[tuple[int, ...]]:
        rows = one_hot.reshape(-1, one_hot.shape[-1] // self.n_values, self.n_values)
        return [tuple(int(v) for v in r.argmax(-1)) for r in rows]

    def act(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray | int]:
        message = np.zeros(self.max_len, dtype=np.int64)
        choice = 0
        if obs["role"] == SPEAK:
            (obj,) = self.objects(obs["object"])
            weights = self.speak_urn[obj]
            symbol = 1 + int(self.rng.choice(len(weights), p=weights / weights.sum()))
            message[0] = symbol  # one symbol, then end-of-message
            self.last = ("speak", obj, (symbol,))
        elif obs["role"] == LISTEN:
            heard = tuple(int(s) for s in obs["message"] if s != 0)
            candidates = self.objects(obs["candidates"])
            weights = np.array([self.listen_urn[heard].get(c, 1.0) for c in candidates])
            choice = int(self.rng.choice(len(candidates), p=weights / weights.sum()))
            self.last = ("listen", candidates[choice], heard)
        return {"message": message, "choice": choice}

    def reinforce(self, success: bool) -> None:
        if self.last is None or not success:
            self.last = None
            return
        role, obj, message = self.last
        if role == "speak":
            self.speak_urn[obj][message[0] - 1] += 1.0
        else:
            self.listen_urn[message][obj] = self.listen_urn[message].get(obj, 1.0) + 1.0
        self.last = None


class TorchAgent:
    """A plain PyTorch policy for both roles: one symbol per object (speaking), a score per
    candidate given the symbol (listening); REINFORCE with a running-mean baseline."""

    def __init__(self, obs_dim: int, vocab_size: int, max_len: int, seed: int) -> None:
        torch.manual_seed(seed)
        self.max_len = max_len
        self.speaker = nn.Linear(obs_dim, vocab_size - 1)
        self.symbol = nn.Embedding(vocab_size, 32)
        self.candidate = nn.Linear(obs_dim, 32)
        params = [*self.speaker.parameters(), *self.symbol.parameters(), *self.candidate.parameters()]
        self.optimizer = torch.optim.Adam(params, lr=0.02)
        self.baseline = 0.0
        self.log_prob: torch.Tensor | None = None

    def act(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray | int]:
        message = np.zeros(self.max_len, dtype=np.int64)
        choice = 0
        if obs["role"] == SPEAK:
            logits = self.speaker(torch.as_tensor(obs["object"]))
            dist = torch.distributions.Categorical(logits=logits)
            symbol = dist.sample()
            self.log_prob = dist.log_prob(symbol)
            message[0] = 1 + int(symbol)
        elif obs["role"] == LISTEN:
            heard = self.symbol(torch.as_tensor(int(obs["message"][0])))
            scores = self.candidate(torch.as_tensor(obs["candidates"])) @ heard
            dist = torch.distributions.Categorical(logits=scores)
            pick = dist.sample()
            self.log_prob = dist.log_prob(pick)
            choice = int(pick)
        return {"message": message, "choice": choice}

    def reinforce(self, success: bool) -> None:
        if self.log_prob is None:
            return
        reward = float(success)
        loss = -(reward - self.baseline) * self.log_prob
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self.baseline += 0.05 * (reward - self.baseline)
        self.log_prob = None


def play(config: Path, episodes: int, turns: int, overrides: list[str], kind: str = "urn") -> Path:
    env = CommunicationEnv.from_config(config, overrides, turns=turns, record=True)
    spec, pop = env.scenario.spec, env.cfg.population
    rng = np.random.default_rng(env.cfg.seed)
    obs_dim = env.observation_space(env.possible_agents[0])["object"].shape[0]
    agents: dict[str, UrnAgent | TorchAgent] = {
        a: UrnAgent(spec.n_values, pop.vocab_size, pop.max_len, rng) if kind == "urn"
        else TorchAgent(obs_dim, pop.vocab_size, pop.max_len, env.cfg.seed * 1000 + i)
        for i, a in enumerate(env.possible_agents)
    }
    for episode in range(episodes):
        obs, infos = env.reset(seed=env.cfg.seed * 100_003 + episode)
        while env.agents:
            actions = {a: agents[a].act(obs[a]) for a in env.agents}
            obs, rewards, terminations, truncations, infos = env.step(actions)
            for a, info in infos.items():
                if "success" in info:
                    agents[a].reinforce(info["success"])
    env.close()
    assert env.run_dir is not None
    return env.run_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=HERE / "pettingzoo.yaml")
    parser.add_argument("--agents", choices=["urn", "torch"], default="urn")
    parser.add_argument("--episodes", type=int, default=300, help="episodes (= logged rounds)")
    parser.add_argument("--turns", type=int, default=16, help="games per agent per episode at most")
    parser.add_argument("--set", action="append", default=[], metavar="PATH=VALUE",
                        help="config override, e.g. --set logging.dir=/tmp/runs")
    args = parser.parse_args()
    torch.set_num_threads(1)
    run_dir = play(args.config, args.episodes, args.turns, args.set, args.agents)
    print(f"run directory: {run_dir}")


if __name__ == "__main__":
    main()
