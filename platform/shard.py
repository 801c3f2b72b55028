"""A shard hosts one or more agents and plays their part of each round.

A round has three phases, each one call per shard (so Ray sees a few well-filled calls, never
one per game):

1. ``produce``: every speaker encodes a batch of targets for each of its out-edges;
2. ``listen``: every listener comprehends each incoming message, decides, back-propagates its
   loss, and sends feedback (reward or message gradient) back to the speaker;
3. ``learn``: every speaker back-propagates the feedback; each agent takes one optimiser step
   with the gradients of both roles.

No parameter changes between ``produce`` and ``learn``, so the speaker's graph stays valid,
and every agent computes the same things in the same order whatever the sharding: the local and
the Ray backend give the same numbers.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from typing import Any

import torch

from neurocomm.platform import channel as noisy_channel
from neurocomm.platform import registry, seeding
from neurocomm.platform.config import AgentSpec, RunConfig
from neurocomm.platform.interfaces import Batch, ChannelSpec
from neurocomm.platform.typed import from_mapping

Edge = tuple[int, int]


@dataclass
class AgentSlot:
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    generator: torch.Generator
    spec: AgentSpec
    rule_state: dict[str, Any] = field(default_factory=dict)
    generation: int = 0  # how many times this node's agent was replaced by a newcomer


@dataclass
class ShardReport:
    """What a shard tells the driver at the end of a round (small: numbers and logged games)."""

    edge_stats: dict[Edge, dict[str, float]]
    messages: list[dict[str, Any]]


def build_scenario(cfg: RunConfig) -> Any:
    cls = registry.resolve("scenarios", cfg.scenario.name)
    return cls(from_mapping(cls.Params, dict(cfg.scenario.params), "scenario.params"))


def build_rule(cfg: RunConfig) -> Any:
    cls = registry.resolve("rules", cfg.training.rule)
    return cls(from_mapping(cls.Params, dict(cfg.training.rule_params), "training.rule_params"))


def build_agent(cfg: RunConfig, agent_id: int, scenario: Any, channel: ChannelSpec,
                generation: int = 0) -> AgentSlot:
    """Agent ``agent_id`` with its own weights, optimiser and sampling generator, from the seed
    (a newcomer replacing it after turnover is generation 1, 2, ...)."""
    spec = cfg.population.spec_for(agent_id)
    cls = registry.resolve("models", spec.model)
    params = from_mapping(cls.Params, dict(spec.params), "population.agent.params")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seeding.int_seed(cfg.seed, seeding.AGENT, agent_id, *_gen_key(generation)))
        model = cls(params, game=scenario.spec, channel=channel)
    opt_cls = torch.optim.Adam if cfg.training.optimizer == "adam" else torch.optim.SGD
    optimizer = opt_cls(model.parameters(), lr=spec.lr)
    generator = seeding.torch_generator(cfg.seed, seeding.AGENT, agent_id, 1, *_gen_key(generation))
    return AgentSlot(model, optimizer, generator, spec, generation=generation)


def _gen_key(generation: int) -> tuple[int, ...]:
    # generation 0 keeps the original key, so runs without turnover are unchanged
    return (generation,) if generation else ()


def game_batch(cfg: RunConfig, scenario: Any, round_: int, edge: Edge) -> Batch:
    """The games of ``edge`` at ``round_``: rebuilt identically by speaker and listener."""
    rng = seeding.rng(cfg.seed, seeding.GAMES, round_, edge[0], edge[1])
    return scenario.sample(rng, cfg.training.batch_size, "train")


class AgentShard:
    """Agents ``agent_ids`` of the population; used in-process or as a Ray actor."""

    def __init__(self, cfg: RunConfig, agent_ids: list[int]) -> None:
        torch.set_num_threads(1)
        self.cfg = cfg
        self.channel = ChannelSpec(cfg.population.vocab_size, cfg.population.max_len)
        self.scenario = build_scenario(cfg)
        self.rule = build_rule(cfg)
        self.agents: dict[int, AgentSlot] = {
            i: build_agent(cfg, i, self.scenario, self.channel) for i in agent_ids
        }
        self._kept: dict[Edge, Any] = {}
        self._stats: dict[Edge, dict[str, float]] = {}
        self._messages: list[dict[str, Any]] = []

    # ------------------------------------------------------------------ the three phases

    def produce(self, round_: int, plan: list[list[Edge]]) -> Any:
        """Messages for each group of out-edges in ``plan`` (one group per listener shard)."""
        out: list[dict[Edge, Any]] = []
        for group in plan:
            wires: dict[Edge, Any] = {}
            for edge in group:
                slot = self.agents[edge[0]]
                batch = game_batch(self.cfg, self.scenario, round_, edge)
                obs = torch.from_numpy(batch.speaker_obs)
                utt = self.rule.speak(slot.model, obs, self.channel, slot.generator, train=True)
                self._kept[edge] = utt.kept
                self._stats.setdefault(edge, {}).update(
                    entropy=float(utt.entropy.mean()), msg_length=float(utt.lengths.float().mean())
                )
                wires[edge] = (utt.wire, self._greedy_tokens(round_, edge, slot))
            out.append(wires)
        return out[0] if len(out) == 1 else tuple(out)

    def listen(self, round_: int, plan: list[list[Edge]], *incoming: dict[Edge, Any]) -> Any:
        """Feedback for each group of in-edges in ``plan`` (one group per speaker shard)."""
        wires: dict[Edge, Any] = {}
        for part in incoming:
            wires.update(part)
        log_games = self._log_games(round_)
        out: list[dict[Edge, Any]] = []
        for group in plan:
            feedback: dict[Edge, Any] = {}
            for edge in group:
                slot = self.agents[edge[1]]
                batch = game_batch(self.cfg, self.scenario, round_, edge)
                sent, greedy = wires[edge]
                wire, corruption = self._transmit(round_, edge, sent)
                loss, fb, decision, lengths = self.rule.listen(
                    slot.model, self.scenario, wire, batch, self.channel.vocab_size
                )
                if corruption is not None and isinstance(fb, tuple) and torch.is_tensor(fb[0]) \
                        and fb[0].shape == sent.shape:
                    fb = (noisy_channel.backmap(fb[0], corruption), *fb[1:])
                stats = self._stats.setdefault(edge, {})
                for split, tokens in (greedy or {}).items():
                    stats[f"{split}_success"] = self._evaluate(edge, slot, tokens, split)
                feedback[edge] = fb
                success = decision.success[:, 0]
                self._stats.setdefault(edge, {}).update(
                    success=float(success.mean()), listener_loss=loss, games=float(len(batch))
                )
                if log_games:
                    self._log(round_, edge, wire, lengths, batch, decision, log_games)
            out.append(feedback)
        return out[0] if len(out) == 1 else tuple(out)

    def learn(self, round_: int, *feedback: dict[Edge, Any]) -> ShardReport:
        merged: dict[Edge, Any] = {}
        for part in feedback:
            merged.update(part)
        for edge in sorted(merged):
            slot = self.agents[edge[0]]
            loss = self.rule.learn(slot.model, self._kept.pop(edge), merged[edge], slot.rule_state)
            self._stats.setdefault(edge, {})["speaker_loss"] = loss
        for agent_id, slot in self.agents.items():
            if self._updates(round_, agent_id, slot):
                slot.optimizer.step()
            slot.optimizer.zero_grad(set_to_none=True)
        report = ShardReport(self._stats, self._messages)
        self._stats, self._messages = {}, []
        self._kept.clear()
        return report

    def _updates(self, round_: int, agent_id: int, slot: AgentSlot) -> bool:
        p = slot.spec.update_prob
        if p >= 1.0:
            return True
        return bool(seeding.rng(self.cfg.seed, seeding.UPDATE, round_, agent_id).random() < p)

    def replace_agents(self, generations: dict[int, int]) -> None:
        """Turnover: these agents are replaced by naive newcomers (fresh weights and optimiser)."""
        for agent_id, generation in generations.items():
            self.agents[agent_id] = build_agent(self.cfg, agent_id, self.scenario, self.channel, generation)

    # ------------------------------------------------------------------ evaluation

    def _eval_splits(self) -> tuple[str, ...]:
        splits = getattr(self.scenario, "splits", ("train", "eval"))
        return ("eval", "heldout") if "heldout" in splits else ("eval",)

    def _eval_batch(self, edge: Edge, split: str) -> Batch:
        """A fixed evaluation set per edge and split (the same every round), never trained on."""
        key = self._eval_splits().index(split)
        rng = seeding.rng(self.cfg.seed, seeding.EVAL, edge[0], edge[1], *((key,) if key else ()))
        return self.scenario.sample(rng, self.cfg.logging.eval_games, split)

    def _greedy_tokens(self, round_: int, edge: Edge, slot: AgentSlot) -> dict[str, torch.Tensor] | None:
        every = self.cfg.logging.eval_every
        if every <= 0 or not (round_ % every == 0 or round_ == self.cfg.training.rounds - 1):
            return None
        out = {}
        with torch.no_grad():
            for split in self._eval_splits():
                obs = torch.from_numpy(self._eval_batch(edge, split).speaker_obs)
                utt = self.rule.speak(slot.model, obs, self.channel, slot.generator, train=False)
                out[split] = utt.tokens
        return out

    def _evaluate(self, edge: Edge, slot: AgentSlot, tokens: torch.Tensor, split: str) -> float:
        decision = self.rule.evaluate(slot.model, self.scenario, tokens, self._eval_batch(edge, split),
                                      self.channel.vocab_size)
        return float(decision.success[:, 0].mean())

    def _transmit(self, round_: int, edge: Edge, wire: torch.Tensor) -> tuple[torch.Tensor, Any]:
        sub_p, del_p = self.cfg.topology.noise.for_edge(*edge)
        if sub_p <= 0 and del_p <= 0:
            return wire, None
        rng = seeding.rng(self.cfg.seed, seeding.NOISE, round_, edge[0], edge[1])
        return noisy_channel.transmit(wire, self.channel.vocab_size, sub_p, del_p, rng)

    # ------------------------------------------------------------------ logging

    def _log_games(self, round_: int) -> int:
        every, per_edge = self.cfg.logging.messages_every, self.cfg.logging.messages_per_edge
        if every <= 0 or per_edge <= 0:
            return 0
        last = self.cfg.training.rounds - 1
        return per_edge if (round_ % every == 0 or round_ == last) else 0

    def _log(
        self, round_: int, edge: Edge, wire: torch.Tensor, lengths: torch.Tensor, batch: Batch,
        decision: Any, k: int,
    ) -> None:
        tokens = (wire.argmax(-1) if wire.is_floating_point() else wire)[:k].tolist()
        lens = lengths[:k].tolist()
        choice = decision.choice[:k, 0].tolist()
        success = decision.success[:k, 0].tolist()
        label = batch.extra.get("label")
        for g in range(min(k, len(batch))):
            self._messages.append(
                {
                    "round": round_,
                    "speaker": edge[0],
                    "listener": edge[1],
                    "game": g,
                    "target": batch.target[g].tolist(),
                    "message": tokens[g][: lens[g]],
                    "length": lens[g],
                    "choice": int(choice[g]) if not isinstance(choice[g], list) else -1,
                    "target_index": int(label[g]) if label is not None else -1,
                    "success": bool(success[g] > 0.5),
                }
            )

    # ------------------------------------------------------------------ state

    def get_state(self) -> dict[int, dict[str, Any]]:
        """Everything needed to resume these agents exactly (weights, optimiser, RNG, rule)."""
        return {
            i: {
                "model": slot.model.state_dict(),
                "optimizer": slot.optimizer.state_dict(),
                "generator": slot.generator.get_state(),
                "rule_state": dict(slot.rule_state),
                "generation": slot.generation,
            }
            for i, slot in self.agents.items()
        }

    def set_state(self, state: dict[int, dict[str, Any]]) -> None:
        self._kept.clear()
        self._stats, self._messages = {}, []
        for i, s in state.items():
            if int(s.get("generation", 0)) != self.agents[i].generation:
                self.replace_agents({i: int(s.get("generation", 0))})
            slot = self.agents[i]
            slot.model.load_state_dict(s["model"])
            slot.optimizer.load_state_dict(s["optimizer"])
            slot.generator.set_state(s["generator"])
            slot.rule_state = dict(s["rule_state"])
            slot.optimizer.zero_grad(set_to_none=True)

    def where(self) -> dict[str, Any]:
        """Host, process and Ray node of this shard (for the events log and fault handling)."""
        node = ""
        try:
            import ray

            if ray.is_initialized():
                node = ray.get_runtime_context().get_node_id()
        except ImportError:
            pass
        return {"host": socket.gethostname(), "pid": os.getpid(), "node_id": node,
                "agents": sorted(self.agents)}

    def ping(self) -> bool:
        return True

