"""Population mechanisms for the replications: partial turnover by module, the imitation phase
of iterated learning, partitioned training, and the transmission (learnability) test.

Real torch training throughout; real Ray actors where a test claims local == Ray."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from neurocomm.agents.neuroai import NeuroAIAgent
from neurocomm.platform import imitation
from neurocomm.platform.analysis.intelligibility import load_population
from neurocomm.platform.analysis.transmission import learnability, learning_curve, transmission_curve
from neurocomm.platform.backends import LocalBackend
from neurocomm.platform.cli import main
from neurocomm.platform.config import RunConfig, build_config
from neurocomm.platform.interfaces import Batch, ChannelSpec
from neurocomm.platform.metrics import TIMING_COLUMNS
from neurocomm.platform.rundir import RunDir
from neurocomm.platform.runner import run
from neurocomm.platform.shard import AgentShard, build_agent
from tests.conftest import tiny_config


def metrics(run_dir: Path) -> pd.DataFrame:
    df = pd.read_parquet(run_dir / "metrics.parquet").drop(columns=list(TIMING_COLUMNS))
    return df.sort_values(["round", "speaker", "listener"]).reset_index(drop=True)


def config(tmp_path: Path, turnover: dict[str, Any] | None = None, **sections: Any) -> RunConfig:
    data = tiny_config(tmp_path, **sections)
    if turnover is not None:
        data["population"]["turnover"] = turnover
    return build_config(data)


# ------------------------------------------------------------------ validation


@pytest.mark.parametrize("turnover, path, expect", [
    ({"every": 2, "fraction": 0.5, "modules": ["listener"]}, "population.turnover.modules",
     "allowed: perception, production, comprehension, readout"),
    ({"every": 2, "fraction": 0.5, "imitation_steps": -1}, "population.turnover.imitation_steps", ">= 0"),
    ({"every": 2, "fraction": 0.5, "imitation_batch": 0}, "population.turnover.imitation_batch", ">= 1"),
])
def test_bad_turnover_fields_are_one_line_errors(turnover: dict[str, Any], path: str, expect: str,
                                                 tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import yaml

    data = tiny_config(tmp_path)
    data["population"]["turnover"] = turnover
    cfg_path = tmp_path / "cfg.yaml"
    cfg_path.write_text(yaml.safe_dump(data))
    code = main(["validate", str(cfg_path)])
    line = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in line and "Traceback" not in line
    assert str(cfg_path) in line and path in line and expect in line, line


class RenamedAgent(NeuroAIAgent):
    """A model whose comprehension module goes by another name (a partial reset cannot find it)."""

    def __init__(self, params: NeuroAIAgent.Params, *, game: Any, channel: Any) -> None:
        super().__init__(params, game=game, channel=channel)
        self.decoder = self.comprehension
        del self.comprehension

    def comprehend(self, message: torch.Tensor) -> torch.Tensor:
        return self.decoder(message)


def test_a_model_without_the_reset_module_is_refused_before_the_run(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import yaml

    data = tiny_config(tmp_path)
    data["population"]["agent"]["model"] = "tests.test_replication_mechanisms:RenamedAgent"
    data["population"]["turnover"] = {"every": 2, "fraction": 0.5, "modules": ["comprehension"]}
    cfg_path = tmp_path / "cfg.yaml"
    cfg_path.write_text(yaml.safe_dump(data))
    code = main(["run", str(cfg_path)])
    line = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in line and "population.turnover.modules" in line
    assert "no module 'comprehension'" in line and "decoder" in line, line
    assert not (tmp_path / "runs").exists()
    data["population"]["turnover"]["modules"] = ["production"]
    cfg_path.write_text(yaml.safe_dump(data))
    assert main(["validate", str(cfg_path)]) == 0


# ------------------------------------------------------------------ partial resets


def _trained_backend(cfg: RunConfig, rounds: int = 3) -> LocalBackend:
    backend = LocalBackend(cfg, 2)
    for r in range(rounds):
        backend.submit_round(r, [(0, 1), (1, 0)])
    return backend


@pytest.mark.parametrize("modules", [["comprehension"], ["production", "readout"]])
def test_partial_reset_resets_exactly_the_named_modules(modules: list[str], tmp_path: Path) -> None:
    # reconstruction: every module, the readout too, is trained and has optimiser state
    cfg = config(tmp_path, {"at_rounds": [3], "agents": [1], "modules": modules},
                 scenario={"name": "reconstruction", "params": {"n_attributes": 2, "n_values": 3}})
    backend = _trained_backend(cfg)
    slot = backend.shard.agents[1]
    params = dict(slot.model.named_parameters())
    before = {k: v.detach().clone() for k, v in params.items()}
    opt_before = {k: {s: t.clone() for s, t in slot.optimizer.state[p].items()} for k, p in params.items()}
    other = {k: v.clone() for k, v in backend.shard.agents[0].model.state_dict().items()}
    assert all(opt_before[k] for k in params)  # trained: every parameter has Adam state

    backend.replace_agents({1: 1})
    slot = backend.shard.agents[1]
    fresh = build_agent(cfg, 1, backend.shard.scenario, backend.shard.channel, generation=1)
    fresh_params = dict(fresh.model.named_parameters())
    reset = {k for k in params if k.split(".")[0] in modules}
    assert reset and reset != set(params)
    for name, p in slot.model.named_parameters():
        if name in reset:
            assert torch.equal(p, fresh_params[name]), name  # a fresh draw of generation 1
            assert not torch.equal(p, before[name]), name
            assert p not in slot.optimizer.state or not slot.optimizer.state[p], name
        else:
            assert torch.equal(p, before[name]), name  # kept bit for bit, with its Adam state
            for key, value in opt_before[name].items():
                assert torch.equal(slot.optimizer.state[p][key], value), (name, key)
    assert slot.generation == 1
    for k, v in backend.shard.agents[0].model.state_dict().items():
        assert torch.equal(v, other[k])
    # the reset parameters are trained again, from a fresh optimiser state
    backend.submit_round(3, [(0, 1), (1, 0)])
    step = {float(slot.optimizer.state[p]["step"]) for n, p in slot.model.named_parameters()}
    assert step == {1.0, 4.0}


def _resume_from(result_dir: Path, at: int, tmp_path: Path) -> Path:
    """A copy of a finished run cut back to its checkpoint at round ``at``, then resumed."""
    copy = tmp_path / "resumed"
    shutil.copytree(result_dir, copy)
    run_dir = RunDir(copy)
    for done, path in run_dir.checkpoints():
        if done > at:
            path.unlink()
    run(run_dir.config(), resume=run_dir)
    return copy


@pytest.mark.parametrize("turnover", [
    {"every": 3, "fraction": 0.5, "modules": ["comprehension"]},
    {"at_rounds": [3, 5], "agents": [1], "imitation_steps": 6, "imitation_batch": 8},
    {"at_rounds": [3], "agents": [0], "modules": ["comprehension", "readout"], "imitation_steps": 4},
], ids=["partial", "imitation", "partial+imitation"])
@pytest.mark.parametrize("at", [2, 4])
def test_resume_across_partial_reset_and_imitation_is_exact(turnover: dict[str, Any], at: int,
                                                            tmp_path: Path) -> None:
    cfg = config(tmp_path, turnover, training={"rounds": 7, "batch_size": 8},
                 logging={"dir": str(tmp_path / "runs"), "progress": False, "checkpoint_every": 2,
                          "messages_every": 1, "chunk_rounds": 2, "eval_every": 2})
    whole = run(cfg).run_dir
    resumed = _resume_from(whole, at, tmp_path)
    pd.testing.assert_frame_equal(metrics(whole), metrics(resumed), check_exact=True)
    a, b = RunDir(whole).load_checkpoint(7)["agents"], RunDir(resumed).load_checkpoint(7)["agents"]
    for i in a:
        assert a[i]["generation"] == b[i]["generation"]
        for k, v in a[i]["model"].items():
            assert torch.equal(v, b[i]["model"][k])
    turns = [e for e in RunDir(resumed).events() if e["event"] == "turnover"]
    assert turns and all(e["modules"] == (turnover.get("modules") or "all") for e in turns)


# ------------------------------------------------------------------ imitation


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two agents that learned a language in the referential game (3 attributes x 4 values)."""
    tmp = tmp_path_factory.mktemp("trained")
    data = tiny_config(
        tmp, population={"vocab_size": 10, "max_len": 3,
                         "agent": {"lr": 0.005, "params": {"hidden_size": 32, "embed_size": 16,
                                                           "perception_layers": [32]}}},
        scenario={"name": "referential", "params": {"n_attributes": 3, "n_values": 4, "n_distractors": 3}},
        training={"rounds": 500, "batch_size": 64, "rule": "gumbel"},
        logging={"dir": str(tmp / "runs"), "progress": False, "messages_every": 0, "eval_every": 50,
                 "checkpoint_every": 250},
    )
    return run(build_config(data)).run_dir


