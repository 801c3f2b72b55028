"""A shard hosts one or more agents and plays their part of each round.

A round has three phases, each one call per shard (so Ray sees a few well-filled calls, never
one per game):

1. ``produce``: every speaker encodes a batch of targets for each of its out-edges;
2. ``listen``: every listener comprehends each incoming message, decides, back-propagates its
   loss, and sends feedback (a :class:`Feedback`: reward or message gradient) back to the speaker;
3. ``learn``: every speaker back-propagates the feedback; each agent takes one optimiser step
   with the gradients of both roles.

On evaluation rounds two more calls sit between them, before any optimiser step:
``eval_produce`` (greedy messages on the fixed evaluation sets) after ``produce``, and
``eval_listen`` (the listeners' decisions on them) after ``listen``.

Within a phase the shard computes all the edges of a *cohort* at once: agents whose model
class can stack them (the ``Stackable`` hook of platform/interfaces.py, e.g. neuroai-rnn with
the same parameters) run as one batched model, one group of rows per edge; any other agent runs
alone, with all its edges batched. Sampling noise comes from a generator per (round, edge),
each edge's loss is a mean over its games and the edges' losses are summed, so every agent
computes the same numbers whatever the sharding: local, Ray and sharded runs agree exactly.
For the same reason a large listener cohort can be heard in parts of whole agents, which bounds
a round's peak memory (platform/memory.py).

Every phase takes a plan (a list of edge groups, one per peer shard) and returns a list with
one entry per group.
"""

from __future__ import annotations

import contextlib
import copy
import os
import socket
import sys
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from neurocomm.platform import channel as noisy_channel
from neurocomm.platform import (
    compiling,
    games,
    imitation,
    memory,
    optim_step,
    partial_reset,
    seeding,
)
from neurocomm.platform.building import (
    AgentSlot,
    build_agent,
    build_rule,
    build_scenario,
    load_optimizer_state,
    moved,
    outgoing,
    pick_device,
)
from neurocomm.platform.config import RunConfig
from neurocomm.platform.games import Edge
from neurocomm.platform.interfaces import (
    Batch,
    ChannelSpec,
    Feedback,
    check_row_groups,
    group_rows,
    model_family,
    stacker,
)
from neurocomm.platform.message_log import logged_games
from neurocomm.platform.metrics import EdgeStats, LoggedGame

Plan = list[list[Edge]]


@dataclass
class ShardReport:
    """What a shard tells the driver about a round (small: numbers and logged games)."""

    edge_stats: dict[Edge, EdgeStats] = field(default_factory=dict)
    messages: list[LoggedGame] = field(default_factory=list)


@dataclass
class _Cohort:
    """Edges computed together, the model that computes them and who owns each edge."""

    edges: list[Edge]
    agents: list[int]
    model: Any

    @property
    def groups(self) -> int:
        return len(self.edges)


def _flatten(plan: Plan) -> list[Edge]:
    return [e for group in plan for e in group]


def _merged(parts: tuple[dict[Edge, Any], ...]) -> dict[Edge, Any]:
    out: dict[Edge, Any] = {}
    for part in parts:
        out.update(part)
    return out


