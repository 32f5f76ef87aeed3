"""GAE against a plain double loop, with episodes ending by truncation and termination mid-batch."""

import numpy as np
import torch

from natgrad.objectives.gae import gae, normalize


def reference_gae(rewards, values, next_values, terminated, ended, gamma, lam):
    """Â_t = Σ_{l≥0} (γλ)^l δ_{t+l}, summed only while the episode lasts (plain double loop)."""
    T, N = rewards.shape
    adv = np.zeros((T, N))
    for n in range(N):
        for t in range(T):
            total, discount = 0.0, 1.0
            for k in range(t, T):
                delta = rewards[k, n] + gamma * (0.0 if terminated[k, n] else next_values[k, n]) - values[k, n]
                total += discount * delta
                if ended[k, n]:
                    break
                discount *= gamma * lam
            adv[t, n] = total
    return adv


def test_gae_matches_double_loop_with_truncation_and_termination():
    rng = np.random.default_rng(0)
    T, N, gamma, lam = 12, 3, 0.99, 0.95
    rewards = rng.normal(size=(T, N))
    values = rng.normal(size=(T, N))
    next_values = np.concatenate([values[1:], rng.normal(size=(1, N))])
    terminated = np.zeros((T, N), bool)
    truncated = np.zeros((T, N), bool)
    terminated[3, 0] = terminated[7, 1] = True
    truncated[5, 0] = truncated[2, 2] = truncated[9, 2] = True
    ended = terminated | truncated
    # after an episode ends, V(s_{t+1}) is the value of the real final observation, not of the reset one
    next_values[truncated] = rng.normal(size=truncated.sum()) + 10.0
    t = lambda x: torch.as_tensor(x, dtype=torch.float64)
    adv, returns = gae(t(rewards), t(values), t(next_values), torch.as_tensor(terminated),
                       torch.as_tensor(ended), gamma, lam)
    expected = reference_gae(rewards, values, next_values, terminated, ended, gamma, lam)
    np.testing.assert_allclose(adv.numpy(), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(returns.numpy(), expected + values, rtol=1e-12)


def test_gae_with_lambda_one_gives_discounted_return_minus_value():
    rewards = torch.ones(4, 1, dtype=torch.float64)
    values = torch.zeros(4, 1, dtype=torch.float64)
    terminated = torch.tensor([[False], [False], [False], [True]])
    adv, _ = gae(rewards, values, torch.zeros_like(values), terminated, terminated, gamma=0.5, lam=1.0)
    torch.testing.assert_close(adv[:, 0], torch.tensor([1.875, 1.75, 1.5, 1.0], dtype=torch.float64))


def test_normalize_survives_zero_std():
    x = torch.full((10,), 3.0)
    assert torch.equal(normalize(x), torch.zeros(10))
    assert torch.isfinite(normalize(torch.tensor([1.0]))).all()
    y = normalize(torch.arange(5.0))
    assert abs(float(y.mean())) < 1e-6 and abs(float(y.std()) - 1) < 1e-6