def _all_objects(n_attributes: int, n_values: int) -> torch.Tensor:
    from neurocomm.scenarios.objects import objects_from_ids, one_hot_objects

    ids = np.arange(n_values**n_attributes)
    return torch.from_numpy(one_hot_objects(objects_from_ids(ids, n_attributes, n_values), n_values))


def test_imitation_transfers_the_language(trained_run: Path) -> None:
    pop = load_population(RunDir(trained_run))
    teacher = pop.models[0]
    objects = _all_objects(3, 4)
    tokens, _ = imitation.greedy_messages(pop.rule, teacher, objects, pop.channel, torch.Generator())
    said = [tuple(t) for t in tokens.tolist()]
    assert len(set(said)) >= 6  # a language worth imitating: several distinct messages
    # chance: a learner that says the teacher's messages with the teacher's frequencies
    counts = np.array(list(pd.Series(said).value_counts()))
    chance = float(((counts / counts.sum()) ** 2).sum())
    newcomer = build_agent(pop.config, 1, pop.scenario, pop.channel, generation=1)
    before = imitation.message_agreement(pop.rule, newcomer.model, teacher, objects, pop.channel)
    history = imitation.imitate(newcomer.model, newcomer.optimizer, teacher, rule=pop.rule,
                                scenario=pop.scenario, channel=pop.channel, steps=200, batch_size=64,
                                seed=0, key=(1, 1))
    after = imitation.message_agreement(pop.rule, newcomer.model, teacher, objects, pop.channel)
    assert after >= 0.9 and after > chance + 0.5 and before < chance + 0.2, (before, after, chance)
    assert history[-1].production_loss < 0.1 * history[0].production_loss
    # the newcomer also understands the teacher: it picks the right object among candidates
    from neurocomm.platform.seeding import rng

    batch = pop.scenario.sample(rng(123), 256, "eval")
    obs = torch.from_numpy(batch.speaker_obs)
    tokens, lengths = imitation.greedy_messages(pop.rule, teacher, obs, pop.channel, torch.Generator())
    with torch.no_grad():
        decision = imitation.decision_on(newcomer.model, pop.scenario, tokens, lengths, batch, 10)
    teacher_self = imitation.decision_on(teacher, pop.scenario, tokens, lengths, batch, 10)
    assert float(decision.success.mean()) > 0.25 + 0.3, float(decision.success.mean())
    assert float(decision.success.mean()) >= float(teacher_self.success.mean()) - 0.15


