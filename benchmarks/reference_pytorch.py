"""The yardstick: the quickstart game trained by a minimal plain-PyTorch loop, no neurocomm code.

Same game, architecture, sizes, learning rule and optimiser as ``configs/quickstart.yaml``
with ``neuroai-rnn``:

* referential game, 3 attributes x 4 values (64 objects), 3 random distractors, the candidates
  in random order; the speaker sees the target one-hot (12 inputs);
* each agent: perception Linear(12, 64) - ReLU - Linear(64, 64); production: symbol embedding
  Linear(10, 32, no bias), a learned start vector, GRUCell(32, 64), Linear(64, 10) to logits;
  comprehension: embedding Linear(10, 32, no bias), GRU(32, 64), Linear(64, 64); a readout
  Linear(64, 12) that this game never uses (kept so the parameter count matches);
* messages of 3 relaxed Gumbel-softmax symbols (temperature 1, not straight-through) from a
  vocabulary of 10, symbol 0 ending the message; the listener scores the candidates after every
  symbol and its loss is the expected cross-entropy over where the message ends;
* one Adam (lr 0.003) per agent, one step per round with the gradients of both roles.

With ``directions=2`` (the default) two agents talk both ways, like a two-agent neurocomm
population (two directed edges); with ``directions=1`` agent 0 only speaks and agent 1 only
listens. A step plays ``batch_size`` games per direction. The gradient flows through the
message in one backward pass, which gives the same gradients as neurocomm's two-stage
listener-then-speaker backward.

    OMP_NUM_THREADS=1 python benchmarks/reference_pytorch.py --batch-size 128 --steps 300
    OMP_NUM_THREADS=1 python benchmarks/reference_pytorch.py --until 0.9 --eval-every 5
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

N_ATTRIBUTES, N_VALUES, N_DISTRACTORS = 3, 4, 3
VOCAB, MAX_LEN = 10, 3
HIDDEN, EMBED, PERCEPTION = 64, 32, 64
LR, TEMPERATURE = 0.003, 1.0
OBS = N_ATTRIBUTES * N_VALUES


class Agent(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.perception = nn.Sequential(nn.Linear(OBS, PERCEPTION), nn.ReLU(), nn.Linear(PERCEPTION, HIDDEN))
        self.speak_embed = nn.Linear(VOCAB, EMBED, bias=False)
        self.speak_start = nn.Parameter(torch.zeros(EMBED))
        self.speak_cell = nn.GRUCell(EMBED, HIDDEN)
        self.speak_out = nn.Linear(HIDDEN, VOCAB)
        self.hear_embed = nn.Linear(VOCAB, EMBED, bias=False)
        self.hear_rnn = nn.GRU(EMBED, HIDDEN, batch_first=True)
        self.hear_out = nn.Linear(HIDDEN, HIDDEN)
        self.readout = nn.Linear(HIDDEN, OBS)  # unused by the referential game

    def speak(self, obs: Tensor, greedy: bool = False) -> Tensor:
        """(B, OBS) → (B, MAX_LEN, VOCAB): relaxed symbols, or one-hot greedy ones."""
        h = self.perception(obs)
        inp = self.speak_start.expand(h.shape[0], -1)
        steps = []
        for _ in range(MAX_LEN):
            h = self.speak_cell(inp, h)
            logits = self.speak_out(h)
            if greedy:
                symbol = F.one_hot(logits.argmax(-1), VOCAB).float()
            else:
                u = torch.rand(logits.shape).clamp_(1e-10, 1.0 - 1e-7)
                symbol = F.softmax((logits - torch.log(-torch.log(u))) / TEMPERATURE, -1)
            steps.append(symbol)
            inp = self.speak_embed(symbol)
        return torch.stack(steps, 1)

    def hear(self, message: Tensor, candidates: Tensor) -> Tensor:
        """Scores (B, MAX_LEN, C) of the candidates after each symbol."""
        states, _ = self.hear_rnn(self.hear_embed(message))
        return torch.einsum("bth,bch->btc", self.hear_out(states), self.perception(candidates))


@dataclass
class Games:
    target: Tensor  # (B, OBS) one-hot
    candidates: Tensor  # (B, C, OBS) one-hot
    label: Tensor  # (B,) index of the target among the candidates


def sample_games(batch_size: int, generator: torch.Generator | None = None) -> Games:
    target = torch.randint(0, N_VALUES, (batch_size, N_ATTRIBUTES), generator=generator)
    distractors = torch.randint(0, N_VALUES, (batch_size, N_DISTRACTORS, N_ATTRIBUTES), generator=generator)
    same = (distractors == target[:, None]).all(-1)
    while same.any():
        distractors[same] = torch.randint(0, N_VALUES, (int(same.sum()), N_ATTRIBUTES), generator=generator)
        same = (distractors == target[:, None]).all(-1)
    slots = torch.cat([target[:, None], distractors], 1)
    perm = torch.rand(batch_size, N_DISTRACTORS + 1, generator=generator).argsort(1)
    candidates = slots.gather(1, perm[:, :, None].expand(-1, -1, N_ATTRIBUTES))
    label = (perm == 0).float().argmax(1)

    def one_hot(x: Tensor) -> Tensor:
        return F.one_hot(x, N_VALUES).float().flatten(-2)

    return Games(one_hot(target), one_hot(candidates), label)


def listener_loss(scores: Tensor, message: Tensor, label: Tensor) -> Tensor:
    """Cross-entropy after each symbol, weighted by the chance that the message ended there."""
    b, t, c = scores.shape
    ce = F.cross_entropy(scores.reshape(b * t, c), label.repeat_interleave(t), reduction="none").view(b, t)
    eos = message[:, :, 0]
    alive = torch.cumprod(torch.cat([torch.ones_like(eos[:, :1]), 1 - eos[:, :-1]], 1), 1)
    weight = torch.cat([(eos * alive)[:, :-1], alive[:, -1:]], 1)
    return (weight * ce).sum(1).mean()


def at_end(message: Tensor) -> Tensor:
    """Index of the symbol where each message ends (its first 0, else the last symbol)."""
    is_eos = message.argmax(-1) == 0
    return torch.where(is_eos.any(1), is_eos.float().argmax(1), torch.full_like(is_eos[:, 0], MAX_LEN - 1,
                                                                               dtype=torch.long))


class Pair:
    """Two agents, each with its own Adam; ``directions`` 1 (0 → 1) or 2 (both ways)."""

    def __init__(self, directions: int = 2, seed: int = 0) -> None:
        torch.manual_seed(seed)
        self.agents = [Agent(), Agent()]
        self.optimizers = [torch.optim.Adam(a.parameters(), lr=LR) for a in self.agents]
        self.edges = [(0, 1), (1, 0)][:directions]
        eval_gen = torch.Generator().manual_seed(seed + 1)
        self.eval_sets = {e: sample_games(128, eval_gen) for e in self.edges}

    def step(self, batch_size: int) -> float:
        """One round: ``batch_size`` games per direction, one optimiser step per agent."""
        total, success = torch.zeros(()), 0.0
        for s, li in self.edges:
            games = sample_games(batch_size)
            message = self.agents[s].speak(games.target)
            scores = self.agents[li].hear(message, games.candidates)
            total = total + listener_loss(scores, message, games.label)
            end = at_end(message.detach())
            choice = scores.detach()[torch.arange(batch_size), end].argmax(-1)
            success += float((choice == games.label).float().mean())
        total.backward()
        for opt in self.optimizers:
            opt.step()
            opt.zero_grad(set_to_none=True)
        return success / len(self.edges)

    @torch.no_grad()
    def evaluate(self) -> float:
        """Greedy success on the fixed evaluation set of each direction (mean over directions)."""
        out = []
        for (s, li), games in self.eval_sets.items():
            message = self.agents[s].speak(games.target, greedy=True)
            end = at_end(message)
            # symbols after the end are sent as 0, as neurocomm's evaluation does
            keep = torch.arange(MAX_LEN)[None, :] <= end[:, None]
            message = F.one_hot(message.argmax(-1) * keep, VOCAB).float()
            scores = self.agents[li].hear(message, games.candidates)
            choice = scores[torch.arange(len(end)), end].argmax(-1)
            out.append(float((choice == games.label).float().mean()))
        return sum(out) / len(out)


def throughput(batch_size: int = 128, steps: int = 200, directions: int = 2, warmup: int = 5,
               seed: int = 0) -> dict[str, Any]:
    """Games per second of training (``warmup`` steps first, not timed)."""
    torch.set_num_threads(1)
    pair = Pair(directions, seed)
    for _ in range(warmup):
        pair.step(batch_size)
    start = time.perf_counter()
    for _ in range(steps):
        pair.step(batch_size)
    wall = time.perf_counter() - start
    games = steps * batch_size * directions
    return {"batch_size": batch_size, "directions": directions, "rounds": steps, "wall_s": wall,
            "games_per_s": games / wall, "rounds_per_s": steps / wall}


def time_to_success(threshold: float = 0.9, eval_every: int = 5, max_steps: int = 1200,
                    batch_size: int = 128, directions: int = 2, seed: int = 0) -> dict[str, Any]:
    """Wall time (evaluation included) until the greedy success reaches ``threshold``."""
    torch.set_num_threads(1)
    pair = Pair(directions, seed)
    start = time.perf_counter()
    curve = []
    for step in range(max_steps + 1):
        if step % eval_every == 0:
            curve.append((step, pair.evaluate()))
            if curve[-1][1] >= threshold:
                return {"reached": True, "rounds": step, "wall_s": time.perf_counter() - start,
                        "success": curve[-1][1], "seed": seed}
        if step < max_steps:
            pair.step(batch_size)
    return {"reached": False, "rounds": max_steps, "wall_s": time.perf_counter() - start,
            "success": curve[-1][1], "seed": seed}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--directions", type=int, choices=(1, 2), default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--until", type=float, help="train until this greedy success instead")
    parser.add_argument("--eval-every", type=int, default=5)
    parser.add_argument("--max-steps", type=int, default=1200)
    args = parser.parse_args(argv)
    if args.until is not None:
        out = time_to_success(args.until, args.eval_every, args.max_steps, args.batch_size,
                              args.directions, args.seed)
    else:
        out = throughput(args.batch_size, args.steps, args.directions, seed=args.seed)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
