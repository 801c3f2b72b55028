"""An EGG-style loop, written here: the yardstick that stands in for EGG, which is not installed.

This is not EGG. It is written in this repository after the structure of EGG's ``egg.core``
(Kharitonov et al. 2019, facebookresearch/EGG), so that "as fast as EGG" can be measured
without installing it:

* ``RnnSenderGS``: a user agent maps the input to the GRU's first hidden state; a learned
  start-of-sequence embedding; per step a ``GRUCell``, ``log_softmax`` of a linear head, a
  ``RelaxedOneHotCategorical(...).rsample()`` symbol in training (a one-hot argmax in
  evaluation), the symbol embedded by a ``Linear`` for the next step. No forced end symbol.
* ``RnnReceiverGS``: the message embedded by a ``Linear``, a ``GRUCell`` unrolled by hand, the user
  agent applied to the hidden state after every symbol (so the loss can weigh each position).
* ``SenderReceiverRnnGS``: the loss after each symbol, weighted by the probability that the
  message ended there (symbol 0 ends a message), the remainder on the last symbol; returns the
  mean loss and an ``Interaction`` (inputs, labels, message, receiver output, aux) detached
  from the graph.
* ``Trainer.train_epoch``: for each batch, forward of the game (sender, then receiver, then
  loss), ``backward``, one ``Adam`` step over every parameter of the game, ``zero_grad``; the
  batch's interaction moved to the CPU and kept; the epoch's interactions concatenated.
* ``PopulationGame``: as EGG's population game, a sampler picks one speaker and one listener per
  batch (here: a directed edge of the graph, uniformly) and the game above is played between
  them; one Adam over the whole population, so agents that did not play have no gradient and
  are skipped by the step.

The game, sizes and optimiser are those of ``configs/quickstart.yaml`` and of
``reference_pytorch.py`` (3 attributes x 4 values, 3 distractors, vocabulary 10, 3 symbols,
GRU 64, embedding 32, perception [64], Gumbel temperature 1, Adam 3e-3, batch 128). Unlike
neurocomm's agent (and the reference's), EGG's sender and receiver are separate modules, each
with its own perception; a pair plays one way (sender -> receiver), as EGG's games do.

    OMP_NUM_THREADS=1 python benchmarks/egg_style.py pair --steps 300
    OMP_NUM_THREADS=1 python benchmarks/egg_style.py pair --until 0.9 --seed 0
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, fields

import numpy as np
import torch
import torch.nn.functional as F
from reference_pytorch import (
    EMBED,
    HIDDEN,
    LR,
    MAX_LEN,
    OBS,
    PERCEPTION,
    TEMPERATURE,
    VOCAB,
    sample_games,
)
from torch import Tensor, nn
from torch.distributions import RelaxedOneHotCategorical

Batch = tuple[Tensor, Tensor, Tensor]  # sender_input, labels, receiver_input (EGG's order)


def perception() -> nn.Module:
    return nn.Sequential(nn.Linear(OBS, PERCEPTION), nn.ReLU(), nn.Linear(PERCEPTION, HIDDEN))


class RnnSenderGS(nn.Module):
    def __init__(self, agent: nn.Module) -> None:
        super().__init__()
        self.agent = agent
        self.hidden_to_output = nn.Linear(HIDDEN, VOCAB)
        self.embedding = nn.Linear(VOCAB, EMBED)
        self.sos_embedding = nn.Parameter(torch.zeros(EMBED))
        self.cell = nn.GRUCell(EMBED, HIDDEN)
        nn.init.normal_(self.sos_embedding, 0.0, 0.01)

    def forward(self, x: Tensor) -> Tensor:
        prev_hidden = self.agent(x)
        e_t = torch.stack([self.sos_embedding] * prev_hidden.size(0))
        sequence = []
        for _ in range(MAX_LEN):
            h_t = self.cell(e_t, prev_hidden)
            step_logits = F.log_softmax(self.hidden_to_output(h_t), dim=1)
            if self.training:
                symbol = RelaxedOneHotCategorical(logits=step_logits, temperature=TEMPERATURE).rsample()
            else:
                symbol = torch.zeros_like(step_logits).scatter_(-1, step_logits.argmax(-1, keepdim=True), 1.0)
            prev_hidden = h_t
            e_t = self.embedding(symbol)
            sequence.append(symbol)
        return torch.stack(sequence).permute(1, 0, 2)


class ReceiverAgent(nn.Module):
    """The user's receiver agent: scores of the candidates from the GRU's hidden state."""

    def __init__(self) -> None:
        super().__init__()
        self.perception = perception()
        self.out = nn.Linear(HIDDEN, HIDDEN)

    def forward(self, h_t: Tensor, candidates: Tensor) -> Tensor:
        return torch.einsum("bh,bch->bc", self.out(h_t), self.perception(candidates))


class RnnReceiverGS(nn.Module):
    def __init__(self, agent: nn.Module) -> None:
        super().__init__()
        self.agent = agent
        self.cell = nn.GRUCell(EMBED, HIDDEN)
        self.embedding = nn.Linear(VOCAB, EMBED)

    def forward(self, message: Tensor, receiver_input: Tensor) -> Tensor:
        emb = self.embedding(message)
        prev_hidden, outputs = None, []
        for step in range(message.size(1)):
            h_t = self.cell(emb[:, step], prev_hidden)
            outputs.append(self.agent(h_t, receiver_input))
            prev_hidden = h_t
        return torch.stack(outputs).permute(1, 0, 2)


@dataclass
class Interaction:
    """What one batch left behind (EGG's logging keeps every field by default)."""

    sender_input: Tensor
    receiver_input: Tensor
    labels: Tensor
    message: Tensor
    receiver_output: Tensor
    message_length: Tensor
    aux: dict[str, Tensor] = field(default_factory=dict)

    def to(self, device: str) -> Interaction:
        moved = {f.name: getattr(self, f.name).to(device) for f in fields(self) if f.name != "aux"}
        return Interaction(**moved, aux={k: v.to(device) for k, v in self.aux.items()})

    @staticmethod
    def from_iterable(items: list[Interaction]) -> Interaction:
        cat = {f.name: torch.cat([getattr(i, f.name) for i in items]) for f in fields(Interaction)
               if f.name != "aux"}
        return Interaction(**cat, aux={k: torch.cat([i.aux[k] for i in items]) for k in items[0].aux})


def referential_loss(receiver_output: Tensor, labels: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
    acc = (receiver_output.argmax(dim=1) == labels).float()
    return F.cross_entropy(receiver_output, labels, reduction="none"), {"acc": acc}


def play(sender: nn.Module, receiver: nn.Module, sender_input: Tensor, labels: Tensor,
         receiver_input: Tensor) -> tuple[Tensor, Interaction]:
    """SenderReceiverRnnGS's forward: the loss after each symbol weighted by where the message ends."""
    message = sender(sender_input)
    receiver_output = receiver(message, receiver_input)
    loss = torch.zeros(())
    not_eosed_before = torch.ones(receiver_output.size(0))
    expected_length = torch.zeros(receiver_output.size(0))
    aux: dict[str, Tensor] = {}
    for step in range(receiver_output.size(1)):
        step_loss, step_aux = referential_loss(receiver_output[:, step], labels)
        eos_mask = message[:, step, 0]
        add_mask = eos_mask * not_eosed_before
        loss = loss + step_loss * add_mask
        expected_length = expected_length + add_mask.detach() * (1.0 + step)
        for name, value in step_aux.items():
            aux[name] = value * add_mask + aux.get(name, 0.0)
        not_eosed_before = not_eosed_before * (1.0 - eos_mask)
    loss = loss + step_loss * not_eosed_before
    expected_length = expected_length + (step + 1) * not_eosed_before
    for name, value in step_aux.items():
        aux[name] = (value * not_eosed_before + aux[name]).detach()
    interaction = Interaction(sender_input, receiver_input, labels, message.detach(),
                              receiver_output.detach(), expected_length.detach(), aux)
    return loss.mean(), interaction


class SenderReceiverRnnGS(nn.Module):
    def __init__(self, sender: nn.Module, receiver: nn.Module) -> None:
        super().__init__()
        self.sender, self.receiver = sender, receiver

    def forward(self, *batch: Tensor) -> tuple[Tensor, Interaction]:
        return play(self.sender, self.receiver, *batch)


class PopulationGame(nn.Module):
    """One sampled speaker-listener pair (a directed edge, uniformly) per batch."""

    def __init__(self, n_agents: int, edges: list[tuple[int, int]], seed: int) -> None:
        super().__init__()
        self.senders = nn.ModuleList(RnnSenderGS(perception()) for _ in range(n_agents))
        self.receivers = nn.ModuleList(RnnReceiverGS(ReceiverAgent()) for _ in range(n_agents))
        self.edges = edges
        self.rng = np.random.default_rng(seed)

    def forward(self, *batch: Tensor) -> tuple[Tensor, Interaction]:
        s, li = self.edges[int(self.rng.integers(len(self.edges)))]
        return play(self.senders[s], self.receivers[li], *batch)


def loader(batches: int, batch_size: int) -> Iterator[Batch]:
    for _ in range(batches):
        g = sample_games(batch_size)
        yield g.target, g.label, g.candidates


class Trainer:
    """EGG's ``core.Trainer.train_epoch``, without its callbacks, devices and checkpoints."""

    def __init__(self, game: nn.Module) -> None:
        self.game = game
        self.optimizer = torch.optim.Adam(game.parameters(), lr=LR)

    def train_epoch(self, batches: int, batch_size: int) -> tuple[float, Interaction]:
        mean_loss, interactions = torch.zeros(()), []
        self.game.train()
        self.optimizer.zero_grad()
        for batch in loader(batches, batch_size):
            optimized_loss, interaction = self.game(*batch)
            optimized_loss.backward()
            self.optimizer.step()
            self.optimizer.zero_grad()
            mean_loss += optimized_loss.detach()
            interactions.append(interaction.to("cpu"))
        return float(mean_loss / batches), Interaction.from_iterable(interactions)


@torch.no_grad()
def greedy_success(sender: nn.Module, receiver: nn.Module, batch: Batch) -> float:
    sender.eval()
    receiver.eval()
    _, interaction = play(sender, receiver, *batch)
    sender.train()
    receiver.train()
    return float(interaction.aux["acc"].mean())


def eval_set(seed: int) -> Batch:
    g = sample_games(128, torch.Generator().manual_seed(seed))
    return g.target, g.label, g.candidates


# ---------------------------------------------------------------------- what benchmarks/ call


def pair_throughput(batch_size: int = 128, steps: int = 300, seed: int = 0, warmup: int = 5) -> dict:
    """Games per second of one EGG-style pair (one way), epochs of ``steps`` batches."""
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    trainer = Trainer(SenderReceiverRnnGS(RnnSenderGS(perception()), RnnReceiverGS(ReceiverAgent())))
    trainer.train_epoch(warmup, batch_size)
    start = time.perf_counter()
    trainer.train_epoch(steps, batch_size)
    wall = time.perf_counter() - start
    return {"batch_size": batch_size, "directions": 1, "rounds": steps, "wall_s": wall,
            "games_per_s": steps * batch_size / wall, "rounds_per_s": steps / wall}


def pair_time_to_success(threshold: float = 0.9, eval_every: int = 10, max_steps: int = 3000,
                         batch_size: int = 128, seed: int = 0) -> dict:
    """Training time (evaluation included) until the greedy success reaches ``threshold``;
    an epoch is ``eval_every`` batches, evaluated after it (and once before training)."""
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    game = SenderReceiverRnnGS(RnnSenderGS(perception()), RnnReceiverGS(ReceiverAgent()))
    trainer, test = Trainer(game), eval_set(seed + 1)
    start, steps = time.perf_counter(), 0
    success = greedy_success(game.sender, game.receiver, test)
    while success < threshold and steps < max_steps:
        trainer.train_epoch(eval_every, batch_size)
        steps += eval_every
        success = greedy_success(game.sender, game.receiver, test)
    return {"reached": success >= threshold, "rounds": steps, "games": steps * batch_size,
            "wall_s": time.perf_counter() - start, "success": success, "seed": seed}


def population_throughput(n_agents: int, edges: list[tuple[int, int]], steps: int,
                          batch_size: int = 128, seed: int = 0) -> dict:
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    trainer = Trainer(PopulationGame(n_agents, edges, seed))
    trainer.train_epoch(5, batch_size)
    start = time.perf_counter()
    trainer.train_epoch(steps, batch_size)
    wall = time.perf_counter() - start
    return {"agents": n_agents, "edges": len(edges), "batch_size": batch_size, "rounds": steps,
            "wall_s": wall, "games_per_s": steps * batch_size / wall}


def population_time_to_success(n_agents: int, edges: list[tuple[int, int]], threshold: float = 0.9,
                               cap_s: float = 60.0, sweeps_per_eval: int = 5, batch_size: int = 128,
                               seed: int = 0) -> dict:
    """Training time until the mean greedy success over every directed edge reaches
    ``threshold``, evaluated after every ``sweeps_per_eval`` x edges batches (the games
    neurocomm plays between two evaluations with ``eval_every: sweeps_per_eval``); gives up
    after ``cap_s`` seconds."""
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    game = PopulationGame(n_agents, edges, seed)
    trainer = Trainer(game)
    tests = {e: eval_set(seed + 1 + i) for i, e in enumerate(edges)}

    def mean_success() -> float:
        return float(np.mean([greedy_success(game.senders[s], game.receivers[li], b)
                              for (s, li), b in tests.items()]))

    start, steps = time.perf_counter(), 0
    success = mean_success()
    while success < threshold and time.perf_counter() - start < cap_s:
        trainer.train_epoch(sweeps_per_eval * len(edges), batch_size)
        steps += sweeps_per_eval * len(edges)
        success = mean_success()
    return {"reached": success >= threshold, "rounds": steps, "games": steps * batch_size,
            "wall_s": time.perf_counter() - start, "success": success, "cap_s": cap_s}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=["pair"])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--until", type=float, help="train until this greedy success instead")
    parser.add_argument("--eval-every", type=int, default=10)
    parser.add_argument("--max-steps", type=int, default=3000)
    args = parser.parse_args(argv)
    if args.until is not None:
        out = pair_time_to_success(args.until, args.eval_every, args.max_steps, args.batch_size, args.seed)
    else:
        out = pair_throughput(args.batch_size, args.steps, args.seed)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