def test_imitation_in_a_run_starts_from_the_predecessor(tmp_path: Path) -> None:
    """The newcomer of a run imitates the agent it replaces: its greedy messages agree with the
    predecessor's on most objects, where a newcomer without imitation agrees by chance."""
    objects = _all_objects(2, 3)
    agreement = {}
    for steps in (0, 150):
        cfg = config(tmp_path / str(steps), {"at_rounds": [60], "agents": [1], "imitation_steps": steps},
                     training={"rounds": 60, "batch_size": 32, "rule": "gumbel"})
        backend = LocalBackend(cfg, 2)
        shard = backend.shard
        for r in range(60):
            backend.submit_round(r, [(0, 1), (1, 0)])
        predecessor = {k: v.clone() for k, v in shard.agents[1].model.state_dict().items()}
        teacher = build_agent(cfg, 1, shard.scenario, shard.channel)
        teacher.model.load_state_dict(predecessor)
        shard.replace_agents({1: 1})
        agreement[steps] = imitation.message_agreement(shard.rule, shard.agents[1].model,
                                                       teacher.model, objects, shard.channel)
    assert agreement[150] >= 0.8 and agreement[150] > agreement[0] + 0.4, agreement


# ------------------------------------------------------------------ partitioned training


def _production_grad_hooks(model: torch.nn.Module) -> list[str]:
    seen: list[str] = []
    for name, p in model.production.named_parameters():
        p.register_hook(lambda g, name=name: seen.append(name) if g.abs().sum() > 0 else None)
    return seen


