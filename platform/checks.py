"""A conformance kit for plug-ins (after PettingZoo's ``api_test``): does a model, a scenario or
a learning rule keep the contracts of platform/interfaces.py?

Each check plays tiny rounds with the registered partners (every registered scenario and rule
for a model, and so on) and raises :class:`CheckFailed` naming what broke:

* shapes and dtypes of everything the platform reads;
* determinism: the same seed gives bit-identical numbers;
* independence from grouping: two edges computed in one grouped call give what each gives alone
  (outputs and gradients), also through the ``stacked`` hook when the model has one;
* gradient flow: every trainable parameter gets a finite gradient from some scenario and rule;
* pickling (every Ray actor argument is pickled) and checkpoint round-trips
  (``torch.save``/``torch.load(weights_only=True)`` of the state dict).

``neurocomm check NAME|pkg.mod:Class`` runs the checks for whatever NAME resolves to.
"""

from __future__ import annotations

import io
import math
import pickle
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from neurocomm.platform import registry
from neurocomm.platform.games import GroupNoise
from neurocomm.platform.interfaces import (
    Batch,
    ChannelSpec,
    Decision,
    Feedback,
    Heard,
    Utterance,
    check_model_class,
    is_standalone_scenario,
    scenario_splits,
    stacker,
)

CHANNEL = ChannelSpec(vocab_size=6, max_len=3)
ROWS = 4
# float32: grouped and one-by-one calls may round differently in the last bits
TOLERANCE = dict(rtol=1e-4, atol=1e-5)


class CheckFailed(AssertionError):
    """A plug-in broke a contract; the message names the check and the combination played."""


def _expect(ok: bool, what: str) -> None:
    if not ok:
        raise CheckFailed(what)


def _build(group: str, cls: Any) -> Any:
    params = cls.Params()
    check = getattr(params, "check", None)
    if callable(check):
        check()
    return cls(params)


def _partners(group: str) -> Iterator[tuple[str, Any]]:
    for name in registry.names(group):
        cls = registry.resolve(group, name)
        if group == "scenarios" and is_standalone_scenario(cls):
            continue
        yield name, cls


# ---------------------------------------------------------------------------- one tiny round


def _models(model_cls: Any, scenario: Any, n: int, seed: int, params: Any = None) -> list[torch.nn.Module]:
    out = []
    for i in range(n):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(1000 * seed + i)
            out.append(model_cls(model_cls.Params() if params is None else params, game=scenario.spec,
                                 channel=CHANNEL))
    return out


def _plays(params: Any, scenario: Any) -> bool:
    """Whether a model with ``params`` accepts the scenario's game (``Params.check_game``)."""
    check_game = getattr(params, "check_game", None)
    if not callable(check_game):
        return True
    try:
        check_game(scenario.spec)
    except ValueError:
        return False
    return True


def _noise(seed: int, edges: list[int]) -> GroupNoise:
    return GroupNoise([torch.Generator().manual_seed(1000 * seed + e) for e in edges])


def _one(models: list[Any], owners: list[int]) -> Any:
    """The model computing these groups in one call: the owner itself, or a stacked one."""
    if len(set(owners)) == 1:
        return models[owners[0]]
    hook = stacker(models[0])
    return hook(models, owners) if hook else None


def _round(models: list[Any], scenario: Any, rule: Any, edges: list[tuple[int, int]],
           together: bool, seed: int = 0) -> dict[str, Any] | None:
    """Edges ``i``: ``edges[i] = (speaker, listener)``; all in one grouped call per role, or one
    call per edge. Returns losses per edge and every model's gradients (None: cannot group)."""
    for m in models:
        m.zero_grad(set_to_none=True)
    batches = [scenario.sample(np.random.default_rng([seed, i]), ROWS, "train")
               for i in range(len(edges))]
    parts = [list(range(len(edges)))] if together else [[i] for i in range(len(edges))]
    listener_losses: list[float] = []
    speaker_losses: list[float] = []
    for part in parts:
        speaker = _one(models, [edges[i][0] for i in part])
        listener = _one(models, [edges[i][1] for i in part])
        if speaker is None or listener is None:
            return None
        batch = Batch.concat([batches[i] for i in part])
        utt = rule.speak(speaker, torch.from_numpy(batch.speaker_obs), CHANNEL, _noise(seed, part))
        _check_utterance(utt, len(batch))
        heard = rule.listen(listener, scenario, utt.wire, batch, CHANNEL.vocab_size, groups=len(part))
        _check_heard(heard, len(batch), len(part))
        states: list[dict[str, Any]] = [{} for _ in part]
        losses = rule.learn(speaker, utt.kept, heard.feedback, states)
        _expect(len(losses) == len(part), "learn: must return one loss per group")
        listener_losses += heard.losses
        speaker_losses += [float(v) for v in losses]
    grads = [{n: None if p.grad is None else p.grad.detach().clone() for n, p in m.named_parameters()}
             for m in models]
    return {"listener": listener_losses, "speaker": speaker_losses, "grads": grads}


