"""Vector envs that return torch tensors (Gymnasium's ``NumpyToTorch`` convention) are stepped in torch: the same
env through ``NumpyToTorch`` and plain gives the same rollout, and the algorithms learn on it."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import space_envs
import torch
from gymnasium import spaces
from gymnasium.vector.utils import concatenate, create_empty_array, iterate

import natgrad
from natgrad.config import Config
from natgrad.errors import NatgradError
from natgrad.policy.inference import Acting
from natgrad.rollouts.collector import Collector, rollout_parts
from natgrad.rollouts.normalization import ObsNormalizer, RunningMeanStd
from natgrad.runs.evaluation import evaluate

pytest.importorskip("gymnax")
pytest.importorskip("array_api_compat")  # NumpyToTorch's

from gymnasium.wrappers.vector import NumpyToTorch  # noqa: E402

from natgrad.rollouts.gymnax import GymnaxVectorEnv  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:scatter inputs have incompatible types:FutureWarning",
                                        "ignore:.*precision lowered by casting to float32")
N_ENVS, LIMIT = 4, 15  # a time limit short enough that some episodes are truncated in a batch


def cartpole(tensors: bool) -> GymnaxVectorEnv | NumpyToTorch:
    env = GymnaxVectorEnv("CartPole-v1", N_ENVS, max_steps_in_episode=LIMIT)
    return NumpyToTorch(env) if tensors else env


def collector(tensors: bool, normalize_reward: bool) -> Collector:
    torch.manual_seed(0)
    env = cartpole(tensors)
    cfg = Config(normalize_reward=normalize_reward)
    actor, obs_normalizer, reward_scaler = rollout_parts(env.single_observation_space, env.single_action_space,
                                                         N_ENVS, cfg)
    out = Collector(env, actor, obs_normalizer, reward_scaler, seed=3)
    out.acting = Acting(actor, N_ENVS, np.random.default_rng(3), masks=True, tensors=tensors)  # both through torch
    return out


@pytest.mark.parametrize("normalize_reward", [False, True])
def test_tensor_env_gives_the_numpy_envs_rollout(normalize_reward):
    plain, tensor = collector(False, normalize_reward), collector(True, normalize_reward)
    assert tensor.tensors and not plain.tensors
    for _ in range(2):  # the second batch starts from statistics and episodes carried over
        a, b = plain.collect(32), tensor.collect(32)
        for name in ("obs", "actions", "log_probs", "rewards", "terminated", "ended", "first", "truncated_at",
                     "final_obs", "last_obs"):
            torch.testing.assert_close(getattr(b, name), getattr(a, name), rtol=0, atol=0, msg=name)
        assert len(a.truncated_at) > 0
        assert b.episode_returns == a.episode_returns and b.episode_lengths == a.episode_lengths
    np.testing.assert_array_equal(tensor.obs_normalizer.rms.mean, plain.obs_normalizer.rms.mean)


def test_gymnax_tensor_output_gives_the_numpy_gymnax_batch():
    """``env_kwargs={"tensors": True}``: the gymnax vector env hands out torch tensors (DLPack) and takes tensor
    actions; the collector's batch is the NumPy gymnax env's, bit for bit, truncations apart from terminations."""
    plain = collector(False, False)
    env = GymnaxVectorEnv("CartPole-v1", N_ENVS, tensors=True, max_steps_in_episode=LIMIT)
    raw, _ = env.reset(seed=0)
    assert isinstance(raw, torch.Tensor)
    torch.manual_seed(0)
    actor, obs_normalizer, reward_scaler = rollout_parts(env.single_observation_space, env.single_action_space,
                                                         N_ENVS, Config())
    tensor = Collector(env, actor, obs_normalizer, reward_scaler, seed=3)
    tensor.acting = Acting(actor, N_ENVS, np.random.default_rng(3), masks=True, tensors=True)
    assert tensor.tensors
    for _ in range(2):
        a, b = plain.collect(32), tensor.collect(32)
        for name in ("obs", "actions", "log_probs", "rewards", "terminated", "ended", "truncated_at", "final_obs"):
            torch.testing.assert_close(getattr(b, name), getattr(a, name), rtol=0, atol=0, msg=name)
        assert len(a.truncated_at) > 0 and bool(a.terminated.any())


def test_gymnax_tensors_option_trains_and_evaluates():
    model = natgrad.TRPO("gymnax/CartPole-v1", n_envs=N_ENVS, n_steps=16, seed=0,
                         env_kwargs={"tensors": True}).learn(64)
    assert model.obs_normalizer.device == model.device and len(evaluate(model, 1)) == 1
    with pytest.raises(NatgradError, match="tensors must be True or False"):
        GymnaxVectorEnv("CartPole-v1", 2, tensors="yes")


class SplitWithMask(gym.vector.VectorWrapper):
    """A tensor CartPole whose observations are a Dict: position, velocity and an all-legal ``action_mask``."""

    def __init__(self, env: gym.vector.VectorEnv) -> None:
        super().__init__(env)
        box = env.single_observation_space
        self.single_observation_space = spaces.Dict({"pos": spaces.Box(box.low[:2], box.high[:2]),
                                                     "vel": spaces.Box(box.low[2:], box.high[2:]),
                                                     "action_mask": spaces.MultiBinary(2)})
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, env.num_envs)

    def split(self, obs: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"pos": obs[:, :2], "vel": obs[:, 2:], "action_mask": torch.ones(len(obs), 2, dtype=torch.int8)}

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        return self.split(obs), info

    def step(self, actions):
        obs, rewards, terminated, truncated, info = self.env.step(actions)
        if "final_obs" in info:
            info = {**info, "final_obs": self.split(info["final_obs"])}
        return self.split(obs), rewards, terminated, truncated, info


def test_dict_tensor_env_with_a_mask_gives_the_flat_envs_rollout():
    plain = collector(False, False)
    env = SplitWithMask(cartpole(True))
    torch.manual_seed(0)
    actor, obs_normalizer, reward_scaler = rollout_parts(env.single_observation_space, env.single_action_space,
                                                         N_ENVS, Config())
    actor.load_state_dict(plain.actor.state_dict())
    split = Collector(env, actor, obs_normalizer, reward_scaler, seed=3)
    a, b = plain.collect(32), split.collect(32)
    assert b.masks is not None and bool(b.masks.all())
    for name in ("obs", "actions", "log_probs", "rewards", "truncated_at", "final_obs", "last_obs"):
        torch.testing.assert_close(getattr(b, name), getattr(a, name), rtol=0, atol=0, msg=name)


def test_tensor_env_actions_reach_the_env_as_tensors():
    env = cartpole(True)
    seen = []
    step = env.step
    env.step = lambda actions: seen.append(actions) or step(actions)
    actor, obs_normalizer, reward_scaler = rollout_parts(env.single_observation_space, env.single_action_space,
                                                         N_ENVS, Config())
    Collector(env, actor, obs_normalizer, reward_scaler, seed=0).collect(3)
    assert all(isinstance(a, torch.Tensor) and a.shape == (N_ENVS,) for a in seen)


@pytest.mark.parametrize("algo", [natgrad.TRPO, natgrad.PPO])
def test_algorithms_learn_and_evaluate_on_a_tensor_env(algo):
    model = algo(cartpole(True), n_steps=32, seed=0).learn(256)
    assert model.num_timesteps == 256
    returns = evaluate(model, 2, env="gymnax/CartPole-v1")
    assert len(returns) == 2 and all(r > 0 for r in returns)


class StackedFinals(gym.vector.VectorWrapper):
    """A same-step SyncVectorEnv whose ``final_obs`` is one batch of its space (the rows of envs that did not end:
    their observation), as a batched simulator gives it and as ``NumpyToTorch`` can convert it."""

    def step(self, actions):
        obs, rewards, terminated, truncated, info = self.env.step(actions)
        if "final_obs" in info:
            space, ended = self.single_observation_space, info["_final_obs"]
            rows = [f if e else o for f, e, o in zip(info["final_obs"], ended, iterate(self.observation_space, obs))]
            info = {**info, "final_obs": concatenate(space, rows, create_empty_array(space, self.num_envs))}
        return obs, rewards, terminated, truncated, info


def sync_env(make) -> gym.vector.SyncVectorEnv:
    return gym.vector.SyncVectorEnv([make] * N_ENVS, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)


def same_collectors(make) -> tuple[Collector, Collector]:
    """Collectors of the same env and actor (acting through torch), plain and through ``NumpyToTorch``."""
    out = []
    for env in (sync_env(make), NumpyToTorch(StackedFinals(sync_env(make)))):
        torch.manual_seed(0)
        actor, obs_normalizer, reward_scaler = rollout_parts(env.single_observation_space, env.single_action_space,
                                                             N_ENVS, Config(cnn="small"))
        out.append(Collector(env, actor, obs_normalizer, reward_scaler, seed=3))
        out[-1].acting = Acting(actor, N_ENVS, np.random.default_rng(3), masks=True, tensors=out[-1].tensors)
    return out[0], out[1]


@pytest.mark.parametrize("make", [space_envs.ImageTask, space_envs.DictTask,
                                  lambda: gym.make("FrozenLake-v1", max_episode_steps=5)],
                         ids=["image", "dict", "discrete"])
def test_tensor_env_of_every_leaf_kind_gives_the_numpy_envs_batch(make):
    """An image (uint8, channels last), a Dict of Box + Discrete (start 1) + MultiBinary, a Discrete observation:
    the same batch, leaf by leaf and bit for bit, with truncated episodes' final observations among it."""
    plain, tensor = same_collectors(make)
    assert tensor.tensors and not plain.tensors
    for _ in range(2):
        a, b = plain.collect(12), tensor.collect(12)
        assert len(a.truncated_at) > 0
        for name in ("obs", "actions", "log_probs", "rewards", "terminated", "ended", "truncated_at", "final_obs",
                     "last_obs"):
            torch.testing.assert_close(getattr(b, name), getattr(a, name), rtol=0, atol=0, msg=name)
        assert b.episode_returns == a.episode_returns
    assert tensor.obs_normalizer.device == tensor.device and plain.obs_normalizer.device is None


