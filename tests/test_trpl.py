"""TRPL: the per-state trust-region projections (bounds, identity inside, gradients, nearest point) and the algorithm
(training within the bounds, save/load, the CLI, the errors)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from test_cli import assert_complete_run, runner

import natgrad
from natgrad import NatgradError
from natgrad.algos.trpl import TRPL, gaussian
from natgrad.cli import app
from natgrad.objectives.projection import KINDS, project, project_cov, project_mean
from natgrad.policy.distributions import DiagGaussian

F64 = torch.float64
MEAN_BOUND, COV_BOUND = 0.03, 0.001


def states(n: int, d: int, scale: float = 1.0, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """(μ, log σ, μ_old, log σ_old) of ``n`` random states of ``d`` action dimensions, float64."""
    g = torch.Generator().manual_seed(seed)
    return tuple(scale * torch.randn(n, d, generator=g, dtype=F64) for _ in range(4))


# independent of natgrad.objectives.projection: each trust region's two parts from its definition
def mean_part(mean, mean_old, log_std_old):
    """½ (μ − μ_old)ᵀ Σ_old⁻¹ (μ − μ_old), with Σ_old as a matrix."""
    diff = (mean - mean_old).unsqueeze(-1)
    precision = torch.diag_embed(torch.exp(-2 * log_std_old))
    return 0.5 * (diff.mT @ precision @ diff).squeeze(-1).squeeze(-1)


def cov_part(kind, log_std, log_std_old):
    """Frobenius ‖Σ − Σ_old‖²_F; W2 in Σ_old's metric tr(A + I − 2 A^½), A = Σ_old^-½ Σ Σ_old^-½; KL(N(0, Σ) ‖
    N(0, Σ_old)) by torch.distributions."""
    cov, cov_old = torch.diag_embed(torch.exp(2 * log_std)), torch.diag_embed(torch.exp(2 * log_std_old))
    if kind == "frobenius":
        return torch.linalg.matrix_norm(cov - cov_old) ** 2
    if kind == "w2":
        white = torch.diag_embed(torch.exp(-log_std_old))
        values, vectors = torch.linalg.eigh(white @ cov @ white)
        root = vectors @ torch.diag_embed(values.sqrt()) @ vectors.mT
        eye = torch.eye(cov.shape[-1], dtype=cov.dtype)
        return torch.diagonal(white @ cov @ white + eye - 2 * root, dim1=-2, dim2=-1).sum(-1)
    zero = torch.zeros(cov.shape[:-1], dtype=cov.dtype)
    p, q = (torch.distributions.MultivariateNormal(zero, covariance_matrix=c) for c in (cov, cov_old))
    return torch.distributions.kl_divergence(p, q)


@pytest.mark.parametrize("kind", KINDS)
def test_every_projected_state_is_within_its_bounds_and_those_outside_land_on_them(kind):
    mean, log_std, mean_old, log_std_old = states(2000, 3)
    m, c = mean_part(mean, mean_old, log_std_old), cov_part(kind, log_std, log_std_old)
    assert (m > MEAN_BOUND).float().mean() > 0.9 and (c > COV_BOUND).float().mean() > 0.9  # most are outside
    new_mean, new_log_std = project(kind, mean, log_std, mean_old, log_std_old, MEAN_BOUND, COV_BOUND)
    m_new, c_new = mean_part(new_mean, mean_old, log_std_old), cov_part(kind, new_log_std, log_std_old)
    assert m_new.max() <= MEAN_BOUND + 1e-6 and c_new.max() <= COV_BOUND + 1e-6
    # the nearest point of a convex region from outside is on its boundary
    torch.testing.assert_close(m_new[m > MEAN_BOUND], torch.full_like(m_new[m > MEAN_BOUND], MEAN_BOUND))
    torch.testing.assert_close(c_new[c > COV_BOUND], torch.full_like(c_new[c > COV_BOUND], COV_BOUND))


@pytest.mark.parametrize("kind", KINDS)
def test_states_inside_the_region_are_left_exactly_as_they_are(kind):
    mean, log_std, mean_old, log_std_old = states(500, 2)
    mean, log_std = mean_old + 1e-5 * mean, log_std_old + 1e-5 * log_std  # within both bounds
    mean_out, log_std_out = mean.clone(), log_std.clone()
    mean_out[::2] += 1.0  # every other state's mean leaves the region; the covariance of every fourth
    log_std_out[::4] += 1.0
    new_mean, new_log_std = project(kind, mean_out, log_std_out, mean_old, log_std_old, MEAN_BOUND, COV_BOUND)
    assert torch.equal(new_mean[1::2], mean[1::2]) and not torch.isclose(new_mean[::2], mean_out[::2]).all()
    inside = torch.ones(500, dtype=torch.bool)
    inside[::4] = False
    assert torch.equal(new_log_std[inside], log_std[inside])
    assert not torch.isclose(new_log_std[~inside], log_std_out[~inside]).any()


def test_one_state_independent_sigma_is_projected_once_for_every_state():
    """The shared learned log σ of natgrad's default Gaussian: shape (d,) in, (d,) out."""
    log_std, log_std_old = torch.tensor([0.5, -0.2], dtype=F64), torch.zeros(2, dtype=F64)
    for kind in KINDS:
        projected = project_cov(kind, log_std, log_std_old, COV_BOUND)
        assert projected.shape == (2,)
        assert cov_part(kind, projected, log_std_old) == pytest.approx(COV_BOUND, rel=1e-9)