@pytest.mark.parametrize("rule", ["gumbel", "reinforce"])
def test_partitioned_cross_edges_send_no_gradient_to_the_speaker(rule: str, tmp_path: Path) -> None:
    for partitioned in (False, True):
        cfg = config(tmp_path, training={"rounds": 2, "batch_size": 8, "rule": rule,
                                         "partitioned": partitioned})
        backend = LocalBackend(cfg, 2)
        speaker, listener = backend.shard.agents[0], backend.shard.agents[1]
        seen = _production_grad_hooks(speaker.model)
        before = {k: v.clone() for k, v in speaker.model.state_dict().items()}
        heard = {k: v.clone() for k, v in listener.model.comprehension.state_dict().items()}
        backend.submit_round(0, [(0, 1)])  # agent 0 only speaks, agent 1 only listens
        after = speaker.model.state_dict()
        assert bool(seen) != partitioned
        assert all(torch.equal(before[k], after[k]) for k in before) == partitioned
        now = listener.model.comprehension.state_dict()
        assert any(not torch.equal(v, heard[k]) for k, v in now.items())  # the listener learns


def test_partitioned_speaker_learns_from_self_play_only(tmp_path: Path) -> None:
    """Agent 0's production after a partitioned round of all edges equals its production after
    a round of its self-play edge alone: cross edges add nothing to the speaker."""
    cfg = config(tmp_path, topology={"generator": "complete_graph", "params": {"n": 3}},
                 training={"rounds": 2, "batch_size": 8, "partitioned": True})
    full, alone = LocalBackend(cfg, 3), LocalBackend(cfg, 3)
    everything = sorted({(i, j) for i in range(3) for j in range(3)})
    full.submit_round(0, everything)
    alone.submit_round(0, [(0, 0)])
    a = full.shard.agents[0].model.production.state_dict()
    b = alone.shard.agents[0].model.production.state_dict()
    start = build_agent(cfg, 0, full.shard.scenario, full.shard.channel).model.production.state_dict()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k
    assert any(not torch.equal(a[k], start[k]) for k in a)


@pytest.mark.parametrize("rule", ["gumbel", "reinforce"])
def test_partitioned_local_and_ray_give_identical_metrics(rule: str, tmp_path: Path,
                                                          ray_session: object) -> None:
    """Partitioned training with a partial reset and an imitation phase mid-run: the same
    numbers in process and on Ray actors (one agent per actor, and two)."""
    data = tiny_config(tmp_path, topology={"generator": "cycle_graph", "params": {"n": 3}},
                       training={"rounds": 5, "batch_size": 8, "rule": rule, "partitioned": True})
    data["population"]["turnover"] = {"at_rounds": [2], "agents": [1], "modules": ["comprehension"],
                                      "imitation_steps": 3}
    local = metrics(run(build_config(data)).run_dir)
    assert len(local) == 5 * (6 + 3)
    selfplay = local[local["speaker"] == local["listener"]]
    assert sorted(set(selfplay["speaker"])) == [0, 1, 2] and selfplay["speaker_loss"].notna().all()
    assert local[local["speaker"] != local["listener"]]["speaker_loss"].isna().all()
    for per_actor in (1, 2):
        remote = run(build_config({**data, "runtime": {"backend": "ray", "agents_per_actor": per_actor,
                                                        "agent_resources": {"num_cpus": 0.1}}}))
        pd.testing.assert_frame_equal(local, metrics(remote.run_dir))


# ------------------------------------------------------------------ transmission test


def _reconstruction(tmp_path: Path) -> RunConfig:
    return config(tmp_path, population={"vocab_size": 6, "max_len": 3,
                                        "agent": {"lr": 0.005, "params": {"hidden_size": 32, "embed_size": 16,
                                                                          "perception_layers": [32]}}},
                  scenario={"name": "reconstruction", "params": {"n_attributes": 3, "n_values": 4,
                                                                 "heldout_fraction": 0.0}},
                  training={"batch_size": 32})


