"""ONNX export: onnxruntime's actions on 1,000 random raw observations equal predict(obs, deterministic=True)."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium import spaces
from typer.testing import CliRunner

import natgrad
from natgrad import NatgradError
from natgrad.cli import app
from natgrad.policy.spaces import MASK_KEY, VECTOR, entry
from natgrad.runs.training import train_run
from natgrad.tools.export import export_onnx, has_masks, input_name

ort = pytest.importorskip("onnxruntime")
runner = CliRunner()
ROWS = 1000

RICH_DICT = spaces.Dict({  # every kind of entry at once, one of them nested, with the mask of legal actions
    "pos": spaces.Box(-1.0, 1.0, (2,), np.float32),
    "goal": spaces.Discrete(4, start=1),
    "grid": spaces.MultiDiscrete([3, 2], start=[1, -1]),
    "flags": spaces.MultiBinary(2),
    "view": spaces.Box(0, 255, (6, 6, 3), np.uint8),  # (H, W, C): the graph moves C first
    "inner": spaces.Dict({"speed": spaces.Box(-5.0, 5.0, (1,), np.float32)}),
    MASK_KEY: spaces.MultiBinary(5),
})


def stack(samples):
    """A batch from a list of raw observations, entry by entry."""
    if isinstance(samples[0], dict):
        return {k: stack([s[k] for s in samples]) for k in samples[0]}
    return np.stack([np.asarray(s) for s in samples])


def legal(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``mask`` with one random action made legal in every row, so that no row has none."""
    mask[np.arange(len(mask)), rng.integers(mask.shape[1], size=len(mask))] = 1
    return mask


def random_statistics(model, rng):
    """Normalizer statistics far from the identity, so that the graph's normalization is checked."""
    if model.layout.vector_size:
        rms = model.obs_normalizer.rms
        rms.mean = rng.normal(0, 2, rms.mean.shape)
        rms.var = rng.uniform(0.05, 5, rms.var.shape)


def model_for(case):
    if case == "box":
        model = natgrad.TRPO("Pendulum-v1", n_envs=1, n_steps=8, preset=False)
        model.actor.net[-1].weight.data *= 3000 # means well beyond the bounds ±2: the clip is exercised
    elif case == "dict":
        model = natgrad.PPO(None, spaces=(RICH_DICT, spaces.Discrete(5, start=2)), n_envs=1, n_steps=8, minibatches=1)
    else:
        model = natgrad.TRPO(case, n_envs=1, n_steps=8, preset=False)
    return model


CASES = ["box", "natgrad-test/MultiDiscrete-v0", "natgrad-test/MultiBinary-v0", "natgrad-test/Masked-v0", "dict",
         "natgrad-test/Image-v0"]


@pytest.mark.parametrize("case", CASES)
def test_onnx_actions_equal_predict(case, tmp_path):
    rng = np.random.default_rng(0)
    model = model_for(case)
    random_statistics(model, rng)
    path = export_onnx(model, tmp_path / "actor.onnx")
    session = ort.InferenceSession(str(path))
    space = model.observation_space
    space.seed(1)
    batch = stack([space.sample() for _ in range(ROWS)])
    feed = {input_name(part.path): entry(batch, part.path) for part in model.layout.parts}
    masks = None
    if model.layout.has_mask:
        batch[MASK_KEY] = feed[MASK_KEY] = legal(batch[MASK_KEY], rng)
    elif has_masks(model):  # the env offers action_masks(): the graph takes them as an input
        masks = feed[MASK_KEY] = legal(rng.random((ROWS, model.actor.action.mask_size)) < 0.5, rng)
    assert sorted(i.name for i in session.get_inputs()) == sorted(feed)
    (onnx_actions,) = session.run(None, feed)
    actions = model.predict(batch, deterministic=True, action_masks=masks)
    assert onnx_actions.shape == actions.shape and onnx_actions.dtype == actions.dtype
    if model.actor.action.kind == "box":
        assert np.max(np.abs(onnx_actions - actions)) <= 1e-5
        assert np.isin(np.abs(actions), 2.0).mean() > 0.1  # many actions clipped to the bounds
    else:
        assert np.array_equal(onnx_actions, actions)
        assert len(np.unique(actions)) > 1  # not one constant action: the observations matter
    if masks is not None or model.layout.has_mask:
        mask = masks if masks is not None else batch[MASK_KEY]
        assert mask[np.arange(ROWS), actions - model.action_space.start].all()  # only legal actions
    model.close()


def test_export_command_and_its_refusals(tmp_path):
    run, _ = train_run("trpo", "CartPole-v1", steps=64, out=tmp_path / "run", overrides={"n_envs": 1, "n_steps": 64},
                       eval_episodes=0, checkpoint_every=0, progress=False, echo=lambda _: None)
    out = tmp_path / "actor.onnx"
    result = runner.invoke(app, ["export", str(run), "--onnx", str(out)])
    assert result.exit_code == 0, result.output
    assert f"wrote {out}: obs float32 (batch, 4) -> action int64 (batch)" in result.output
    again = runner.invoke(app, ["export", str(run), "--onnx", str(out)])
    assert isinstance(again.exception, NatgradError) and "already exists" in str(again.exception)
    assert VECTOR == "vector"


@pytest.mark.parametrize("core", ["lstm", "gru"])
def test_a_recurrent_graph_carries_the_state_like_predict(core, tmp_path):
    """Ten steps of 200 sequences: onnxruntime's actions and states equal predict's with the same states and
    episode starts (some of them True mid-way)."""
    rng = np.random.default_rng(0)
    model = natgrad.TRPO("Pendulum-v1", n_envs=1, n_steps=8, recurrent=core, rnn_hidden=8, preset=False)
    random_statistics(model, rng)
    session = ort.InferenceSession(str(export_onnx(model, tmp_path / "rnn.onnx")))
    assert [o.name for o in session.get_outputs()] == ["action", "next_state"]
    rows, state = 200, np.zeros((200, model.actor.state_size), np.float32)
    for step in range(10):
        obs = rng.uniform(-1, 1, (rows, 3)).astype(np.float32)
        start = rng.random(rows) < (1.0 if step == 0 else 0.1)
        action, new_state = model.predict(obs, state, start, deterministic=True)
        onnx_action, onnx_state = session.run(None, {"obs": obs, "state": state, "episode_start": start})
        assert np.max(np.abs(onnx_action - action)) <= 1e-5 and np.max(np.abs(onnx_state - new_state)) <= 1e-5
        state = new_state
    model.close()