@pytest.mark.parametrize("kind", KINDS)
def test_gradients_through_each_projection_match_finite_differences(kind):
    """gradcheck in float64 on states outside both bounds (the KL one through its implicit η), and inside."""
    for scale in (1.0, 1e-3):
        mean, log_std, mean_old, log_std_old = (x.requires_grad_() for x in states(4, 3, scale, seed=1))
        assert torch.autograd.gradcheck(lambda *x: project_mean(*x, MEAN_BOUND), (mean, mean_old, log_std_old))
        assert torch.autograd.gradcheck(lambda *x: project_cov(kind, *x, COV_BOUND), (log_std, log_std_old))


def test_the_kl_projections_gradient_is_the_implicit_one():
    """d log σ̃ / d log σ against the implicit function theorem worked by hand: log σ̃_i = log σ_old,i − ½ log(1 +
    κ a_i), a_i = σ_old,i²/σ_i² − 1, κ the root of g(κ, a) = ½ Σ_i (1/q_i − 1 + log q_i) − ε, q_i = 1 + κ a_i, found
    here by a bisection of its own; dκ/da = −∂g/∂a / ∂g/∂κ."""
    log_std, log_std_old = torch.tensor([0.7, -0.3, 0.1], dtype=F64), torch.tensor([0.0, 0.2, -0.1], dtype=F64)
    a = torch.exp(2 * (log_std_old - log_std)) - 1

    def g(kappa, a):
        q = 1 + kappa * a
        return 0.5 * (1 / q - 1 + torch.log(q)).sum() - COV_BOUND

    low, high = 0.0, 1.0  # an independent bisection to machine precision
    for _ in range(200):
        mid = (low + high) / 2
        low, high = (mid, high) if g(torch.tensor(mid, dtype=F64), a) < 0 else (low, mid)
    kappa = torch.tensor(low, dtype=F64, requires_grad=True)
    a_var = a.clone().requires_grad_()
    dg_dkappa, dg_da = torch.autograd.grad(g(kappa, a_var), (kappa, a_var))
    dkappa_da = -dg_da / dg_dkappa
    # log σ̃_i = log σ_old,i − ½ log(1 + κ a_i); da_j/dlog σ_j = −2 (a_j + 1)
    da_dlog_std = -2 * (a + 1)
    expected = torch.diag(-0.5 * kappa.detach() / (1 + kappa.detach() * a)) @ torch.diag(da_dlog_std)
    expected = expected - 0.5 * torch.outer(a / (1 + kappa.detach() * a), dkappa_da * da_dlog_std)
    jacobian = torch.autograd.functional.jacobian(lambda x: project_cov("kl", x, log_std_old, COV_BOUND), log_std)
    torch.testing.assert_close(jacobian, expected, rtol=1e-7, atol=1e-10)