def _check_utterance(utt: Any, rows: int) -> None:
    _expect(isinstance(utt, Utterance), "speak: must return an interfaces.Utterance")
    _expect(utt.tokens.shape == (rows, CHANNEL.max_len) and utt.tokens.dtype == torch.int64,
            f"speak: tokens must be ({rows}, {CHANNEL.max_len}) int64, got {tuple(utt.tokens.shape)} "
            f"{utt.tokens.dtype}")
    _expect(utt.wire.shape[0] == rows, "speak: wire must have one row per game")
    in_range = (utt.lengths >= 1) & (utt.lengths <= CHANNEL.max_len)
    _expect(utt.lengths.shape == (rows,) and bool(in_range.all()),
            "speak: lengths must be (rows,) in 1..max_len")
    _expect(utt.entropy.shape == (rows,) and bool(torch.isfinite(utt.entropy).all()),
            "speak: entropy must be (rows,) and finite")


def _check_heard(heard: Any, rows: int, groups: int) -> None:
    _expect(isinstance(heard, Heard), "listen: must return an interfaces.Heard")
    _expect(len(heard.losses) == groups and len(heard.feedback) == groups,
            "listen: one loss and one feedback per group")
    _expect(all(isinstance(f, Feedback) for f in heard.feedback),
            "listen: feedback must be interfaces.Feedback")
    _expect(all(math.isfinite(v) for v in heard.losses), "listen: losses must be finite")
    _check_decision(heard.decision, rows, "listen")


def _check_decision(decision: Any, rows: int, where: str) -> None:
    _expect(isinstance(decision, Decision), f"{where}: the decision must be an interfaces.Decision")
    steps = decision.loss.shape[1] if decision.loss.dim() == 2 else -1
    for name in ("loss", "reward", "success"):
        value = getattr(decision, name)
        _expect(torch.is_tensor(value) and tuple(value.shape) == (rows, steps),
                f"{where}: Decision.{name} must be (rows, T)")
    _expect(tuple(decision.choice.shape[:2]) == (rows, steps),
            f"{where}: Decision.choice must be (rows, T, ...)")
    reward, success = decision.reward, decision.success
    _expect(bool(((reward >= 0) & (reward <= 1)).all()), f"{where}: rewards must be in [0, 1]")
    _expect(bool(((success == 0) | (success == 1)).all()), f"{where}: success must be 0 or 1")


def _close(a: Any, b: Any, what: str) -> None:
    try:
        torch.testing.assert_close(a, b, **TOLERANCE)
    except AssertionError as err:
        raise CheckFailed(f"{what}: {str(err).splitlines()[0]}") from None


# ---------------------------------------------------------------------------- the checks


def _play_checks(model_cls: Any, scenario: Any, rule: Any, used: set[str], params: Any = None) -> None:
    a = _round(_models(model_cls, scenario, 2, 0, params), scenario, rule, [(0, 1), (1, 0)], together=False)
    again = _round(_models(model_cls, scenario, 2, 0, params), scenario, rule, [(0, 1), (1, 0)],
                   together=False)
    assert a is not None and again is not None
    _expect(a["listener"] == again["listener"] and a["speaker"] == again["speaker"],
            "determinism: the same seed gave different losses")
    for g1, g2 in zip(a["grads"], again["grads"]):
        same = all((x is None and y is None) or (x is not None and y is not None and torch.equal(x, y))
                   for x, y in zip(g1.values(), g2.values()))
        _expect(same, "determinism: the same seed gave different gradients")
    for grads in a["grads"]:
        for name, g in grads.items():
            if g is not None:
                _expect(bool(torch.isfinite(g).all()), f"gradient flow: {name} has a non-finite gradient")
                if g.abs().sum() > 0:
                    used.add(name)
    # one agent's two edges in one grouped call, and (with the stacked hook) two agents' edges
    for edges in ([(0, 1), (0, 1)], [(0, 1), (1, 0)]):
        models = _models(model_cls, scenario, 2, 1, params)
        alone = _round(models, scenario, rule, edges, together=False)
        together = _round(models, scenario, rule, edges, together=True)
        if together is None:
            continue
        assert alone is not None
        _close(torch.tensor(together["listener"]), torch.tensor(alone["listener"]),
               f"grouping {edges}: listener losses")
        _close(torch.tensor(together["speaker"]), torch.tensor(alone["speaker"]),
               f"grouping {edges}: speaker losses")
        for m, (gt, ga) in enumerate(zip(together["grads"], alone["grads"])):
            named = dict(models[m].named_parameters())
            for name in ga:
                zero = torch.zeros_like(named[name])
                got = zero if gt[name] is None else gt[name]
                want = zero if ga[name] is None else ga[name]
                _close(got, want, f"grouping {edges}: gradient of agent {m} {name}")


