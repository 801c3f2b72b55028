"""How much of a round is alive at once in a shard.

A shard computes a cohort's edges as one batched model (platform/shard.py). The listen phase is
where a round of a large shard peaks: on top of the speakers' graphs, kept from produce to
learn, the listeners' forward and backward hold about 2.5 MB per in-edge at batch 128 (measured
in one shard of 128 agents on a ring, 256 in-edges: about 640 MB on top of the 490 MB in use
after produce, 290 MB of it the kept graphs). glibc keeps what a process freed for its next
allocation, so a shard's resident memory between rounds stays near that peak. Listening to a
large cohort's in-edges in parts of at most :data:`LISTEN_ROWS` games lowers the peak and so the
resident memory.

Parts never split an agent's edges, so each agent's gradients come out of one backward pass as
before, and every number a run computes is unchanged (cohorts are split by agent the same way
when a population is sharded across actors; tests/test_memory.py compares the results).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

# 64 edges at batch 128. At 512 agents, 128 per shard (4 parts of a ring shard's 256 in-edges),
# it lowered the shards' peak from 12.3 to 9.5 MB per agent and ran 1.17-1.27x the games/s
# (a smaller working set); half of it gave no more (9.4 MB, the same games/s). At 64 agents on a
# small world, 32 per shard, parts of 8,192, 4,096 and 2,048 rows all ran at 60-66k games/s.
LISTEN_ROWS = 64 * 128


def parts(families: Iterable[list[int]], rows_of: Callable[[int], int],
          most_rows: int | None) -> Iterator[list[int]]:
    """Each family of agents (in order), cut into consecutive parts of at most ``most_rows``
    rows, ``rows_of(agent)`` rows per agent, and at least one agent per part; whole families
    when ``most_rows`` is None."""
    for family in families:
        if most_rows is None:
            yield family
            continue
        part: list[int] = []
        rows = 0
        for agent in family:
            if part and rows + rows_of(agent) > most_rows:
                yield part
                part, rows = [], 0
            part.append(agent)
            rows += rows_of(agent)
        if part:
            yield part
