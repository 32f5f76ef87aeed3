"""Envs that step a whole batch in their own package: gymnax (JAX, here on the CPU) and EnvPool (C++ threads),
reachable by the ids ``gymnax/...`` and ``envpool/...``, with same-step autoreset and terminated kept apart from
truncated."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from typer.testing import CliRunner

import natgrad
from natgrad.cli import app
from natgrad.errors import NatgradError
from natgrad.policy.spaces import ObsLayout
from natgrad.rollouts.envs import check_env_id, make_vec_env, untrusted_env
from natgrad.runs.evaluation import evaluate

LIMIT = 40  # a time limit that alternating pushes reach before CartPole's pole falls
pytestmark = pytest.mark.filterwarnings("ignore:scatter inputs have incompatible types:FutureWarning",
                                        "ignore:.*precision lowered by casting to float32",
                                        "ignore:.*observation space m.* value is -?infinity")


def alternate(t: int, n: int) -> np.ndarray:
    """Push left, then right, ...: CartPole stays up for longer than ``LIMIT`` steps."""
    return np.full(n, t % 2, np.int64)


@pytest.fixture(scope="module")
def gymnax_vec():
    pytest.importorskip("gymnax")
    vec = make_vec_env("gymnax/CartPole-v1", 8, env_kwargs={"max_steps_in_episode": LIMIT})
    yield vec
    vec.close()


def test_a_gymnax_step_is_gymnaxs_own_with_done_split_into_terminated_and_truncated(gymnax_vec):
    """Against gymnax's own ``env.step``: ``done`` before gymnax 1.0, ``terminated`` and ``truncated`` since."""
    import jax

    fns = gymnax_vec.fns
    for push, end in ((alternate, "truncated"), (lambda t, n: np.ones(n, np.int64), "terminated")):
        _, state = fns.reset(jax.random.PRNGKey(0))
        for t in range(LIMIT):
            key, action = jax.random.PRNGKey(t), push(t, 1)[0]
            theirs = fns.env.step(key, state, action, fns.params)  # autoresets: its obs is a new one when done
            done = theirs[3] | theirs[4] if len(theirs) == 6 else theirs[3]
            obs, state, reward, terminated, truncated = fns.step(jax.random.split(key)[0], state, action)
            assert float(reward) == float(theirs[2]) and bool(terminated) + bool(truncated) == bool(done), t
            if len(theirs) == 6:
                assert bool(terminated) == bool(theirs[3])  # never both: a natural end is a termination
            if done:
                break
            np.testing.assert_allclose(np.asarray(obs), np.asarray(theirs[0]), atol=1e-6)  # jitted: fused by XLA
        assert done and {"terminated": terminated, "truncated": truncated}[end], (end, t)
        assert (t + 1 == LIMIT) == (end == "truncated")


def test_gymnax_vector_env_resets_in_the_same_step_with_the_real_last_observation(gymnax_vec):
    assert gymnax_vec.metadata["autoreset_mode"] == gym.vector.AutoresetMode.SAME_STEP
    first, _ = gymnax_vec.reset(seed=3)
    np.testing.assert_array_equal(gymnax_vec.reset(seed=3)[0], first)  # seeded by natgrad's seed
    assert first.shape == (8, 4) and first.dtype == np.float32 and np.abs(first).max() <= 0.05
    length, ends = np.zeros(8, int), {"terminated": 0, "truncated": 0}
    for t in range(2 * LIMIT):
        obs, reward, terminated, truncated, info = gymnax_vec.step(alternate(t, 8))
        length += 1
        assert reward.shape == (8,) and not (terminated & truncated).any()
        ended = terminated | truncated
        assert ended[length == LIMIT].all() and (length[truncated] == LIMIT).all()  # only the time limit truncates
        assert ("final_obs" in info) == ended.any()
        if ended.any():
            np.testing.assert_array_equal(info["_final_obs"], ended)
            assert np.abs(obs[ended]).max() <= 0.05  # new episodes' first observations
            fell = info["final_obs"][terminated]  # the real last observations: the pole fell, or the cart left
            assert ((np.abs(fell[:, 2]) > 0.2094) | (np.abs(fell[:, 0]) > 2.4)).all()
        ends["terminated"] += terminated.sum()
        ends["truncated"] += truncated.sum()
        length[ended] = 0
    assert ends["terminated"] and ends["truncated"], ends