class AgentShard:
    """Agents ``agent_ids`` of the population; used in-process or as a Ray actor."""

    def __init__(self, cfg: RunConfig, agent_ids: list[int]) -> None:
        torch.set_num_threads(1)
        self.cfg = cfg
        self.channel = ChannelSpec(cfg.population.vocab_size, cfg.population.max_len)
        self.scenario = build_scenario(cfg)
        self.rule = build_rule(cfg)
        self.device = pick_device(cfg)
        self.agents: dict[int, AgentSlot] = {
            i: build_agent(cfg, i, self.scenario, self.channel, device=self.device) for i in agent_ids
        }
        self._kept: list[tuple[_Cohort, Any]] = []
        self._stats: dict[Edge, EdgeStats] = {}
        self._messages: list[LoggedGame] = []
        # games sampled for speaking, reused when the listener is in this shard too
        self._games: dict[tuple[int, Edge], Batch] = {}

    # ------------------------------------------------------------------ cohorts

    def _cohorts(self, edges: list[Edge], role: int, most_rows: int | None = None) -> list[_Cohort]:
        """Split ``edges`` by the agent in ``role`` (0 speaker, 1 listener) into cohorts (of at
        most ``most_rows`` games, where an agent's own edges allow)."""
        by_agent: dict[int, list[Edge]] = {}
        for edge in sorted(edges):
            by_agent.setdefault(edge[role], []).append(edge)
        families: dict[Any, list[int]] = {}
        for agent_id in sorted(by_agent):
            families.setdefault(model_family(self.agents[agent_id].model), []).append(agent_id)
        cohorts = []
        per_edge = self.cfg.training.batch_size
        for members in memory.parts(families.values(), lambda a: len(by_agent[a]) * per_edge, most_rows):
            stack = stacker(self.agents[members[0]].model)
            family_edges = sorted(e for a in members for e in by_agent[a])
            index = {a: i for i, a in enumerate(members)}
            models = [self.agents[a].model for a in members]
            stacked = stack(models, [index[e[role]] for e in family_edges]) if stack else None
            if stacked is not None:
                cohorts.append(_Cohort(family_edges, [e[role] for e in family_edges],
                                       compiling.compiled(stacked, self.cfg.training.compile)))
                continue
            for a in members:  # one at a time, all of the agent's edges batched
                model = compiling.compiled(self.agents[a].model, self.cfg.training.compile)
                cohorts.append(_Cohort(by_agent[a], [a] * len(by_agent[a]), model))
        return cohorts

    def _batch(self, round_: int, edges: list[Edge], keep: bool = False) -> Batch:
        batches = []
        for edge in edges:
            batch = self._games.pop((round_, edge), None)
            if batch is None:
                batch = games.game_batch(self.cfg, self.scenario, round_, edge)
                if keep and edge[1] in self.agents:
                    self._games[(round_, edge)] = batch
            batches.append(batch)
        return Batch.concat(batches)

    def _stat(self, edge: Edge) -> EdgeStats:
        return self._stats.setdefault(edge, EdgeStats())

    # ------------------------------------------------------------------ the three phases

    def produce(self, round_: int, plan: Plan) -> list[dict[Edge, torch.Tensor]]:
        """Messages for each group of out-edges in ``plan`` (one group per listener shard)."""
        wires: dict[Edge, torch.Tensor] = {}
        edges = _flatten(plan)
        # partitioned training: a speaker learns on its self-play edge only, so its other
        # edges are spoken without a graph (their feedback is never applied)
        learning = [e for e in edges if not self.cfg.training.partitioned or e[0] == e[1]]
        cohorts = [(c, True) for c in self._cohorts(learning, role=0)]
        cohorts += [(c, False) for c in self._cohorts(sorted(set(edges) - set(learning)), role=0)]
        for cohort, learns in cohorts:
            batch = self._batch(round_, cohort.edges, keep=True)
            obs = torch.from_numpy(batch.speaker_obs).to(self.device)
            with contextlib.nullcontext() if learns else torch.no_grad():
                utt = self.rule.speak(cohort.model, obs, self.channel,
                                      games.edge_noise(self.cfg, round_, cohort.edges), train=True)
            if learns:
                self._kept.append((cohort, utt.kept))
            size = check_row_groups(len(obs), cohort.groups)
            for g, edge in enumerate(cohort.edges):
                rows = group_rows(cohort.groups, size, g)
                stat = self._stat(edge)
                stat.entropy = float(utt.entropy[rows].mean())
                stat.msg_length = float(utt.lengths[rows].float().mean())
                wires[edge] = outgoing(utt.wire[rows])
        return [{e: wires[e] for e in group} for group in plan]

    def listen(self, round_: int, plan: Plan,
               *incoming: dict[Edge, torch.Tensor]) -> list[dict[Edge, Feedback]]:
        """Feedback for each group of in-edges in ``plan`` (one group per speaker shard)."""
        wires = _merged(incoming)
        log_games = games.logging_games(self.cfg, round_)
        feedback: dict[Edge, Feedback] = {}
        for cohort in self._cohorts(_flatten(plan), role=1, most_rows=memory.LISTEN_ROWS):
            batch = self._batch(round_, cohort.edges)
            received, corruptions = [], []
            for edge in cohort.edges:
                wire, corruption = self._transmit(round_, edge, wires[edge])
                received.append(wire.to(self.device))
                corruptions.append(corruption)
            heard = self.rule.listen(cohort.model, self.scenario, torch.cat(received), batch,
                                     self.channel.vocab_size, groups=cohort.groups)
            size = check_row_groups(len(batch), cohort.groups)
            for g, edge in enumerate(cohort.edges):
                fb = heard.feedback[g]
                if corruptions[g] is not None and fb.message_grad is not None:
                    # the gradient is with respect to what arrived; the speaker needs it with
                    # respect to what it sent
                    fb = replace(fb, message_grad=noisy_channel.backmap(fb.message_grad, corruptions[g]))
                feedback[edge] = outgoing(fb)
                rows = group_rows(cohort.groups, size, g)
                stat = self._stat(edge)
                stat.success = float(heard.decision.success[rows, 0].mean())
                stat.listener_loss = heard.losses[g]
                stat.games = size
                if log_games:
                    self._messages += logged_games(
                        round_, edge, received[g], heard.lengths[rows], batch.rows(rows),
                        heard.decision.choice[rows], heard.decision.success[rows], log_games)
        return [{e: feedback[e] for e in group} for group in plan]

    def learn(self, round_: int, *feedback: dict[Edge, Feedback]) -> ShardReport:
        merged = _merged(feedback)
        for cohort, kept in self._kept:
            states = [self.agents[e[0]].rule_state for e in cohort.edges]
            items = [moved(merged[e], self.device) for e in cohort.edges]
            losses = self.rule.learn(cohort.model, kept, items, states)
            for edge, loss in zip(cohort.edges, losses):
                self._stat(edge).speaker_loss = loss
        optim_step.step_all([slot.optimizer for slot in self.agents.values()],
                            [self._updates(round_, i, slot) for i, slot in self.agents.items()])
        report = ShardReport(self._stats, self._messages)
        self._stats, self._messages, self._kept = {}, [], []
        self._games.clear()
        return report

    def _updates(self, round_: int, agent_id: int, slot: AgentSlot) -> bool:
        p = slot.spec.update_prob
        if p >= 1.0:
            return True
        return bool(seeding.rng(self.cfg.seed, seeding.UPDATE, round_, agent_id).random() < p)

    def _transmit(self, round_: int, edge: Edge, wire: torch.Tensor) -> tuple[torch.Tensor, Any]:
        sub_p, del_p = self.cfg.topology.noise.for_edge(*edge)
        if sub_p <= 0 and del_p <= 0:
            return wire, None
        rng = seeding.rng(self.cfg.seed, seeding.NOISE, round_, edge[0], edge[1])
        return noisy_channel.transmit(wire, self.channel.vocab_size, sub_p, del_p, rng)

    # ------------------------------------------------------------------ evaluation step

    def eval_produce(self, round_: int, plan: Plan) -> list[dict[Edge, dict[str, torch.Tensor]]]:
        """Greedy token messages on the fixed evaluation set of each split, per out-edge."""
        tokens: dict[Edge, dict[str, torch.Tensor]] = {}
        with torch.no_grad():
            for cohort in self._cohorts(_flatten(plan), role=0):
                for split in games.eval_splits(self.scenario):
                    batch = games.eval_batch(self.cfg, self.scenario, cohort.edges, split)
                    obs = torch.from_numpy(batch.speaker_obs).to(self.device)
                    noise = games.edge_noise(self.cfg, round_, cohort.edges, 1)
                    utt = self.rule.speak(cohort.model, obs, self.channel, noise, train=False)
                    for edge, part in zip(cohort.edges, utt.tokens.chunk(cohort.groups)):
                        tokens.setdefault(edge, {})[split] = outgoing(part)
        return [{e: tokens[e] for e in group} for group in plan]

    def eval_listen(self, round_: int, plan: Plan,
                    *incoming: dict[Edge, dict[str, torch.Tensor]]) -> ShardReport:
        """The listeners' success on the greedy messages, per in-edge and split (no learning)."""
        tokens = _merged(incoming)
        stats: dict[Edge, EdgeStats] = {}
        for cohort in self._cohorts(_flatten(plan), role=1):
            for split in games.eval_splits(self.scenario):
                batch = games.eval_batch(self.cfg, self.scenario, cohort.edges, split)
                sent = torch.cat([tokens[e][split] for e in cohort.edges]).to(self.device)
                decision = self.rule.evaluate(cohort.model, self.scenario, sent, batch,
                                              self.channel.vocab_size)
                for edge, part in zip(cohort.edges, decision.success.chunk(cohort.groups)):
                    stats.setdefault(edge, EdgeStats()).set_eval(split, float(part[:, 0].mean()))
        return ShardReport(stats)

    # ------------------------------------------------------------------ agents and state

    def replace_agents(self, generations: dict[int, int]) -> None:
        """Turnover: these agents are replaced by naive newcomers (fresh weights and optimiser;
        with ``turnover.modules``, fresh in those modules only), who first imitate their
        predecessor when ``turnover.imitation_steps`` > 0."""
        turnover = self.cfg.population.turnover
        for agent_id, generation in generations.items():
            old = self.agents[agent_id]
            new = build_agent(self.cfg, agent_id, self.scenario, self.channel, generation, self.device)
            teacher = old.model
            if turnover.modules:
                if turnover.imitation_steps:
                    teacher = copy.deepcopy(old.model)
                partial_reset.reset_modules(old.model, old.optimizer, new.model, turnover.modules)
                if "production" in turnover.modules:
                    old.rule_state = {}  # the speaker's reward baseline goes with its production
                old.generation = generation
                new = old
            if turnover.imitation_steps:
                imitation.imitate(
                    new.model, new.optimizer, teacher, rule=self.rule, scenario=self.scenario,
                    channel=self.channel, steps=turnover.imitation_steps,
                    batch_size=turnover.imitation_batch or self.cfg.training.batch_size,
                    seed=self.cfg.seed, key=(agent_id, generation), device=self.device,
                )
            self.agents[agent_id] = new

    def get_state(self) -> dict[int, dict[str, Any]]:
        """Everything needed to resume these agents exactly (weights, optimiser, rule state)."""
        return {
            i: {
                "model": outgoing(dict(slot.model.state_dict())),
                "optimizer": outgoing(slot.optimizer.state_dict()),
                "rule_state": dict(slot.rule_state),
                "generation": slot.generation,
            }
            for i, slot in self.agents.items()
        }

    def set_state(self, state: dict[int, dict[str, Any]]) -> None:
        self._kept, self._stats, self._messages = [], {}, []
        self._games.clear()
        for i, s in state.items():
            generation = int(s.get("generation", 0))
            if generation != self.agents[i].generation:  # the saved weights overwrite it below
                self.agents[i] = build_agent(self.cfg, i, self.scenario, self.channel, generation,
                                             self.device)
            slot = self.agents[i]
            slot.model.load_state_dict(s["model"])
            load_optimizer_state(slot.optimizer, s["optimizer"])
            slot.rule_state = dict(s["rule_state"])
            slot.optimizer.zero_grad(set_to_none=True)

    def where(self) -> dict[str, Any]:
        """Host, process and Ray node of this shard (for the events log and fault handling)."""
        node = ""
        # an in-process shard of a local run never started Ray: importing it only to ask would
        # add ~0.4 s to every local run's start
        ray = sys.modules.get("ray")
        if ray is not None and ray.is_initialized():
            node = ray.get_runtime_context().get_node_id()
        return {"host": socket.gethostname(), "pid": os.getpid(), "node_id": node,
                "agents": sorted(self.agents)}

    def ping(self) -> bool:
        return True
