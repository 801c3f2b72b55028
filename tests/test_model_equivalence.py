"""One definition of ``neuroai-rnn``, checked two ways (docs/agent-models.md, "Equivalence").

1. Grouping: agents computed together (``NeuroAIAgent.stacked``, one group of rows per edge)
   give each group what its owner gives alone, on outputs and on every parameter's gradient,
   for GRU and LSTM cells, several perception depths, owner patterns and every mechanism switch.
2. Reference: an agent computes what torch's own modules compute with its parameters
   (``nn.Linear``/``nn.ReLU`` in ``perception.net``, ``nn.GRUCell``/``nn.LSTMCell`` in
   production, ``nn.GRU``/``nn.LSTM`` in comprehension), on outputs and gradients.

Both paths run agents/grouped.py, so (1) guards the grouping arithmetic and (2) the equations:
a ReLU swapped for a Tanh in ``PerceptionStack`` fails (2). Tolerances: TOLERANCE below, the
numbers docs/agent-models.md states (float32; different matmul kernels round differently).
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from neurocomm.agents.grouped import GroupedNeuroAI, stacked_weights
from neurocomm.agents.neuroai import NeuroAIAgent
from neurocomm.platform.interfaces import ChannelSpec, GameSpec
from neurocomm.platform.typed import from_mapping

GAME = GameSpec(obs_dim=9, n_attributes=3, n_values=3)
CHANNEL = ChannelSpec(vocab_size=7, max_len=4)
ROWS = 5
# float32, |values| ~ 1. Measured: outputs differ by at most 9e-8, gradients by 1e-6 (they sum
# over rows); the tolerances leave a factor of ten.
TOLERANCE = {"outputs": dict(rtol=1e-6, atol=1e-6), "gradients": dict(rtol=1e-5, atol=1e-5)}

MECHANISMS: dict[str, dict[str, Any]] = {
    "plain": {},
    "self_monitor_select": {"self_monitor": "select", "monitor_samples": 3},
    "self_monitor_loss": {"self_monitor": "loss"},
    "plasticity": {"plasticity": True, "plasticity_alpha": 0.3},
    "topdown": {"topdown_iterations": 2},
    "freeze_perception": {"lesions": ["freeze_perception"]},
    "freeze_production": {"lesions": ["freeze_production"]},
    "freeze_comprehension": {"lesions": ["freeze_comprehension"]},
    "cut_monitor": {"self_monitor": "select", "lesions": ["cut_monitor"]},
}
OWNERS = {"one": [0], "each": [0, 1, 2], "repeated": [1, 0, 0, 2, 1], "one_agent_many_edges": [2, 2]}


def make_agents(n: int, cell: str, layers: tuple[int, ...], game: GameSpec = GAME,
                **mechanism: Any) -> list[NeuroAIAgent]:
    params = from_mapping(NeuroAIAgent.Params, {"hidden_size": 12, "embed_size": 6, "cell": cell,
                                                "perception_layers": list(layers), **mechanism})
    agents = []
    for seed in range(n):
        torch.manual_seed(seed)
        agent = NeuroAIAgent(params, game=game, channel=CHANNEL)
        with torch.no_grad():  # mechanisms start neutral; make them matter
            for name, p in agent.named_parameters():
                if "feedback" in name:
                    p.normal_(0, 0.3)
        agents.append(agent)
    return agents


def inputs(groups: int, seed: int = 0, game: GameSpec = GAME) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    rows = groups * ROWS
    return {
        "obs": torch.randn(rows, game.obs_dim, generator=g),
        "candidates": torch.randn(rows, 2, game.obs_dim, generator=g),  # what a listener perceives
        "message": F.softmax(torch.randn(rows, CHANNEL.max_len, CHANNEL.vocab_size, generator=g), -1),
        "symbols": F.softmax(torch.randn(CHANNEL.max_len - 1, rows, CHANNEL.vocab_size, generator=g), -1),
        "meaning": torch.randn(rows, 2, 12, generator=g),
        "weights": torch.randn(4096, generator=g),
    }


def forward(model: Any, x: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Every AgentModel method, chained as a speaker and a listener would."""
    meaning = model.perceive(x["obs"])
    state = model.production_start(meaning)
    logits, state = model.production_step(None, state)
    steps = [logits]
    for symbol in x["symbols"]:
        logits, state = model.production_step(symbol, state)
        steps.append(logits)
    return {"perceive": meaning, "produce": torch.stack(steps, 1),
            "comprehend": model.comprehend(x["message"]), "reconstruct": model.reconstruct(x["meaning"]),
            "candidates": model.perceive(x["candidates"])}


