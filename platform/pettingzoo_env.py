"""A PettingZoo ``ParallelEnv`` over a population's graph and a game, for agents of your own.

The config (topology, population channel, scenario) is a normal neurocomm config; the
scenario is found by name through the registry, as the runner finds it. One PettingZoo agent
per node (``agent_0`` ... ``agent_{N-1}``). Play alternates two kinds of step:

* **speak**: the graph's directed edges are paired off at random (weighted by edge weight; each
  agent in at most one game); each speaker sees its object and its ``message`` action is sent;
* **listen**: each listener sees the message (and, in the referential game, the candidates)
  and its ``choice`` action is scored; speaker and listener both get the scenario's reward.

Agents without a game in a step have role 0 and their actions are ignored. An episode is
``turns`` games per agent at most (``2 * turns`` steps); then every agent is truncated.

With ``record=True`` every episode is one round of a neurocomm run directory (docs/logs.md):
one metrics row per directed edge that played, the games in ``messages/``, written through
the platform's own RunDir and ChunkedTable, so ``neurocomm analyze`` reads it.
"""

from __future__ import annotations

import functools
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

try:
    from gymnasium import spaces
    from pettingzoo import ParallelEnv
except ImportError as err:  # an optional extra
    raise ImportError(f"the PettingZoo env needs the pettingzoo extra: pip install 'neurocomm[pettingzoo]' "
                      f"({err})") from err

from neurocomm.platform import seeding
from neurocomm.platform.building import build_scenario
from neurocomm.platform.config import RunConfig, load_config
from neurocomm.platform.errors import ConfigError
from neurocomm.platform.interfaces import EOS, Batch
from neurocomm.platform.metrics import EdgeStats, LoggedGame
from neurocomm.platform.rundir import MESSAGES_SCHEMA, METRICS_SCHEMA, ChunkedTable, RunDir
from neurocomm.platform.runner import metric_rows, prepare
from neurocomm.platform.shard import ShardReport
from neurocomm.platform.standalone import is_standalone
from neurocomm.platform.topology import Topology

IDLE, SPEAK, LISTEN = 0, 1, 2
Edge = tuple[int, int]


def spoken(symbols: Sequence[int]) -> list[int]:
    """The message as logged: the symbols up to and including the first end-of-message."""
    out: list[int] = []
    for s in symbols:
        out.append(int(s))
        if s == EOS:
            break
    return out


class GameRecorder:
    """Writes the env's games as a run directory: one round per episode."""

    def __init__(self, cfg: RunConfig, topology: Topology) -> None:
        self.cfg = cfg
        self.run_dir = RunDir.create(cfg)
        topology.save(self.run_dir.path / "topology.json")
        self.metrics = ChunkedTable(self.run_dir.metrics_dir, METRICS_SCHEMA)
        self.messages = ChunkedTable(self.run_dir.messages_dir, MESSAGES_SCHEMA)
        self.run_dir.event("started", backend="pettingzoo", start_round=0, n_agents=topology.n)
        self.run_dir.update_status(status="running", backend="pettingzoo", n_agents=topology.n)
        self.round = 0
        self.started = time.monotonic()
        self._games: dict[Edge, list[LoggedGame]] = defaultdict(list)

    def game(self, edge: Edge, target: np.ndarray, message: list[int], choice: int,
             target_index: int, success: bool) -> None:
        games = self._games[edge]
        games.append(LoggedGame(self.round, edge[0], edge[1], len(games), [int(v) for v in target],
                                message, len(message), choice, target_index, success))

    def end_round(self) -> None:
        """The episode's games as one round (nothing when no game was played)."""
        if not self._games:
            return
        every, per_edge = self.cfg.logging.messages_every, self.cfg.logging.messages_per_edge
        stats = {
            edge: EdgeStats(games=len(g), success=float(np.mean([x.success for x in g])),
                            msg_length=float(np.mean([x.length for x in g])))
            for edge, g in self._games.items()
        }
        self.metrics.extend(metric_rows(self.round, ShardReport(stats, []), time.monotonic() - self.started))
        if every > 0 and self.round % every == 0:
            for _, games in sorted(self._games.items()):
                self.messages.extend([game.as_dict() for game in games[:per_edge]])
        self._games.clear()
        self.round += 1
        if self.round % self.cfg.logging.chunk_rounds == 0:
            self._flush()

    def _flush(self) -> None:
        self.metrics.flush()
        self.messages.flush()
        self.run_dir.update_status(rounds_done=self.round)

    def close(self) -> None:
        self.end_round()
        self._flush()
        self.run_dir.update_status(status="finished", rounds_done=self.round, rounds_planned=self.round)
        self.run_dir.event("finished", rounds_done=self.round)


