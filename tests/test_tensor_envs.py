"""Vector envs that return torch tensors (Gymnasium's ``NumpyToTorch`` convention) are stepped in torch: the same
env through ``NumpyToTorch`` and plain gives the same rollout, and the algorithms learn on it."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces

import natgrad
from natgrad.config import Config
from natgrad.errors import NatgradError
from natgrad.policy.inference import Acting
from natgrad.rollouts.collector import Collector, rollout_parts
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


def test_tensor_env_with_image_observations_is_refused_in_one_line():
    env = NumpyToTorch(GymnaxVectorEnv("Breakout-MinAtar", 2))
    with pytest.raises(NatgradError, match="TorchToNumpy") as error:
        natgrad.PPO(env, n_steps=8, minibatches=1).learn(16)
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
