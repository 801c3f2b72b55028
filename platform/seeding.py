"""One run seed, spawned into independent streams (Mesa's habit, numpy's SeedSequence).

Every stream is keyed by what it is for, so it does not depend on how agents are spread over
actors or on the order calls arrive in: the same config and seed give the same games on the
local and the Ray backend.
"""

from __future__ import annotations

import numpy as np
import torch

AGENT, GAMES, SCHEDULE, TURNOVER, NOISE, EVAL, UPDATE, SAMPLE = range(8)
# a newcomer imitating its predecessor; fresh listeners of a transmission test
IMITATION, TRANSMISSION = 8, 9


def seed_sequence(run_seed: int, *key: int) -> np.random.SeedSequence:
    return np.random.SeedSequence(run_seed, spawn_key=tuple(int(k) for k in key))


def rng(run_seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(seed_sequence(run_seed, *key))


def int_seed(run_seed: int, *key: int) -> int:
    return int(seed_sequence(run_seed, *key).generate_state(1, dtype=np.uint64)[0] >> 1)


def torch_generator(run_seed: int, *key: int) -> torch.Generator:
    gen = torch.Generator()
    gen.manual_seed(int_seed(run_seed, *key))
    return gen