class CommunicationEnv(ParallelEnv):
    """See the module docstring. Build with ``CommunicationEnv(cfg)`` or ``from_config(path)``."""

    metadata = {"name": "neurocomm_communication_v0", "render_modes": [], "is_parallelizable": True}

    def __init__(self, cfg: RunConfig, *, turns: int = 16, record: bool = False) -> None:
        if is_standalone(cfg):
            raise ConfigError(f"{cfg.scenario.name!r} is not played by speaking agents; "
                              "use referential or reconstruction", path="scenario.name")
        if turns < 1:
            raise ValueError("turns must be >= 1")
        self.cfg, self.turns = cfg, turns
        self.topology = prepare(cfg)
        self.scenario = build_scenario(cfg)
        n, pop = self.topology.n, cfg.population
        self.possible_agents = [f"agent_{i}" for i in range(n)]
        self.agents: list[str] = []
        probe = self.scenario.sample(np.random.default_rng(0), 1)
        self._referential = "candidates" in probe.extra
        spec = self.scenario.spec
        obs_dim = int(probe.speaker_obs.shape[1])
        obs: dict[str, spaces.Space] = {
            "role": spaces.Discrete(3),
            "object": spaces.Box(0.0, np.inf, (obs_dim,), np.float32),
            "message": spaces.MultiDiscrete([pop.vocab_size] * pop.max_len),
        }
        if self._referential:
            n_cand = int(probe.extra["candidates"].shape[1])
            obs["candidates"] = spaces.Box(0.0, np.inf, (n_cand, obs_dim), np.float32)
            choice: spaces.Space = spaces.Discrete(n_cand)
        else:
            choice = spaces.MultiDiscrete([spec.n_values] * spec.n_attributes)
        self._obs_space = spaces.Dict(obs)
        self._action_space = spaces.Dict(
            {"message": spaces.MultiDiscrete([pop.vocab_size] * pop.max_len), "choice": choice}
        )
        self.recorder = GameRecorder(cfg, self.topology) if record else None
        self.run_dir: Path | None = self.recorder.run_dir.path if self.recorder else None
        self.episode = -1
        self._rng = seeding.rng(cfg.seed, seeding.GAMES)
        self._games: list[tuple[Edge, Batch]] = []
        self._sent: dict[Edge, list[int]] = {}
        self._turn = 0

    @classmethod
    def from_config(cls, path: str | Path, overrides: Sequence[str] = (), **kwargs: Any) -> CommunicationEnv:
        return cls(load_config(path, overrides), **kwargs)

    @functools.cache  # noqa: B019 - PettingZoo wants the same object back
    def observation_space(self, agent: str) -> spaces.Space:
        return self._obs_space

    @functools.cache  # noqa: B019
    def action_space(self, agent: str) -> spaces.Space:
        return self._action_space

    # ------------------------------------------------------------------ the game

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[dict[str, Any], dict[str, Any]]:
        if self.recorder is not None:
            self.recorder.end_round()  # an episode cut short by reset still counts
        self.episode += 1
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self.agents = list(self.possible_agents)
        self._turn = 0
        return self._speak_step()

    def _pair_off(self) -> list[Edge]:
        edges, weights = self.topology.talk_edges(self.episode)
        order = self._rng.choice(len(edges), size=len(edges), replace=False, p=weights / weights.sum())
        busy: set[int] = set()
        games = []
        for i in order:
            s, listener = edges[i]
            if s not in busy and listener not in busy:
                games.append((int(s), int(listener)))
                busy.update((s, listener))
        return sorted(games)

    def _blank(self) -> dict[str, Any]:
        return {k: np.zeros(space.shape, space.dtype) for k, space in self._obs_space.spaces.items()}

    def _speak_step(self) -> tuple[dict[str, Any], dict[str, Any]]:
        self._games = [(edge, self.scenario.sample(self._rng, 1)) for edge in self._pair_off()]
        obs = {a: self._blank() for a in self.agents}
        infos: dict[str, dict[str, Any]] = {a: {"role": IDLE} for a in self.agents}
        for (speaker, listener), batch in self._games:
            mine = obs[f"agent_{speaker}"]
            mine["role"] = SPEAK
            mine["object"] = batch.speaker_obs[0].astype(np.float32)
            infos[f"agent_{speaker}"] = {"role": SPEAK, "partner": listener}
        self._phase = SPEAK
        return obs, infos

    def _listen_step(self, actions: dict[str, Any]) -> dict[str, Any]:
        obs = {a: self._blank() for a in self.agents}
        self._sent = {}
        for edge, batch in self._games:
            message = spoken(np.asarray(actions[f"agent_{edge[0]}"]["message"]))
            self._sent[edge] = message
            theirs = obs[f"agent_{edge[1]}"]
            theirs["role"] = LISTEN
            theirs["message"][: len(message)] = message
            if self._referential:
                view = getattr(self.scenario, "listener_view", None)
                cand = batch.extra["candidates"][0]
                theirs["candidates"] = (view(cand) if view else cand).astype(np.float32)
        return obs

    def _score(self, batch: Batch, answer: Any) -> tuple[float, bool, int, int]:
        """(reward, success, choice as logged, target index) of one game."""
        if self._referential:
            label = int(batch.extra["label"][0])
            ok = int(answer) == label
            return float(ok), ok, int(answer), label
        correct = np.asarray(answer) == batch.target[0]
        return float(correct.mean()), bool(correct.all()), -1, -1

    def step(self, actions: dict[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        """Speak step → listeners' observations; listen step → rewards, then the next pairs.

        ``infos[agent]``: ``role`` (and ``partner``) for the agent's next action; after a listen
        step also ``success`` for the agents whose game just ended.
        """
        rewards = {a: 0.0 for a in self.agents}
        done = False
        if self._phase == SPEAK:
            obs = self._listen_step(actions)
            infos: dict[str, dict[str, Any]] = {a: {"role": IDLE} for a in self.agents}
            for (speaker, listener), _ in self._games:
                infos[f"agent_{listener}"] = {"role": LISTEN, "partner": speaker}
            self._phase = LISTEN
        else:
            outcome: dict[str, bool] = {}
            for edge, batch in self._games:
                reward, ok, choice, index = self._score(batch, actions[f"agent_{edge[1]}"]["choice"])
                for agent_id in edge:
                    rewards[f"agent_{agent_id}"] = reward
                    outcome[f"agent_{agent_id}"] = ok
                if self.recorder is not None:
                    self.recorder.game(edge, batch.target[0], self._sent[edge], choice, index, ok)
            self._turn += 1
            done = self._turn >= self.turns
            if done:
                obs = {a: self._blank() for a in self.agents}
                infos = {a: {"role": IDLE} for a in self.agents}
                if self.recorder is not None:
                    self.recorder.end_round()
            else:
                obs, infos = self._speak_step()
            for agent, ok in outcome.items():
                infos[agent] = {**infos[agent], "success": ok}
        terminations = {a: False for a in self.agents}
        truncations = {a: done for a in self.agents}
        if done:
            self.agents = []
        return obs, rewards, terminations, truncations, infos

    def close(self) -> None:
        if self.recorder is not None:
            self.recorder.close()
            self.recorder = None