def test_device_statistics_are_the_host_ones_and_save_as_them():
    """Statistics kept as tensors (``ObsNormalizer.to``), updated from tensors one row and many at a time, equal the
    NumPy ones to float64 rounding, normalize alike, and save and load as the host's (same keys, float64 on the
    CPU), each loading the other's."""
    host, device = ObsNormalizer((3,)), ObsNormalizer((3,))
    device.to(torch.device("cpu"))
    gen = np.random.default_rng(0)
    for rows in (1, 5, 1, 64):
        batch = gen.normal(2.0, 3.0, (rows, 3))
        want, got = host.observe(batch), device.observe(torch.from_numpy(batch))
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-6, atol=1e-7)
    assert isinstance(device.rms.mean, torch.Tensor) and device.rms.count == host.rms.count
    for name in ("mean", "var"):
        np.testing.assert_allclose(getattr(device.rms, name).numpy(), getattr(host.rms, name), rtol=1e-12)
    saved = device.rms.state_dict()
    assert saved.keys() == host.rms.state_dict().keys() and saved["mean"].dtype == torch.float64
    host.rms.load_state_dict(saved)
    device.rms.load_state_dict(RunningMeanStd((3,)).state_dict())
    np.testing.assert_array_equal(host.rms.mean, saved["mean"].numpy())
    assert isinstance(device.rms.mean, torch.Tensor) and torch.equal(device.rms.var, torch.ones(3, dtype=torch.float64))


