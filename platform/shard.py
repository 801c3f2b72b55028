"""A shard hosts one or more agents and plays their part of each round.

A round has three phases, each one call per shard (so Ray sees a few well-filled calls, never
one per game):

1. ``produce``: every speaker encodes a batch of targets for each of its out-edges;
2. ``listen``: every listener comprehends each incoming message, decides, back-propagates its
   loss, and sends feedback (reward or message gradient) back to the speaker;
3. ``learn``: every speaker back-propagates the feedback; each agent takes one optimiser step
   with the gradients of both roles.

Within a phase the shard computes all the edges of a *cohort* at once: agents whose model
class can stack them (``Model.stacked(models, owners)``, e.g. neuroai-rnn with the same
parameters) run as one batched model, one group of rows per edge; any other agent runs alone,
with all its edges batched. Sampling noise comes from a generator per (round, edge), each
edge's loss is a mean over its games and the edges' losses are summed, so every agent
computes the same numbers whatever the sharding: local, Ray and sharded runs agree exactly.
"""

from __future__ import annotations

import contextlib
import copy
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from neurocomm.platform import channel as noisy_channel
from neurocomm.platform import imitation, partial_reset, registry, seeding
from neurocomm.platform.config import AgentSpec, RunConfig
from neurocomm.platform.interfaces import Batch, ChannelSpec
from neurocomm.platform.typed import from_mapping

Edge = tuple[int, int]


@dataclass
class AgentSlot:
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    spec: AgentSpec
    rule_state: dict[str, Any] = field(default_factory=dict)
    generation: int = 0  # how many times this node's agent was replaced by a newcomer


@dataclass
class ShardReport:
    """What a shard tells the driver at the end of a round (small: numbers and logged games)."""

    edge_stats: dict[Edge, dict[str, float]]
    messages: list[dict[str, Any]]


class GroupNoise:
    """Uniform noise for rows grouped by edge, each group from its own generator.

    A rule asks for ``noise(shape)`` with the rows of every group stacked in dim 0; group ``g``
    draws its share from generator ``g`` — the same numbers whether the edge is computed alone
    or with others."""

    def __init__(self, generators: Sequence[torch.Generator]) -> None:
        self.generators = list(generators)

    def __call__(self, shape: Sequence[int]) -> torch.Tensor:
        rows, rest = shape[0], tuple(shape[1:])
        per = rows // len(self.generators)
        return torch.cat([torch.rand((per, *rest), generator=g) for g in self.generators])


def build_scenario(cfg: RunConfig) -> Any:
    cls = registry.resolve("scenarios", cfg.scenario.name)
    return cls(from_mapping(cls.Params, dict(cfg.scenario.params), "scenario.params"))


def build_rule(cfg: RunConfig) -> Any:
    cls = registry.resolve("rules", cfg.training.rule)
    return cls(from_mapping(cls.Params, dict(cfg.training.rule_params), "training.rule_params"))


def pick_device(cfg: RunConfig) -> torch.device:
    """A GPU when the agents asked for one and this process sees one; else the CPU."""
    if cfg.runtime.agent_resources.num_gpus > 0 and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def _moved(value: Any, device: torch.device | str, copy: bool = False) -> Any:
    """Tensors (also inside tuples, lists and dicts) on ``device``; ``copy`` gives each its own
    storage."""
    if torch.is_tensor(value):
        return value.detach().to(device, copy=True) if copy else value.to(device)
    if isinstance(value, tuple | list):
        return type(value)(_moved(v, device, copy) for v in value)
    if isinstance(value, dict):
        return {k: _moved(v, device, copy) for k, v in value.items()}
    return value


def _outgoing(value: Any) -> Any:
    """A message or feedback as it leaves the shard: on the CPU, in storage of its own.

    A slice of a batched tensor is a view, and pickling a view ships the whole underlying
    storage: without the copy, every edge's message would carry every other edge's too."""
    return _moved(value, "cpu", copy=True)


