"""natgrad's vector env steps exactly as Gymnasium's plain SyncVectorEnv with same-step autoreset, and its
info holds only the final observations of the episodes that ended."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

from natgrad.rollouts.envs import make_vec_env


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1", "natgrad-test/Truncated-v0", "Hopper-v5"])
def test_vec_env_matches_plain_sync_vector_env(env_id):
    ours = make_vec_env(env_id, n_envs=3)
    ref = gym.make_vec(env_id, num_envs=3, vectorization_mode="sync",
                       vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP})
    obs_a, info_a = ours.reset(seed=7)
    obs_b, _ = ref.reset(seed=7)
    np.testing.assert_array_equal(obs_a, obs_b)
    assert info_a == {}
    ref.action_space.seed(0)
    ended = 0
    for _ in range(300):
        action = ref.action_space.sample()
        a, b = ours.step(action), ref.step(action)
        for x, y in zip(a[:4], b[:4]):
            np.testing.assert_array_equal(x, y)
            assert x.dtype == y.dtype
        assert ("final_obs" in a[4]) == ("final_obs" in b[4])
        if "final_obs" in b[4]:
            assert set(a[4]) == {"final_obs", "_final_obs", "final_info", "_final_info"}
            np.testing.assert_array_equal(a[4]["_final_obs"], b[4]["_final_obs"])
            for i in np.flatnonzero(b[4]["_final_obs"]):
                np.testing.assert_array_equal(a[4]["final_obs"][i], b[4]["final_obs"][i])
                ended += 1
        else:
            assert a[4] == {}
    assert ended > 0
    ours.close()
    ref.close()