def _round_trips(model_cls: Any, scenario: Any, params: Any = None) -> None:
    (model,) = _models(model_cls, scenario, 1, 2, params)
    obs = torch.from_numpy(scenario.sample(np.random.default_rng(0), ROWS).speaker_obs)
    with torch.no_grad():
        want = model.perceive(obs)
        copy = pickle.loads(pickle.dumps(model))
        _expect(torch.equal(copy.perceive(obs), want), "pickling: a pickled model computes differently")
        buffer = io.BytesIO()
        torch.save(model.state_dict(), buffer)
        buffer.seek(0)
        (fresh,) = _models(model_cls, scenario, 1, 3, params)
        fresh.load_state_dict(torch.load(buffer, weights_only=True))
        _expect(torch.equal(fresh.perceive(obs), want), "checkpoint: a reloaded model computes differently")


def _scenario_shapes(scenario: Any) -> None:
    spec = scenario.spec
    for split in scenario_splits(scenario):
        a = scenario.sample(np.random.default_rng(5), ROWS, split)
        b = scenario.sample(np.random.default_rng(5), ROWS, split)
        _expect(isinstance(a, Batch) and len(a) == ROWS,
                f"sample({split!r}): must return a Batch of {ROWS} games")
        _expect(a.speaker_obs.shape == (ROWS, spec.obs_dim) and a.speaker_obs.dtype == np.float32,
                f"sample({split!r}): speaker_obs must be ({ROWS}, obs_dim) float32")
        _expect(a.target.shape == (ROWS, spec.n_attributes) and a.target.dtype == np.int64,
                f"sample({split!r}): target must be ({ROWS}, n_attributes) int64")
        _expect(all(v.shape[0] == ROWS for v in a.extra.values()),
                f"sample({split!r}): extra arrays need one row per game")
        _expect(np.array_equal(a.speaker_obs, b.speaker_obs) and np.array_equal(a.target, b.target)
                and all(np.array_equal(a.extra[k], b.extra[k]) for k in a.extra),
                f"determinism: sample({split!r}) must depend on the generator alone")
    _expect(pickle.loads(pickle.dumps(scenario)).spec == spec,
            "pickling: the scenario does not survive pickling")


def check_agent_model(model_cls: Any, params: Any = None) -> list[str]:
    """Check an agent model class against every registered scenario and rule, built with
    ``params`` (default: its default ``Params()``); scenarios whose game these params refuse
    (``Params.check_game``) are left out, and with them the check that every parameter is
    trained (one that only a left-out game trains cannot be told from a dead one)."""
    why = check_model_class(model_cls)
    _expect(why is None, f"interface: {why}")
    try:
        hash(model_cls.Params() if params is None else params)
    except TypeError:
        raise CheckFailed("params: Params must be hashable (a frozen dataclass; tuples, not lists): "
                          "agents with equal params are computed together") from None
    played, used = [], set()
    every = [(name, _build("scenarios", cls)) for name, cls in _partners("scenarios")]
    scenarios = [(name, scenario) for name, scenario in every if _plays(params, scenario)]
    _expect(bool(scenarios), "params: no registered scenario has a game these params accept")
    for s_name, scenario in scenarios:
        _round_trips(model_cls, scenario, params)
        for r_name, r_cls in _partners("rules"):
            _with(f"{s_name} x {r_name}", model_cls, scenario, _build("rules", r_cls), used, params)
            played.append(f"{s_name} x {r_name}")
    if len(scenarios) == len(every):
        (model,) = _models(model_cls, scenarios[0][1], 1, 0, params)
        unused = [n for n, p in model.named_parameters() if p.requires_grad and n not in used]
        _expect(not unused, f"gradient flow: no scenario or rule trains {', '.join(unused)}")
    return played


