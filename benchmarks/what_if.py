"""What would the optimisations proposed in docs/performance.md buy? Measured, not guessed.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/what_if.py   # all but local-compile (~6 min)
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/what_if.py --only ray-copy
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/what_if.py --only local-per-tensor-adam,local-gather

Nothing in the shipped code changes: each variant swaps something for the duration of a run
and puts it back.

* ``ray-copy``: every edge's message and feedback travel as their own tensor. Before commit
  845cf32 they were row slices of the cohort's batched tensor, and pickling a slice pickles its
  whole storage, so each edge shipped the messages of every edge of its cohort. The Ray backend
  is handed a subclass of ``AgentShard`` (defined in this script, so Ray ships it to the actors
  by value) whose produce/listen clone the slices. Since 845cf32 the shard does this itself and
  the two arms agree; the variant stays to check that it keeps doing so.
* ``ray-numpy``: as ``ray-copy``, and the tensors cross Ray as numpy arrays (Ray's zero-copy
  path) instead of torch tensors (pickled through ``torch.save``).
* ``local-once``: each edge's games are sampled once per round instead of twice (speaker and
  listener both rebuild them): ``games.game_batch`` is memoised.
* ``local-unstacked``: the shard computes each agent alone (``NeuroAIAgent.stacked`` hidden),
  i.e. the code before stacked cohorts, to see what stacking buys at each size.
* ``local-per-tensor-adam``: each agent's Adam loops over its tensors (torch's default on the
  CPU, and the shipped optimiser before it ran fused), to see what the fused Adam buys.
* ``local-gather``: a cohort's weights are built as before: every agent's parameters stacked
  once, then gathered per group with an index (instead of one stack in group order).
* ``local-compile``: every run as with ``training.compile: true`` (inductor); the first rounds
  carry the compilation, which the steady-state games/s leave out (``setup_s`` and the wall
  time do not).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from harness import clean_scratch, referential_config, timed_run  # noqa: E402

from neurocomm.platform import backends as nc_backends  # noqa: E402
from neurocomm.platform import games as nc_games  # noqa: E402
from neurocomm.platform.shard import AgentShard  # noqa: E402


def _compact(value: Any) -> Any:
    """Tensors that are views of a bigger storage replaced by their own copy (recursively)."""
    if torch.is_tensor(value):
        return value.clone() if value.untyped_storage().nbytes() > value.nbytes else value
    if isinstance(value, tuple):
        return tuple(_compact(v) for v in value)
    if isinstance(value, list):
        return [_compact(v) for v in value]
    if isinstance(value, dict):
        return {k: _compact(v) for k, v in value.items()}
    return value


def _to_numpy(value: Any) -> Any:
    if torch.is_tensor(value):
        return value.detach().clone().numpy()
    if isinstance(value, tuple | list):
        return type(value)(_to_numpy(v) for v in value)
    if isinstance(value, dict):
        return {k: _to_numpy(v) for k, v in value.items()}
    return value


def _from_numpy(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.array(value))  # a writable copy (Ray hands read-only arrays)
    if isinstance(value, tuple | list):
        return type(value)(_from_numpy(v) for v in value)
    if isinstance(value, dict):
        return {k: _from_numpy(v) for k, v in value.items()}
    return value


class CopiedWires(AgentShard):
    def produce(self, round_: int, plan: list[list[Any]]) -> Any:
        return _compact(super().produce(round_, plan))

    def listen(self, round_: int, plan: list[list[Any]], *incoming: Any) -> Any:
        return _compact(super().listen(round_, plan, *incoming))


class NumpyWires(AgentShard):
    def produce(self, round_: int, plan: list[list[Any]]) -> Any:
        return _to_numpy(super().produce(round_, plan))

    def listen(self, round_: int, plan: list[list[Any]], *incoming: Any) -> Any:
        return _to_numpy(super().listen(round_, plan, *_from_numpy(incoming)))

    def learn(self, round_: int, *feedback: Any) -> Any:
        return super().learn(round_, *_from_numpy(feedback))


@contextlib.contextmanager
def shard_class(cls: type) -> Iterator[None]:
    original = nc_backends.AgentShard
    nc_backends.AgentShard = cls
    try:
        yield
    finally:
        nc_backends.AgentShard = original


@contextlib.contextmanager
def games_once() -> Iterator[None]:
    original = nc_games.game_batch
    memo: dict[tuple[int, int, Any], Any] = {}

    def cached(cfg: Any, scenario: Any, round_: int, edge: Any) -> Any:
        key = (id(cfg), round_, edge)
        if key not in memo:
            if len(memo) > 50_000:
                memo.clear()
            memo[key] = original(cfg, scenario, round_, edge)
        return memo[key]

    nc_games.game_batch = cached
    try:
        yield
    finally:
        nc_games.game_batch = original


@contextlib.contextmanager
def unstacked() -> Iterator[None]:
    from neurocomm.agents.neuroai import NeuroAIAgent

    original = NeuroAIAgent.__dict__["stacked"]
    NeuroAIAgent.stacked = None  # the shard then computes each agent alone
    try:
        yield
    finally:
        NeuroAIAgent.stacked = original


@contextlib.contextmanager
def per_tensor_adam() -> Iterator[None]:
    from neurocomm.platform import building

    original = building.make_optimizer

    def plain(kind: str, model: Any, lr: float) -> Any:
        if kind != "adam":
            return original(kind, model, lr)
        return torch.optim.Adam(model.parameters(), lr=lr, foreach=False)

    building.make_optimizer = plain
    try:
        yield
    finally:
        building.make_optimizer = original


@contextlib.contextmanager
def gathered_weights() -> Iterator[None]:
    from neurocomm.agents import neuroai

    original = neuroai.stacked_weights

    def gather(models: Any, owners: Any) -> dict[str, torch.Tensor]:
        named = [dict(m.named_parameters()) for m in models]
        index = torch.as_tensor(list(owners), dtype=torch.long)
        return {name: torch.stack([p[name] for p in named])[index] for name in named[0]}

    neuroai.stacked_weights = gather
    try:
        yield
    finally:
        neuroai.stacked_weights = original


@contextlib.contextmanager
def compiled_rounds() -> Iterator[None]:
    from neurocomm.platform import compiling

    original = compiling.backend_for
    compiling.backend_for = lambda setting: original(True)
    try:
        yield
    finally:
        compiling.backend_for = original


RAY_CASES = [("quickstart N=4, 1 agent/actor", dict(n=4, rounds=60, agents_per_actor=1)),
             ("N=128, 64 agents/actor", dict(n=128, rounds=4, agents_per_actor=64)),
             ("N=128, 32 agents/actor", dict(n=128, rounds=4, agents_per_actor=32))]
LOCAL_CASES = [("pair", dict(n=2, rounds=300)), ("quickstart N=4", dict(n=4, rounds=100)),
               ("N=32", dict(n=32, rounds=12)), ("N=128", dict(n=128, rounds=4))]
VARIANTS = {
    "ray-copy": (RAY_CASES, "ray", lambda: shard_class(CopiedWires)),
    "ray-numpy": (RAY_CASES, "ray", lambda: shard_class(NumpyWires)),
    "local-once": (LOCAL_CASES, "local", games_once),
    "local-unstacked": (LOCAL_CASES, "local", unstacked),
    "local-per-tensor-adam": (LOCAL_CASES, "local", per_tensor_adam),
    "local-gather": (LOCAL_CASES, "local", gathered_weights),
    "local-compile": (LOCAL_CASES[:3], "local", compiled_rounds),
}
SHOWN = ("games_per_s", "games_per_cpu_s", "cores_busy", "actors_rss_mb", "driver_growth_mb")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    # local-compile only on request: each case compiles for a minute or more first
    parser.add_argument("--only", default=",".join(v for v in VARIANTS if v != "local-compile"),
                        help=f"comma-separated variants of: {', '.join(VARIANTS)}")
    parser.add_argument("--out", default=str(HERE / "results" / "what_if.json"))
    args = parser.parse_args(argv)
    chosen = [v for v in args.only.split(",") if v]
    if any(v.startswith("ray") for v in chosen):
        from neurocomm.platform.raysession import ensure_ray

        ensure_ray(None, object_store_mb=256)
    timed_run(referential_config(n=2, rounds=3))  # one-off imports
    results: list[dict[str, Any]] = []
    for variant in chosen:
        cases, backend, patch = VARIANTS[variant]
        for label, kw in cases:
            for arm in ("as shipped", variant):
                with patch() if arm == variant else contextlib.nullcontext():
                    r = timed_run(referential_config(backend=backend, **kw))
                row = {"variant": variant, "case": label, "arm": arm, **{k: r.get(k) for k in SHOWN}}
                results.append(row)
                print(json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in row.items()}),
                      flush=True)
    clean_scratch()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