def build_agent(cfg: RunConfig, agent_id: int, scenario: Any, channel: ChannelSpec,
                generation: int = 0, device: torch.device | None = None) -> AgentSlot:
    """Agent ``agent_id`` with its own weights and optimiser, from the seed (a newcomer
    replacing it after turnover is generation 1, 2, ...)."""
    spec = cfg.population.spec_for(agent_id)
    cls = registry.resolve("models", spec.model)
    params = from_mapping(cls.Params, dict(spec.params), "population.agent.params")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seeding.int_seed(cfg.seed, seeding.AGENT, agent_id, *_gen_key(generation)))
        model = cls(params, game=scenario.spec, channel=channel)
    if device is not None:
        model.to(device)
    opt_cls = torch.optim.Adam if cfg.training.optimizer == "adam" else torch.optim.SGD
    optimizer = opt_cls(model.parameters(), lr=spec.lr)
    return AgentSlot(model, optimizer, spec, generation=generation)


def _gen_key(generation: int) -> tuple[int, ...]:
    # generation 0 keeps the original key, so runs without turnover are unchanged
    return (generation,) if generation else ()


def game_batch(cfg: RunConfig, scenario: Any, round_: int, edge: Edge) -> Batch:
    """The games of ``edge`` at ``round_``: rebuilt identically by speaker and listener."""
    rng = seeding.rng(cfg.seed, seeding.GAMES, round_, edge[0], edge[1])
    return scenario.sample(rng, cfg.training.batch_size, "train")


def edge_noise(cfg: RunConfig, round_: int, edges: Sequence[Edge], *key: int) -> GroupNoise:
    return GroupNoise([seeding.torch_generator(cfg.seed, seeding.SAMPLE, round_, s, t, *key)
                       for s, t in edges])