def test_model_trained_on_a_tensor_env_saves_and_loads_both_ways(tmp_path):
    model = natgrad.PPO(cartpole(True), n_steps=16, seed=0).learn(64)
    assert model.obs_normalizer.device == model.device
    path = model.save(tmp_path / "tensor.pt")
    on_host = natgrad.load(path, env="gymnax/CartPole-v1")
    assert on_host.obs_normalizer.device is None
    np.testing.assert_array_equal(on_host.obs_normalizer.rms.mean, model.obs_normalizer.rms.mean.numpy())
    obs = np.array([0.01, -0.02, 0.03, 0.04], np.float32)
    assert on_host.predict(obs, deterministic=True) == model.predict(obs, deterministic=True)
    back = natgrad.load(on_host.save(tmp_path / "host.pt"), env=cartpole(True), n_steps=16)
    torch.testing.assert_close(torch.as_tensor(back.obs_normalizer.rms.var), model.obs_normalizer.rms.var, rtol=0,
                               atol=0)
    count = back.obs_normalizer.rms.count
    back.learn(16)  # its collector moves the loaded statistics to the device and goes on from them
    assert back.obs_normalizer.device == back.device and back.obs_normalizer.rms.count > count


class NanAtStep(gym.vector.VectorWrapper):
    """A tensor env whose env 1 observes a NaN at its third step."""

    def reset(self, **kwargs):
        self.t = 0
        return self.env.reset(**kwargs)

    def step(self, actions):
        obs, *rest = self.env.step(actions)
        self.t += 1
        return (obs.index_put((torch.tensor(1), torch.tensor(2)), torch.tensor(torch.nan)) if self.t == 3 else obs,
                *rest)


def test_tensor_env_non_finite_observation_is_refused_at_the_batch_end_in_one_line():
    env = NanAtStep(cartpole(True))
    actor, obs_normalizer, reward_scaler = rollout_parts(env.single_observation_space, env.single_action_space,
                                                         N_ENVS, Config())
    with pytest.raises(NatgradError, match=r"non-finite observation \(nan\) from env index 1: fix the env") as error:
        Collector(env, actor, obs_normalizer, reward_scaler, seed=0).collect(8)
    assert "\n" not in str(error.value)


def test_numpy_to_torch_over_a_sync_vector_env_is_refused_in_one_line():
    same_step = {"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP}
    vec = gym.make_vec("CartPole-v1", 2, vectorization_mode="sync", vector_kwargs=same_step)
    with pytest.raises(NatgradError, match="without the conversion") as error:
        natgrad.PPO(NumpyToTorch(vec), n_steps=8)
    assert "\n" not in str(error.value)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_tensor_env_steps_on_the_device():
    env = NumpyToTorch(GymnaxVectorEnv("CartPole-v1", N_ENVS, max_steps_in_episode=LIMIT), device="cuda")
    seen = []
    step = env.step
    env.step = lambda actions: seen.append(actions.device.type) or step(actions)
    model = natgrad.TRPO(env, n_steps=32, seed=0, device="cuda").learn(256)
    assert model.num_timesteps == 256 and set(seen) == {"cuda"}