def test_gymnax_ids_pass_natgrads_checks_and_name_their_family():
    pytest.importorskip("gymnax")
    assert untrusted_env("gymnax/CartPole-v1") is None  # a family natgrad registers itself: loads without trust
    check_env_id("gymnax/Breakout-MinAtar")
    env = gym.make("gymnax/Breakout-MinAtar")
    check_env(env.unwrapped, skip_render_check=True)
    assert [leaf.kind for leaf in ObsLayout(env.observation_space).leaves] == ["image"]  # MinAtar's bool grid
    with pytest.raises(NatgradError, match="leave vectorization 'sync'"):
        make_vec_env("gymnax/CartPole-v1", 4, "async")
    with pytest.raises(NatgradError, match=r"does not take env_kwargs=\{'size': 3\}"):
        make_vec_env("gymnax/CartPole-v1", 4, env_kwargs={"size": 3})


def test_trpo_learns_on_gymnax_cartpole_saves_and_loads_without_trust(tmp_path):
    pytest.importorskip("gymnax")
    model = natgrad.TRPO("gymnax/CartPole-v1", n_envs=8, n_steps=64, seed=0).learn(512)
    assert model.num_timesteps == 512 and len(evaluate(model, 1)) == 1
    model.save(tmp_path / "m.pt")
    model.close()
    loaded = natgrad.load(tmp_path / "m.pt")
    assert loaded.env is not None and loaded.env.num_envs == 8
    loaded.close()


def test_cli_trains_on_a_gymnax_id(tmp_path):
    pytest.importorskip("gymnax")
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", "--algo", "ppo", "--env", "gymnax/CartPole-v1", "--steps", "256",
                                      "--set", "n_envs=4", "--set", "n_steps=64", "--eval-episodes", "1",
                                      "--checkpoint-every", "0", "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert (out / "model.pt").exists() and (out / "eval.json").exists()


def test_envpool_vector_env_is_envpools_own_with_the_reset_brought_into_the_ending_step():
    envpool = pytest.importorskip("envpool")
    ours = make_vec_env("envpool/CartPole-v1", 4, env_kwargs={"max_episode_steps": 25})
    theirs = envpool.make_gymnasium("CartPole-v1", num_envs=4, seed=7, max_episode_steps=25)
    np.testing.assert_array_equal(ours.reset(seed=7)[0], theirs.reset()[0])
    rng = np.random.default_rng(0)
    for _ in range(25):
        actions = rng.integers(0, 2, 4)
        mine, theirs_step = ours.step(actions), theirs.step(actions)
        terminated, truncated = mine[2], mine[3]
        for a, b in zip(mine[1:4], theirs_step[1:4]):
            np.testing.assert_array_equal(a, b)
        ended = terminated | truncated
        if ended.any():
            break
        np.testing.assert_array_equal(mine[0], theirs_step[0])
    info = mine[4]
    np.testing.assert_array_equal(info["_final_obs"], ended)
    for i in np.flatnonzero(ended):
        np.testing.assert_array_equal(info["final_obs"][i], theirs_step[0][i])  # the real last observation
    assert np.abs(mine[0][ended]).max() <= 0.05  # already reset: new episodes' first observations
    theirs.close()
    ours.close()


def test_ppo_learns_on_an_envpool_id_and_refuses_envpools_own_seed():
    pytest.importorskip("envpool")
    model = natgrad.PPO("envpool/CartPole-v1", n_envs=4, n_steps=64, seed=0).learn(256)
    assert model.num_timesteps == 256 and len(evaluate(model, 1)) == 1
    model.close()
    check_env_id("envpool/CartPole-v1")
    check_env(gym.make("envpool/CartPole-v1").unwrapped, skip_render_check=True)
    with pytest.raises(NatgradError, match=r"leave seed out of env_kwargs"):
        make_vec_env("envpool/CartPole-v1", 2, env_kwargs={"seed": 1})