@dataclass
class _Cohort:
    """Edges computed together, the model that computes them and who owns each edge."""

    edges: list[Edge]
    agents: list[int]
    model: Any

    @property
    def groups(self) -> int:
        return len(self.edges)


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
        self._stats: dict[Edge, dict[str, float]] = {}
        self._messages: list[dict[str, Any]] = []
        # games sampled for speaking, reused when the listener is in this shard too
        self._games: dict[tuple[int, Edge], Batch] = {}

    # ------------------------------------------------------------------ cohorts

    def _cohorts(self, edges: list[Edge], role: int) -> list[_Cohort]:
        """Split ``edges`` by the agent in ``role`` (0 speaker, 1 listener) into cohorts."""
        by_agent: dict[int, list[Edge]] = {}
        for edge in sorted(edges):
            by_agent.setdefault(edge[role], []).append(edge)
        families: dict[Any, list[int]] = {}
        for agent_id in sorted(by_agent):
            model = self.agents[agent_id].model
            families.setdefault((type(model), repr(getattr(model, "params", id(model)))), []).append(agent_id)
        cohorts = []
        for members in families.values():
            stack = getattr(type(self.agents[members[0]].model), "stacked", None)
            family_edges = sorted(e for a in members for e in by_agent[a])
            index = {a: i for i, a in enumerate(members)}
            models = [self.agents[a].model for a in members]
            stacked = stack(models, [index[e[role]] for e in family_edges]) if stack else None
            if stacked is not None:
                cohorts.append(_Cohort(family_edges, [e[role] for e in family_edges], stacked))
                continue
            for a in members:  # one at a time, all of the agent's edges batched
                cohorts.append(_Cohort(by_agent[a], [a] * len(by_agent[a]), self.agents[a].model))
        return cohorts

    def _batch(self, round_: int, edges: list[Edge], keep: bool = False) -> Batch:
        batches = []
        for edge in edges:
            batch = self._games.pop((round_, edge), None)
            if batch is None:
                batch = game_batch(self.cfg, self.scenario, round_, edge)
                if keep and edge[1] in self.agents:
                    self._games[(round_, edge)] = batch
            batches.append(batch)
        return Batch.concat(batches)

    # ------------------------------------------------------------------ the three phases

    def produce(self, round_: int, plan: list[list[Edge]]) -> Any:
        """Messages for each group of out-edges in ``plan`` (one group per listener shard)."""
        wires: dict[Edge, Any] = {}
        edges = [e for group in plan for e in group]
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
                                      edge_noise(self.cfg, round_, cohort.edges), train=True)
            if learns:
                self._kept.append((cohort, utt.kept))
            greedy = self._greedy_tokens(round_, cohort)
            size = len(obs) // cohort.groups
            for g, edge in enumerate(cohort.edges):
                rows = slice(g * size, (g + 1) * size)
                self._stats.setdefault(edge, {}).update(
                    entropy=float(utt.entropy[rows].mean()),
                    msg_length=float(utt.lengths[rows].float().mean()),
                )
                sent = (utt.wire[rows], {k: v[g] for k, v in greedy.items()} if greedy else None)
                wires[edge] = _outgoing(sent)
        out = [{e: wires[e] for e in group} for group in plan]
        return out[0] if len(out) == 1 else tuple(out)

    def listen(self, round_: int, plan: list[list[Edge]], *incoming: dict[Edge, Any]) -> Any:
        """Feedback for each group of in-edges in ``plan`` (one group per speaker shard)."""
        wires: dict[Edge, Any] = {}
        for part in incoming:
            wires.update(part)
        log_games = self._log_games(round_)
        feedback: dict[Edge, Any] = {}
        for cohort in self._cohorts([e for group in plan for e in group], role=1):
            batch = self._batch(round_, cohort.edges)
            received, corruptions = [], []
            for edge in cohort.edges:
                wire, corruption = self._transmit(round_, edge, wires[edge][0])
                wire = wire.to(self.device)
                received.append(wire)
                corruptions.append(corruption)
            losses, fbs, decision, lengths = self.rule.listen(
                cohort.model, self.scenario, torch.cat(received), batch, self.channel.vocab_size,
                groups=cohort.groups,
            )
            size = len(batch) // cohort.groups
            for g, edge in enumerate(cohort.edges):
                fb, corruption, sent = fbs[g], corruptions[g], wires[edge][0]
                if corruption is not None and isinstance(fb, tuple) and torch.is_tensor(fb[0]) \
                        and fb[0].shape == sent.shape:
                    fb = (noisy_channel.backmap(fb[0], corruption), *fb[1:])
                feedback[edge] = _outgoing(fb)
                rows = slice(g * size, (g + 1) * size)
                self._stats.setdefault(edge, {}).update(
                    success=float(decision.success[rows, 0].mean()), listener_loss=losses[g],
                    games=float(size),
                )
                if log_games:
                    self._log(round_, edge, received[g], lengths[rows], batch.rows(rows),
                              decision.choice[rows], decision.success[rows], log_games)
            self._evaluate(cohort, wires)
        out = [{e: feedback[e] for e in group} for group in plan]
        return out[0] if len(out) == 1 else tuple(out)

    def learn(self, round_: int, *feedback: dict[Edge, Any]) -> ShardReport:
        merged: dict[Edge, Any] = {}
        for part in feedback:
            merged.update(part)
        for cohort, kept in self._kept:
            states = [self.agents[e[0]].rule_state for e in cohort.edges]
            items = [_moved(merged[e], self.device) for e in cohort.edges]
            losses = self.rule.learn(cohort.model, kept, items, states)
            for edge, loss in zip(cohort.edges, losses):
                self._stats.setdefault(edge, {})["speaker_loss"] = loss
        for agent_id, slot in self.agents.items():
            if self._updates(round_, agent_id, slot):
                slot.optimizer.step()
            slot.optimizer.zero_grad(set_to_none=True)
        report = ShardReport(self._stats, self._messages)
        self._stats, self._messages, self._kept = {}, [], []
        self._games.clear()
        return report

    def _updates(self, round_: int, agent_id: int, slot: AgentSlot) -> bool:
        p = slot.spec.update_prob
        if p >= 1.0:
            return True
        return bool(seeding.rng(self.cfg.seed, seeding.UPDATE, round_, agent_id).random() < p)

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

    # ------------------------------------------------------------------ evaluation

    def _eval_splits(self) -> tuple[str, ...]:
        splits = getattr(self.scenario, "splits", ("train", "eval"))
        return ("eval", "heldout") if "heldout" in splits else ("eval",)

    def _eval_batch(self, edges: list[Edge], split: str) -> Batch:
        """A fixed evaluation set per edge and split (the same every round), never trained on."""
        key = self._eval_splits().index(split)
        return Batch.concat([
            self.scenario.sample(seeding.rng(self.cfg.seed, seeding.EVAL, s, t, *((key,) if key else ())),
                                 self.cfg.logging.eval_games, split)
            for s, t in edges
        ])

    def _evaluating(self, round_: int) -> bool:
        every = self.cfg.logging.eval_every
        return every > 0 and (round_ % every == 0 or round_ == self.cfg.training.rounds - 1)

    def _greedy_tokens(self, round_: int, cohort: _Cohort) -> dict[str, list[torch.Tensor]] | None:
        if not self._evaluating(round_):
            return None
        out = {}
        with torch.no_grad():
            for split in self._eval_splits():
                obs = torch.from_numpy(self._eval_batch(cohort.edges, split).speaker_obs).to(self.device)
                noise = edge_noise(self.cfg, round_, cohort.edges, 1)
                utt = self.rule.speak(cohort.model, obs, self.channel, noise, train=False)
                out[split] = list(utt.tokens.chunk(cohort.groups))
        return out

    def _evaluate(self, cohort: _Cohort, wires: dict[Edge, Any]) -> None:
        greedy = [wires[e][1] for e in cohort.edges]
        if any(g is None for g in greedy):
            return
        for split in greedy[0]:
            tokens = torch.cat([g[split] for g in greedy]).to(self.device)
            decision = self.rule.evaluate(cohort.model, self.scenario, tokens,
                                          self._eval_batch(cohort.edges, split), self.channel.vocab_size)
            for g, edge in enumerate(cohort.edges):
                part = decision.success.chunk(cohort.groups)[g]
                self._stats.setdefault(edge, {})[f"{split}_success"] = float(part[:, 0].mean())

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

    def _log(self, round_: int, edge: Edge, wire: torch.Tensor, lengths: torch.Tensor, batch: Batch,
             choice: torch.Tensor, success: torch.Tensor, k: int) -> None:
        tokens = (wire.argmax(-1) if wire.is_floating_point() else wire)[:k].tolist()
        lens = lengths[:k].tolist()
        label = batch.extra.get("label")
        for g in range(min(k, len(batch))):
            answer = choice[g, 0].tolist() if choice.dim() >= 2 else choice[g].tolist()
            self._messages.append(
                {
                    "round": round_, "speaker": edge[0], "listener": edge[1], "game": g,
                    "target": batch.target[g].tolist(),
                    "message": tokens[g][: lens[g]],
                    "length": lens[g],
                    "choice": int(answer) if not isinstance(answer, list) else -1,
                    "target_index": int(label[g]) if label is not None else -1,
                    "success": bool(success[g, 0] > 0.5),
                }
            )

    # ------------------------------------------------------------------ state

    def get_state(self) -> dict[int, dict[str, Any]]:
        """Everything needed to resume these agents exactly (weights, optimiser, rule state)."""
        return {
            i: {
                "model": _outgoing(dict(slot.model.state_dict())),
                "optimizer": _outgoing(slot.optimizer.state_dict()),
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
            slot.optimizer.load_state_dict(s["optimizer"])
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