def check_scenario(scenario_cls: Any) -> list[str]:
    """Check a scenario class with every registered model and rule (or, for a standalone
    scenario, its simulation and records)."""
    scenario = _build("scenarios", scenario_cls)
    if is_standalone_scenario(scenario_cls):
        return [_check_standalone(scenario)]
    _scenario_shapes(scenario)
    played: list[str] = []
    for m_name, m_cls in _partners("models"):
        for r_name, r_cls in _partners("rules"):
            _with(f"{m_name} x {r_name}", m_cls, scenario, _build("rules", r_cls), set())
            played.append(f"{m_name} x {r_name}")
    return played


def check_rule(rule_cls: Any) -> list[str]:
    """Check a learning rule class with every registered model and scenario."""
    rule = _build("rules", rule_cls)
    _expect(pickle.loads(pickle.dumps(rule)).params == rule.params,
            "pickling: the rule does not survive pickling")
    played: list[str] = []
    for m_name, m_cls in _partners("models"):
        for s_name, s_cls in _partners("scenarios"):
            _with(f"{m_name} x {s_name}", m_cls, _build("scenarios", s_cls), rule, set())
            played.append(f"{m_name} x {s_name}")
    return played


def _check_standalone(scenario: Any) -> str:
    import pyarrow as pa

    schema = scenario.record_schema()
    _expect(isinstance(schema, pa.Schema), "record_schema: must return a pyarrow.Schema")
    edges = np.array([[i, (i + 1) % 12] for i in range(12)], dtype=np.int64)

    def play() -> tuple[dict[str, Any], list[dict[str, Any]]]:
        records: list[dict[str, Any]] = []
        copy = pickle.loads(pickle.dumps(scenario))
        out = copy.simulate_population(12, edges, np.random.default_rng(0), records.append)
        return out, records

    (out, records), (again, records_again) = play(), play()
    pa.Table.from_pylist(records, schema=schema)  # raises on a record that does not fit
    timeless = [{k: v for k, v in o.items() if k != "wall_time"} for o in (out, again)]
    _expect(timeless[0] == timeless[1] and records == records_again,
            "determinism: the same seed gave a different simulation")
    return "standalone simulation on a 12-ring"


def _with(label: str, model_cls: Any, scenario: Any, rule: Any, used: set[str], params: Any = None) -> None:
    try:
        _play_checks(model_cls, scenario, rule, used, params)
    except CheckFailed as err:
        raise CheckFailed(f"{label}: {err}") from None


CHECKS = {"models": check_agent_model, "scenarios": check_scenario, "rules": check_rule}


def _kinds(cls: Any) -> list[str]:
    """Which interfaces an imported class offers (a registered name says it by its group)."""
    kinds = []
    if check_model_class(cls) is None:
        kinds.append("models")
    if all(callable(getattr(cls, m, None)) for m in ("sample", "decide")) or is_standalone_scenario(cls):
        kinds.append("scenarios")
    if all(callable(getattr(cls, m, None)) for m in ("speak", "listen", "learn", "evaluate")):
        kinds.append("rules")
    return kinds


def check(name: str) -> list[tuple[str, list[str]]]:
    """Run the checks for what ``name`` is → [(group, combinations played)]. LookupError when it
    names nothing; CheckFailed when an import path names a class that fits no interface."""
    if ":" in name:
        cls = registry.resolve("models", name)  # an import path resolves the same in every group
        kinds = _kinds(cls)
        _expect(bool(kinds), f"interface: {name} is no agent model (perceive, production_start, "
                             "production_step, comprehend, reconstruct), scenario (sample, decide) "
                             "or learning rule (speak, listen, learn, evaluate)")
        return [(group, CHECKS[group](cls)) for group in kinds]
    found = [g for g in CHECKS if name in registry.names(g)]
    if not found:
        known = "; ".join(f"{g}: {', '.join(registry.names(g))}" for g in CHECKS)
        raise LookupError(f"unknown name {name!r}; allowed: {known} (or an import path pkg.mod:Class)")
    return [(group, CHECKS[group](registry.resolve(group, name))) for group in found]
