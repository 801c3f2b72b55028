"""How a run is watched and stopped: a progress bar, the stop flag that Ctrl-C (or a sweep's
or Tune's ``stop(round)``) raises between rounds, and ``training.stop_at``."""

from __future__ import annotations

import math
import signal
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any

from neurocomm.platform.config import RunConfig
from neurocomm.platform.console import show_progress
from neurocomm.platform.games import evaluating


class Progress:
    """A run's progress bar (tqdm: a bar on a terminal, a widget in a notebook, nothing in a
    log; platform/console.py): rounds done of the total, rounds/s, mean success. A resumed run
    counts from the round it continues at. Closed on leaving the ``with`` block."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total = total
        self.enabled = enabled and show_progress()
        self.bar: Any = None

    def update(self, done: int, success: float) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            from tqdm.auto import tqdm

            # mininterval: a redraw at most twice a second, whatever the round rate
            self.bar = tqdm(total=self.total, initial=done - 1, unit="round", mininterval=0.5,
                            dynamic_ncols=True, desc="run")
        self.bar.set_postfix_str(f"success {success:.3f}", refresh=False)
        self.bar.update(done - self.bar.n)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class SweepProgress:
    """The sweep's progress bar: runs done of the total (tqdm; drawn where a run's bar would
    be, platform/console.py). Each run of a sweep draws no bar of its own."""

    def __init__(self, total: int) -> None:
        self.bar: Any = None
        self.lock = threading.Lock()  # points finish in worker threads
        if show_progress():
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, unit="run", desc="sweep", mininterval=0.5, dynamic_ncols=True)

    def one_done(self, _future: Any) -> None:
        if self.bar is not None:
            with self.lock:
                self.bar.update(1)

    def __enter__(self) -> SweepProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.close()


class StopFlag:
    """Ctrl-C asks the run to stop after the current round (a second Ctrl-C interrupts).

    ``external(round)``, when given, is asked before each round is submitted: a sweep running
    this run in a worker thread (where no signal handler can be installed) stops it that way."""

    def __init__(self, external: Callable[[int], bool] | None = None) -> None:
        self.stop = False
        self.external = external
        self._previous: Any = None

    def check(self, round_: int) -> bool:
        if not self.stop and self.external is not None and self.external(round_):
            self.stop = True
        return self.stop

    def __enter__(self) -> StopFlag:
        try:
            self._previous = signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not the main thread
            self._previous = None
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.stop:
            raise KeyboardInterrupt
        self.stop = True
        sys.stderr.write("\nstopping after this round (Ctrl-C again to abort)\n")

    def __exit__(self, *exc: Any) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


# Called after every round with (rounds done, that round's metric rows, one per directed edge),
# once the rows are logged (buffered for the next Parquet part) and any checkpoint due at that
# round is written; returning True asks the run to stop after this round, as Ctrl-C does (the
# round already in flight is finished; the run ends "interrupted", with a checkpoint). After a
# recovery from lost actors, the rounds since the last checkpoint are played, and seen, again.
RoundCallback = Callable[[int, list[dict[str, Any]]], bool | None]


class StopAt:
    """``training.stop_at``: the run ends at the first evaluated round whose mean greedy success
    over the edges that played (``eval_success``) reaches the target."""

    def __init__(self, cfg: RunConfig) -> None:
        self.cfg, self.target = cfg, cfg.training.stop_at
        self.reached: tuple[int, float] | None = None  # (round, mean success) once reached

    def watches(self, round_: int) -> bool:
        """Whether ``round_`` may end the run: no later round is submitted before its report is
        in, so that the run stops at that round, not one later."""
        return self.target is not None and evaluating(self.cfg, round_)

    def check(self, round_: int, rows: list[dict[str, Any]]) -> bool:
        values = [r["eval_success"] for r in rows if not math.isnan(r["eval_success"])]
        if self.target is None or not values or self.reached is not None:
            return False
        mean = sum(values) / len(values)
        if mean >= self.target:
            self.reached = (round_, mean)
        return self.reached is not None

    @property
    def reason(self) -> str | None:
        if self.reached is None:
            return None
        round_, mean = self.reached
        return f"reached stop_at {self.target:g} at round {round_} (mean greedy success {mean:.3f})"


def chain_callbacks(callbacks: Iterable[RoundCallback]) -> RoundCallback | None:
    """One RoundCallback that calls each of ``callbacks`` in order, every one every round; it
    asks the run to stop when any of them does. None when there are none."""
    hooks = list(callbacks)
    if len(hooks) <= 1:
        return hooks[0] if hooks else None

    def each(done: int, rows: list[dict[str, Any]]) -> bool:
        wants_stop = False
        for hook in hooks:
            wants_stop = bool(hook(done, rows)) or wants_stop
        return wants_stop

    return each