def _code(objects: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """One symbol per attribute, in attribute order: value v of any attribute is symbol v + 1."""
    tokens = torch.from_numpy(objects + 1).long()
    return tokens, torch.full((len(objects),), objects.shape[1], dtype=torch.long)


def compositional(_: int, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    return _code(batch.target)


def holistic(seed: int) -> Any:
    """A random bijection of objects onto the same 64 messages: no part means anything alone."""
    from neurocomm.scenarios.objects import object_ids, objects_from_ids

    perm = np.random.default_rng(seed).permutation(64)

    def language(_: int, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        return _code(objects_from_ids(perm[object_ids(batch.target, 4)], 3, 4))

    return language


def constant(_: int, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    return _code(np.zeros_like(batch.target))


def test_compositional_language_is_learned_faster_than_a_holistic_one(tmp_path: Path) -> None:
    cfg = _reconstruction(tmp_path)
    comp = transmission_curve(cfg, compositional, listeners=3, steps=200)
    holi = [transmission_curve(cfg, holistic(s), listeners=3, steps=200) for s in (0, 1)]
    assert comp.shape == (200,)
    for h in holi:
        assert comp.mean() > h.mean() + 0.15, (comp.mean(), h.mean())
    assert comp[-20:].mean() > 0.8
    # deterministic from the seed
    np.testing.assert_array_equal(comp, transmission_curve(cfg, compositional, listeners=3, steps=200))


@pytest.mark.parametrize("scenario, chance", [
    ({"name": "reconstruction", "params": {"n_attributes": 3, "n_values": 4, "heldout_fraction": 0.0}},
     1 / 64),
    ({"name": "referential", "params": {"n_attributes": 3, "n_values": 4, "n_distractors": 3}}, 0.25),
])
def test_a_constant_speaker_cannot_be_learned_above_chance(scenario: dict[str, Any], chance: float,
                                                           tmp_path: Path) -> None:
    cfg = config(tmp_path, population={"vocab_size": 6, "max_len": 3}, scenario=scenario,
                 training={"batch_size": 32})
    curve = transmission_curve(cfg, constant, listeners=3, steps=150)
    informative = transmission_curve(cfg, compositional, listeners=3, steps=150)
    assert abs(curve[50:].mean() - chance) < 0.05, (curve[50:].mean(), chance)
    assert informative[50:].mean() > chance + 0.3


def test_learnability_of_a_trained_run_beats_its_untrained_speakers(trained_run: Path) -> None:
    trained = learning_curve(trained_run, listeners=2, steps=100)
    untrained = learnability(trained_run, checkpoint=0, listeners=2, steps=100)
    assert trained.shape == (100,)
    assert trained.mean() > untrained + 0.15, (trained.mean(), untrained)
    assert learnability(trained_run, listeners=2, steps=100) == pytest.approx(float(trained.mean()))
    one = learnability(trained_run, listeners=2, steps=100, speaker=1)
    assert 0.25 < one <= 1.0
    with pytest.raises(ValueError, match="speaker 7"):
        learnability(trained_run, steps=2, speaker=7)


def test_partial_reset_names_the_model_module(tmp_path: Path) -> None:
    from neurocomm.platform.partial_reset import module_prefixes

    cfg = config(tmp_path)
    slot = build_agent(cfg, 0, AgentShard(cfg, [0]).scenario, ChannelSpec(6, 2))
    assert module_prefixes(slot.model, ["readout"]) == ("readout.",)
    with pytest.raises(ValueError, match="no module 'speaker'"):
        module_prefixes(slot.model, ["speaker"])


# ------------------------------------------------------------------ shipped configs


@pytest.mark.parametrize("name, overrides", [
    ("ease_of_teaching", ["population.turnover.every=2"]),
    ("iterated_learning", ["population.turnover.every=2", "population.turnover.imitation_steps=3"]),
    ("partitioned", []),
])
def test_shipped_mechanism_configs_run(name: str, overrides: list[str], tmp_path: Path) -> None:
    from neurocomm.platform.config import load_config
    from tests.conftest import REPO

    cfg = load_config(REPO / "configs" / f"{name}.yaml", [
        *overrides, "training.rounds=3", "training.batch_size=8", "runtime.backend=local",
        f"logging.dir={tmp_path}", "logging.progress=false"])
    result = run(cfg)
    df = metrics(result.run_dir)
    events = [e for e in RunDir(result.run_dir).events() if e["event"] == "turnover"]
    if name == "partitioned":
        assert cfg.training.partitioned and (df["speaker"] == df["listener"]).sum() == 3 * 6
    else:
        assert events and events[0]["round"] == 2
        assert events[0]["modules"] == (["comprehension"] if name == "ease_of_teaching" else "all")
        assert events[0]["imitation_steps"] == (3 if name == "iterated_learning" else 0)