def scalar(out: dict[str, torch.Tensor], x: dict[str, torch.Tensor]) -> torch.Tensor:
    flat = torch.cat([v.reshape(-1) for v in out.values()])
    return (flat * x["weights"][: len(flat)]).sum()


def rows_of(x: dict[str, torch.Tensor], g: int) -> dict[str, torch.Tensor]:
    rows = slice(g * ROWS, (g + 1) * ROWS)
    return {k: (v[:, rows] if k == "symbols" else v if k == "weights" else v[rows]) for k, v in x.items()}


def grads(agents: list[NeuroAIAgent]) -> list[dict[str, torch.Tensor]]:
    return [{n: p.grad.clone() if p.grad is not None else torch.zeros_like(p)
             for n, p in a.named_parameters()} for a in agents]


# top-down feedback needs a perception layer below the top one
LAYERS = [(), (8,), (8, 6)]
CASES = [(c, ly, m, o) for c, ly, m, o in itertools.product(["gru", "lstm"], LAYERS, MECHANISMS, OWNERS)
         if ly or "topdown_iterations" not in MECHANISMS[m]]
IDS = ["-".join([c, "x".join(map(str, ly)) or "linear", m, o]) for c, ly, m, o in CASES]


@pytest.mark.parametrize(("cell", "layers", "mechanism", "owners"), CASES, ids=IDS)
def test_grouped_agents_compute_what_each_computes_alone(cell: str, layers: tuple[int, ...],
                                                         mechanism: str, owners: str) -> None:
    settings = MECHANISMS[mechanism]
    check_grouping(make_agents(3, cell, layers, **settings), OWNERS[owners], GAME)


def check_grouping(agents: list[NeuroAIAgent], owner: list[int], game: GameSpec) -> None:
    """Outputs and gradients of ``agents`` stacked by ``owner`` equal each owner's alone."""
    stacked = NeuroAIAgent.stacked(agents, owner)
    if agents[0].monitor is not None:
        # the platform never stacks a monitored agent (its loss compares across the batch);
        # its computation is still these functions, which this checks
        assert stacked is None
        stacked = GroupedNeuroAI(agents[0].params, game, stacked_weights(agents, owner), len(owner))
    assert stacked is not None
    x = inputs(len(owner), game=game)
    together = forward(stacked, x)
    scalar(together, x).backward()
    grouped_grads = grads(agents)
    for a in agents:
        a.zero_grad(set_to_none=True)
    for g, who in enumerate(owner):
        part = rows_of(x, g)
        alone = forward(agents[who], part)
        for key, value in alone.items():
            torch.testing.assert_close(together[key][g * ROWS:(g + 1) * ROWS], value,
                                       **TOLERANCE["outputs"], msg=lambda m, k=key: f"{k}: {m}")
    # gradients: each group's scalar uses its own slice of the weights, as in the grouped one
    offsets = _offsets(together)
    for g, who in enumerate(owner):
        alone = forward(agents[who], rows_of(x, g))
        flat = torch.cat([alone[k].reshape(-1) for k in alone])
        w = torch.cat([x["weights"][offsets[k][0]:offsets[k][1]].view_as(together[k])[g * ROWS:(g + 1) * ROWS]
                       .reshape(-1) for k in alone])
        (flat * w).sum().backward()
    for who, (got, want) in enumerate(zip(grouped_grads, grads(agents))):
        for name in want:
            torch.testing.assert_close(got[name], want[name], **TOLERANCE["gradients"],
                                       msg=lambda m, a=who, n=name: f"agent {a} {n}: {m}")
        assert any(want[n].abs().sum() > 0 for n in want) or who not in owner


def _offsets(out: dict[str, torch.Tensor]) -> dict[str, tuple[int, int]]:
    spans, start = {}, 0
    for k, v in out.items():
        spans[k] = (start, start + v.numel())
        start += v.numel()
    return spans


# ---------------------------------------------------------------------------- torch reference


