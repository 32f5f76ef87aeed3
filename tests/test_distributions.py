"""Distributions against torch.distributions, and the closed-form KL against its definition."""

import pytest
import torch
from torch import distributions as td

from natgrad.policy.distributions import Categorical, DiagGaussian


def test_categorical_matches_torch():
    logits, other = torch.randn(5, 4), torch.randn(5, 4)
    a = torch.randint(0, 4, (5,))
    ours, ref = Categorical(logits), td.Categorical(logits=logits)
    torch.testing.assert_close(ours.log_prob(a), ref.log_prob(a))
    torch.testing.assert_close(ours.entropy(), ref.entropy())
    torch.testing.assert_close(ours.kl(Categorical(other)), td.kl_divergence(ref, td.Categorical(logits=other)))


def test_gaussian_matches_torch():
    mean, log_std = torch.randn(5, 3), torch.randn(3) * 0.3
    mean2, log_std2 = torch.randn(5, 3), torch.randn(3) * 0.3
    a = torch.randn(5, 3)
    ours = DiagGaussian(mean, log_std)
    ref = td.Independent(td.Normal(mean, log_std.exp()), 1)
    ref2 = td.Independent(td.Normal(mean2, log_std2.exp()), 1)
    torch.testing.assert_close(ours.log_prob(a), ref.log_prob(a))
    torch.testing.assert_close(ours.entropy(), ref.entropy())
    torch.testing.assert_close(ours.kl(DiagGaussian(mean2, log_std2)), td.kl_divergence(ref, ref2))


@pytest.mark.parametrize("make", [
    lambda: (Categorical(torch.randn(1, 3)), Categorical(torch.randn(1, 3))),
    lambda: (DiagGaussian(torch.randn(1, 2), torch.zeros(2)), DiagGaussian(torch.randn(1, 2), torch.full((2,), 0.3))),
])
def test_kl_is_expected_log_ratio_under_first_argument(make):
    """KL(p ‖ q) = E_{a~p}[log p(a) − log q(a)], estimated by Monte Carlo."""
    p, q = make()
    g = torch.Generator().manual_seed(0)
    samples = torch.stack([p.sample(g) for _ in range(40000)])  # (S, 1, ...)
    mc = (p.log_prob(samples) - q.log_prob(samples)).mean()
    assert abs(float(mc) - float(p.kl(q))) < 0.03
    assert float(p.kl(q)) > 0 and float(p.kl(p)) == pytest.approx(0.0, abs=1e-6)
