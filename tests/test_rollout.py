"""Rollouts keep truncation and termination apart, and bootstrap only truncated episodes."""

import numpy as np
import pytest
import torch
from fisher_reference import jitter

from natgrad import TRPO
from natgrad.rollouts.advantages import critic_values
from natgrad.rollouts.collector import Collector


@pytest.mark.parametrize("env_id, expect_terminated", [
    ("natgrad-test/Truncated-v0", False), ("natgrad-test/Terminated-v0", True)])
def test_episode_ends_are_classified_and_final_obs_kept(env_id, expect_terminated):
    model = TRPO(env_id, n_envs=2, n_steps=12, normalize_obs=False)
    collector = Collector(model.env, model.actor, model.obs_normalizer, model.reward_scaler, seed=0)
    batch = collector.collect(12)
    ended = batch.ended.numpy()
    # the counter env ends every 5 steps: at t = 4 and t = 9 in each env
    assert ended[[4, 9]].all() and ended.sum() == 4
    assert bool(batch.terminated.any()) == expect_terminated
    assert torch.equal(batch.terminated, batch.ended) == expect_terminated
    # the real last observation (t=5) of each truncated episode is kept, the next obs row is the reset one (t=0)
    if expect_terminated:
        assert batch.truncated_at.shape == (0, 2) and len(batch.final_obs) == 0
    else:
        assert batch.truncated_at.tolist() == [[4, 0], [4, 1], [9, 0], [9, 1]]
        np.testing.assert_array_equal(batch.final_obs[:, 0].numpy(), [5.0] * 4)
    np.testing.assert_array_equal(batch.obs[5, :, 0].numpy(), [0.0, 0.0])
    assert batch.first[[0, 5, 10]].all() and batch.first.sum() == 6
    assert batch.episode_returns == [5.0] * 4 and batch.episode_lengths == [5] * 4

    values, next_values, _, _ = critic_values(model.critic, batch)
    if expect_terminated:
        assert torch.equal(next_values[4], torch.zeros(2))
    else:
        with torch.no_grad():
            v_final = model.critic(batch.final_obs[:2])
        torch.testing.assert_close(next_values[4], v_final)
    torch.testing.assert_close(next_values[:3], values[1:4])  # inside an episode: V(s_{t+1})
    model.close()


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
@pytest.mark.parametrize("activation", ["tanh", "relu", "elu"])
def test_numpy_actor_samples_the_torch_actor_distribution(env_id, activation):
    from natgrad.policy.inference import NumpyActor

    model = TRPO(env_id, hidden=(16, 16), activation=activation)
    jitter(model.actor, 0.5)  # away from the near-uniform initial policy
    obs = np.random.default_rng(0).normal(size=(3, model.actor.net[0].in_features)).astype(np.float32)
    rng = np.random.default_rng(1)
    samples = np.stack([NumpyActor(model.actor)(obs, rng) for _ in range(20000)])  # (S, 3, ...)
    with torch.no_grad():
        dist = model.actor(torch.from_numpy(obs))
    if model.actor.continuous:
        np.testing.assert_allclose(samples.mean(0), dist.mean.numpy(), atol=0.03)
        std = np.broadcast_to(dist.log_std.detach().exp().numpy(), samples.shape[1:])
        np.testing.assert_allclose(samples.std(0), std, rtol=0.03)
    else:
        freq = np.stack([(samples == a).mean(0) for a in range(2)], axis=-1)
        np.testing.assert_allclose(freq, torch.softmax(dist.logits, -1).numpy(), atol=0.015)
    model.close()