def reference(agent: NeuroAIAgent, x: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """What torch's own modules compute with the agent's parameters (plain architecture)."""
    prod, comp = agent.production, agent.comprehension
    meaning = perceived(agent, x["obs"])
    state: Any = meaning if agent.params.cell == "gru" else (meaning, torch.zeros_like(meaning))
    steps = []
    for t in range(CHANNEL.max_len):
        inp = prod.start.expand(len(meaning), -1) if t == 0 else prod.symbol_embedding(x["symbols"][t - 1])
        state = prod.cell(inp, state)
        steps.append(prod.to_logits(state if agent.params.cell == "gru" else state[0]))
    states, _ = comp.rnn(comp.symbol_embedding(x["message"]))
    game = agent.game
    readout = agent.readout(x["meaning"]).view(*x["meaning"].shape[:-1], game.n_attributes, game.n_values)
    return {"perceive": meaning, "produce": torch.stack(steps, 1), "comprehend": comp.to_meaning(states),
            "reconstruct": readout, "candidates": perceived(agent, x["candidates"])}


def perceived(agent: NeuroAIAgent, obs: torch.Tensor) -> torch.Tensor:
    """torch's ``nn.Conv2d``/``nn.ReLU`` on the images (a conv front), then ``perception.net``."""
    if agent.params.perception.kind == "conv":
        assert agent.game.image_shape is not None
        images = obs.reshape(-1, *agent.game.image_shape)
        obs = agent.perception.conv(images).reshape(*obs.shape[:-1], -1)
    return agent.perception.net(obs)


def assert_matches_reference(agent: Any, x: Any) -> dict[str, torch.Tensor]:
    """The agent's outputs and gradients on ``x`` equal those of torch's own modules holding
    its parameters; returns the reference gradients by parameter name."""
    ours = forward(agent, x)
    scalar(ours, x).backward()
    our_grads = grads([agent])[0]
    agent.zero_grad(set_to_none=True)
    theirs = reference(agent, x)
    scalar(theirs, x).backward()
    for key in theirs:
        torch.testing.assert_close(ours[key], theirs[key], **TOLERANCE["outputs"],
                                   msg=lambda m, k=key: f"{k}: {m}")
    wanted = grads([agent])[0]
    for name, want in wanted.items():
        torch.testing.assert_close(our_grads[name], want, **TOLERANCE["gradients"],
                                   msg=lambda m, n=name: f"{n}: {m}")
    return wanted


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("layers", [(), (8,), (8, 6)], ids=["linear", "8", "8x6"])
def test_agent_computes_what_torch_modules_compute(cell: str, layers: tuple[int, ...]) -> None:
    (agent,) = make_agents(1, cell, layers)
    assert_matches_reference(agent, inputs(1))


# ---------------------------------------------------------------------------- conv perception

# two input channels, so a mix-up of channels, rows or groups in the grouped convolution shows
IMAGE_GAME = GameSpec(obs_dim=2 * 6 * 5, n_attributes=3, n_values=3, image_shape=(2, 6, 5))
CONVS = {
    "one": {"channels": [3], "kernel": 3, "stride": 1},
    "two_strided": {"channels": [4, 3], "kernel": 3, "stride": 2},
    "even_kernel": {"channels": [3, 2], "kernel": 2, "stride": 1},
}
# (perception layers, top-down iterations): the conv front under each shape of the stack above it
STACKS = {"linear": ((), 0), "8": ((8,), 0), "8-topdown": ((8,), 2)}
CONV_CASES = list(itertools.product(["gru", "lstm"], CONVS, STACKS, OWNERS))


@pytest.mark.parametrize(("cell", "conv", "stack", "owners"), CONV_CASES,
                         ids=["-".join(case) for case in CONV_CASES])
def test_grouped_conv_agents_compute_what_each_computes_alone(cell: str, conv: str, stack: str,
                                                              owners: str) -> None:
    layers, topdown = STACKS[stack]
    agents = make_agents(3, cell, layers, IMAGE_GAME, perception={"kind": "conv", **CONVS[conv]},
                         topdown_iterations=topdown)
    check_grouping(agents, OWNERS[owners], IMAGE_GAME)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("conv", list(CONVS))
def test_conv_agent_computes_what_torch_conv2d_computes(cell: str, conv: str) -> None:
    (agent,) = make_agents(1, cell, (8,), IMAGE_GAME, perception={"kind": "conv", **CONVS[conv]})
    assert [type(m) for m in agent.perception.conv] == [torch.nn.Conv2d, torch.nn.ReLU] * len(
        CONVS[conv]["channels"])
    wanted = assert_matches_reference(agent, inputs(1, game=IMAGE_GAME))
    assert all(want.abs().sum() > 0 for name, want in wanted.items() if "conv" in name)