def brute_force(objective, constraint, bound, center, half_width, points=601):
    """The point of a grid over the 2-D box center ± half_width that minimizes ``objective`` among those with
    ``constraint`` ≤ ``bound``."""
    axes = [torch.linspace(c - half_width, c + half_width, points, dtype=F64) for c in center.tolist()]
    grid = torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 2)
    value = torch.where(constraint(grid) <= bound, objective(grid), torch.inf)
    return grid[value.argmin()]


def test_the_mean_projection_is_the_nearest_point_in_the_old_metric():
    mean, mean_old, log_std_old = (torch.tensor(v, dtype=F64) for v in ([1.0, -0.4], [0.2, 0.1], [0.3, -0.5]))
    ours = project_mean(mean, mean_old, log_std_old, MEAN_BOUND)
    best = brute_force(lambda x: mean_part(x, mean, log_std_old), lambda x: mean_part(x, mean_old, log_std_old),
                             MEAN_BOUND, mean_old, 0.5)
    assert mean_part(ours, mean_old, log_std_old) <= MEAN_BOUND + 1e-12
    assert mean_part(ours, mean, log_std_old) <= mean_part(best, mean, log_std_old) <= \
        1.01 * mean_part(ours, mean, log_std_old)  # no feasible point is nearer; the grid comes close


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("log_std", [[0.6, -0.1], [-0.5, -0.4], [0.3, 0.0]])
def test_each_covariance_projection_is_the_nearest_point_of_its_divergence(kind, log_std):
    """Nearest in the projection's own sense, on a grid of log σ̃: Frobenius ‖Σ̃ − Σ‖²_F, W2 in Σ_old's metric
    Σ_i ((σ̃_i − σ_i)/σ_old,i)², KL the covariance part of KL(π̃ ‖ π) (the I-projection)."""
    log_std, log_std_old = torch.tensor(log_std, dtype=F64), torch.tensor([0.1, -0.2], dtype=F64)
    bound = 0.01
    distance = {
        "frobenius": lambda x: cov_part("frobenius", x, log_std),
        "w2": lambda x: ((torch.exp(x) - torch.exp(log_std)) / torch.exp(log_std_old)).pow(2).sum(-1),
        "kl": lambda x: cov_part("kl", x, log_std),
    }[kind]
    ours = project_cov(kind, log_std, log_std_old, bound)
    best = brute_force(distance, lambda x: cov_part(kind, x, log_std_old), bound, log_std_old, 0.4)
    assert cov_part(kind, ours, log_std_old) <= bound + 1e-12
    assert distance(ours) <= distance(best) <= 1.01 * distance(ours)


def test_a_one_dimensional_kl_projection_solves_its_equation_in_closed_form():
    """In 1-D the bound fixes σ̃ alone: x − 1 − log x = 2ε for x = σ̃²/σ_old², on the side of σ (below 1 when σ
    shrank); Newton's method in numpy gives x."""
    for log_std in (-1.0, 1.0):
        x = 0.5 if log_std < 0 else 1.5
        for _ in range(100):
            x -= (x - 1 - math.log(x) - 2 * COV_BOUND) / (1 - 1 / x)
        ours = project_cov("kl", torch.tensor([log_std], dtype=F64), torch.zeros(1, dtype=F64), COV_BOUND)
        assert float(ours) == pytest.approx(0.5 * math.log(x), rel=1e-12)


@pytest.mark.parametrize("state_dependent_std", [False, True])
def test_trpl_trains_on_pendulum_with_every_states_projection_within_its_bounds(monkeypatch, state_dependent_std):
    """A few thousand steps of small bounds (so that the projection works): finite metrics, and after each update
    the projected policy on the whole batch has per state ½ Δμᵀ Σ_old⁻¹ Δμ ≤ ε_μ and KL(π̃ ‖ π_old) ≤ ε_μ + ε_Σ;
    with one learned σ, or σ per state."""
    checked = []
    real = TRPL._update_metrics

    def checking(self, diagnostics, pieces, old):
        with torch.no_grad():
            p, q = gaussian(self.projected(self.actor(pieces.actor_inputs), old)), gaussian(old)
            p64 = DiagGaussian(p.mean.double(), p.log_std.double())
            q64 = DiagGaussian(q.mean.double(), q.log_std.double())
            kl = p64.kl(q64)
            m = mean_part(p64.mean, q64.mean, q64.log_std.expand_as(q64.mean))
        checked.append((float(m.max()), float(kl.max())))
        return real(self, diagnostics, pieces, old)

    monkeypatch.setattr(TRPL, "_update_metrics", checking)
    rows = []
    model = natgrad.TRPL("Pendulum-v1", seed=0, n_envs=2, n_steps=256, minibatches=4, epochs=5, lr=3e-3,
                         mean_bound=0.005, cov_bound=0.0005, preset=False, device="cpu",
                         state_dependent_std=state_dependent_std)
    model.learn(3072, callback=lambda m, metrics: rows.append(metrics))
    model.close()
    assert len(rows) == len(checked) == 6
    for metrics in rows:
        assert all(math.isfinite(v) for k, v in metrics.items() if k != "rollout/ep_return_mean"), metrics
        assert metrics["policy/kl_max"] >= metrics["policy/kl_p95"] >= 0 and metrics["policy/kl_max"] >= \
            metrics["policy/kl"]
    assert all(m <= 0.005 + 1e-6 and kl <= 0.0055 + 1e-6 for m, kl in checked), checked
    assert max(m for m, _ in checked) > 0.004  # the mean bound was reached: the projection did work
    assert max(r["policy/trust_region_loss"] for r in rows) > 0


def test_trpl_saves_loads_and_runs_from_the_command_line(tmp_path):
    model = natgrad.TRPL("Pendulum-v1", seed=3, n_envs=2, n_steps=64, minibatches=2, projection="w2",
                         cov_bound=0.002).learn(128)
    loaded = natgrad.load(model.save(tmp_path / "m.pt"))
    assert type(loaded) is natgrad.TRPL and loaded.config == model.config
    assert isinstance(loaded.config, natgrad.TRPLConfig) and loaded.config.projection == "w2"
    obs = np.stack([model.env.single_observation_space.sample() for _ in range(16)])
    np.testing.assert_array_equal(model.predict(obs, deterministic=True), loaded.predict(obs, deterministic=True))
    model.close(), loaded.close()
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", "--algo", "trpl", "--env", "Pendulum-v1", "--steps", "256", "--out",
                                 str(out), "--set", "n_steps=128", "--set", "n_envs=1",
                                 "--set", "minibatches=2", "--set",
                                 "projection=frobenius", "--eval-episodes", "0", "--no-progress"])
    assert result.exit_code == 0, result.output
    config = assert_complete_run(out, steps=[128, 256], checkpoints=0, eval_episodes=0)
    assert config["algo"] == "trpl" and config["config"]["projection"] == "frobenius"


def test_trpl_refuses_what_it_cannot_project_in_one_line():
    with pytest.raises(NatgradError, match=r"TRPL projects Gaussian policies over Box actions.*use PPO"):
        natgrad.TRPL("CartPole-v1", n_steps=16)
    for option, message in [({"projection": "l2"}, "invalid projection='l2'"),
                            ({"mean_bound": 0.0}, "invalid mean_bound=0.0"),
                            ({"cov_bound": -1.0}, "invalid cov_bound=-1.0"),
                            ({"trust_region_coef": -1.0}, "invalid trust_region_coef=-1.0"),
                            ({"action_dist": "beta"}, "invalid action_dist='beta'.*TRPL")]:
        with pytest.raises(NatgradError, match=message):
            natgrad.TRPLConfig(**option)
