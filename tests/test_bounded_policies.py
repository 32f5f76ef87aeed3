"""Bounded and state-dependent-std policies (``action_dist``, ``state_dependent_std``) against independent
computations: densities that integrate to 1 and agree with torch.distributions' transformed ones, closed-form KLs
against Monte Carlo, entropies against quadrature, samples inside the bounds, the NumPy actor against the torch one;
and as a user meets them: training with every algorithm, save/load/predict, ONNX export, one-line refusals.

The FVP against the explicit Hessian of the mean KL and TRPO's KL ≤ δ for these kinds are in the conformance suite
(``test_action_distributions.py``)."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from fisher_reference import float64_actor
from scipy import integrate, stats
from test_cli import one_line_error
from torch import distributions as td

import natgrad
from natgrad import NatgradError
from natgrad.policy.actor_critic import Actor
from natgrad.policy.distributions import DiagGaussian, SquashedGaussian, StateDependentStd, log_tanh_slope, squash
from natgrad.policy.inference import NumpyActor
from natgrad.policy.spaces import ActionSpec

OBS = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
BOUNDED = gym.spaces.Box(np.array([-1.0, 0.0], np.float32), np.array([2.0, 0.5], np.float32))
LINE = gym.spaces.Box(np.array([-2.0], np.float32), np.array([1.0], np.float32))  # 1-D, for quadrature
KINDS = {  # the actor options of every new kind
    "squashed": {"action_dist": "squashed"},
    "squashed-state-std": {"action_dist": "squashed", "state_dependent_std": True},
    "gaussian-state-std": {"state_dependent_std": True},
    "beta": {"action_dist": "beta"},
}
BOUNDED_KINDS = ["squashed", "squashed-state-std", "beta"]
ALGOS = ["npg", "trpo", "vpg", "ppo", "ppo-kl"]


def dists(kind: str, space: gym.Space = BOUNDED, states: int = 5, seed: int = 1, copies: int = 1):
    """π and another π' (of a differently jittered actor) of ``kind`` at ``states`` random states (each repeated
    ``copies`` times), float64."""
    actor = float64_actor(OBS, space, scale=0.5, hidden=(5,), seed=seed, **KINDS[kind])
    other = float64_actor(OBS, space, scale=0.5, hidden=(5,), seed=seed + 1, **KINDS[kind])
    obs = torch.randn(states, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    return actor, actor(obs.repeat(copies, 1)).detach(), other(obs.repeat(copies, 1)).detach()


def reference(dist, space: gym.Space) -> td.Distribution:
    """torch.distributions' own distribution of the env's action (per state, independent over the dimensions)."""
    low, high = (torch.as_tensor(b, dtype=torch.float64) for b in (space.low, space.high))
    if isinstance(dist, StateDependentStd):
        dist = dist.inner
    if isinstance(dist, SquashedGaussian):
        g = dist.gaussian
        base = td.Normal(g.mean, g.log_std.exp().expand_as(g.mean))
        squashing = [td.TanhTransform(), td.AffineTransform((high + low) / 2, (high - low) / 2)]
        return td.Independent(td.TransformedDistribution(base, squashing), 1)
    if isinstance(dist, DiagGaussian):
        return td.Independent(td.Normal(dist.mean, dist.log_std.exp().expand_as(dist.mean)), 1)
    alpha, beta = dist.concentrations
    return td.Independent(td.TransformedDistribution(td.Beta(alpha, beta), td.AffineTransform(low, high - low)), 1)


def env_action(actor: Actor, stored: torch.Tensor) -> torch.Tensor:
    """The env's action for a stored one (a squashed Gaussian stores its latent u), before the safety clip."""
    if actor.action.dist != "squashed":
        return stored
    return squash(stored, *actor.action.bounds(stored))


def stored_action(actor: Actor, a: torch.Tensor) -> torch.Tensor:
    """The stored action of an env action strictly inside the bounds (the latent u = atanh of a squashed one)."""
    if actor.action.dist != "squashed":
        return a
    low, high = actor.action.bounds(a)
    return torch.atanh(2 * (a - low) / (high - low) - 1)


@pytest.mark.parametrize("kind", KINDS)
def test_log_prob_is_torch_distributions_density_of_the_env_action(kind):
    actor, p, _ = dists(kind)
    stored = p.sample(torch.Generator().manual_seed(0))
    ref = reference(p, BOUNDED)
    torch.testing.assert_close(p.log_prob(stored), ref.log_prob(env_action(actor, stored)), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("kind", KINDS)
def test_kl_is_zero_to_itself_positive_otherwise_and_equals_monte_carlo(kind):
    """KL(p ‖ q) = E_{a~p}[log p(a) − log q(a)] with a drawn by torch.distributions and both densities theirs: of
    the env's action, independent of the closed form (and of a squashed KL being the Gaussians')."""
    actor, p, q = dists(kind)
    assert torch.all(p.kl(p).abs() < 1e-12) and torch.all(p.kl(q) > 0)
    ref_p, ref_q = reference(p, BOUNDED), reference(q, BOUNDED)
    torch.manual_seed(0)
    a = ref_p.sample((200_000,))
    log_ratio = ref_p.log_prob(a) - ref_q.log_prob(a)
    sem = log_ratio.std(0) / math.sqrt(len(a))
    assert torch.all((p.kl(q) - log_ratio.mean(0)).abs() < 5 * sem + 1e-4), (p.kl(q), log_ratio.mean(0), sem)


@pytest.mark.parametrize("kind", BOUNDED_KINDS)
def test_density_integrates_to_one_and_entropy_is_its_quadrature_on_one_dimension(kind):
    """∫ π(a|s) da = 1 and −∫ π log π da = the entropy, by adaptive quadrature over the env's action a ∈ [low, high]
    (the log-density read at the stored action of a)."""
    actor, p, _ = dists(kind, LINE, states=3)
    low, high = (float(b[0]) for b in (LINE.low, LINE.high))
    for s in range(3):
        def log_density(a: float, s=s) -> float:
            stored = stored_action(actor, torch.tensor([[a]], dtype=torch.float64))
            return float(p[s:s + 1].log_prob(stored))

        mass = integrate.quad(lambda a: math.exp(log_density(a)), low, high, limit=200, epsabs=1e-11)[0]
        entropy = integrate.quad(lambda a: -math.exp(log_density(a)) * log_density(a), low, high, limit=200,
                                 epsabs=1e-11)[0]
        assert mass == pytest.approx(1, abs=1e-7)
        assert float(p[s:s + 1].entropy()) == pytest.approx(entropy, abs=1e-4)  # σ up to e^0.84 here


def test_squashed_entropy_at_large_sigma_is_within_its_stated_error():
    """The Gauss–Hermite estimate of E[log(1 − tanh² u)] against adaptive quadrature, up to σ = e² (a state-dependent
    log σ's default upper bound)."""
    for mean, log_std in [(0.0, 0.0), (1.5, -2.0), (-3.0, 1.0), (0.5, 2.0)]:
        g = DiagGaussian(torch.tensor([[mean]], dtype=torch.float64), torch.tensor([log_std], dtype=torch.float64))
        dist = SquashedGaussian(g, torch.tensor([-1.0], dtype=torch.float64), torch.tensor([1.0], dtype=torch.float64))
        sigma = math.exp(log_std)
        pdf = stats.norm(mean, sigma).pdf
        slope = lambda u: float(log_tanh_slope(torch.tensor(u, dtype=torch.float64)))
        term = integrate.quad(lambda u: pdf(u) * slope(u), mean - 12 * sigma, mean + 12 * sigma, points=[0.0],
                              limit=400)[0]
        want = float(g.entropy()) + term
        assert float(dist.entropy()) == pytest.approx(want, abs=1e-10 if sigma <= 1 else 0.002 * abs(term))


def test_log_prob_is_finite_at_and_beyond_the_saturation_and_at_the_bounds():
    actor, p, _ = dists("squashed")
    far = torch.tensor([[40.0, -40.0], [400.0, -400.0]], dtype=torch.float64)  # 1 − tanh² u rounds to 0 here
    assert torch.isfinite(p[:2].log_prob(far)).all()
    beta, q, _ = dists("beta")
    at_bounds = torch.stack([torch.as_tensor(BOUNDED.low), torch.as_tensor(BOUNDED.high)]).double()
    assert torch.isfinite(q[:2].log_prob(at_bounds)).all()


@pytest.mark.parametrize("kind", KINDS)
def test_samples_lie_within_the_bounds_and_follow_the_distribution(kind):
    """Every env action (after ``to_env``) inside the Box; the first dimension at one state passes a
    Kolmogorov–Smirnov test against the reference distribution's CDF (by its own large sample)."""
    actor, p, _ = dists(kind, states=1, copies=20_000)
    stored = p.sample(torch.Generator().manual_seed(3))  # (20 000, 2): one state, repeated
    actions = actor.action.to_env(stored.float().numpy())
    if kind != "gaussian-state-std":
        raw = env_action(actor, stored).numpy()
        assert np.all((raw >= BOUNDED.low) & (raw <= BOUNDED.high))
    assert np.all((actions >= BOUNDED.low) & (actions <= BOUNDED.high))
    torch.manual_seed(0)
    ref = reference(p[:1], BOUNDED).sample((20_000,))[:, 0, 0].numpy()
    assert stats.ks_2samp(env_action(actor, stored)[:, 0].numpy(), ref).pvalue > 1e-3


@pytest.mark.parametrize("kind", KINDS)
def test_the_numpy_actor_samples_the_torch_actor_distribution_and_mode(kind):
    torch.manual_seed(0)
    actor = Actor(OBS, BOUNDED, hidden=(16,), **KINDS[kind])
    with torch.no_grad():
        for p in actor.parameters():
            p.add_(0.5 * torch.randn_like(p))
    obs = np.random.default_rng(0).normal(size=(3, 3)).astype(np.float32)
    numpy_actor = NumpyActor(actor)
    assert NumpyActor.fits(actor)
    rng = np.random.default_rng(1)
    samples = np.stack([numpy_actor(obs, rng) for _ in range(20_000)])  # (S, 3, 2) stored actions
    with torch.no_grad():
        dist = actor(torch.from_numpy(obs))
        gen = torch.Generator().manual_seed(2)
        ref = torch.stack([dist.sample(gen) for _ in range(20_000)]).numpy()
        mode = dist.mode().numpy()
    np.testing.assert_allclose(samples.mean(0), ref.mean(0), atol=0.03 * ref.std(0).max())
    np.testing.assert_allclose(samples.std(0), ref.std(0), rtol=0.04)
    np.testing.assert_allclose(numpy_actor(obs, deterministic=True), mode, rtol=1e-5, atol=1e-6)


def test_to_env_squashes_the_latent_alike_for_arrays_and_tensors():
    spec = ActionSpec.of(BOUNDED, "squashed")
    u = np.array([[-30.0, 0.3], [0.0, 30.0], [1.0, -1.0]], np.float32)
    want = BOUNDED.low + (BOUNDED.high - BOUNDED.low) * (1 + np.tanh(u.astype(np.float64))) / 2
    np.testing.assert_allclose(spec.to_env(u), want, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(spec.to_env(torch.from_numpy(u)).numpy(), spec.to_env(u))
    assert spec.to_env(u)[0, 0] == -1.0 and spec.to_env(u)[1, 1] == 0.5  # saturated: the bounds, not beyond


def test_state_dependent_log_std_starts_at_log_std_init_and_stays_in_its_range():
    actor = Actor(OBS, BOUNDED, state_dependent_std=True, log_std_init=-0.7, log_std_range=(-4.0, 1.0))
    with torch.no_grad():
        dist = actor(torch.zeros(1, 3))
        assert torch.allclose(dist.inner.log_std, torch.full((1, 2), -0.7), atol=1e-6)
        far = actor.distribution(torch.tensor([[0.0, 0.0, 1e3, -1e3]]))
    assert far.inner.log_std.tolist() == [[1.0, -4.0]] and actor.head_parameters() == []


@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("kind", KINDS)
def test_every_algorithm_trains_with_every_distribution_without_nan(algo, kind):
    model = natgrad.ALGORITHMS[algo]("Pendulum-v1", seed=0, preset=False, n_steps=100, device="cpu",
                                     **({"minibatches": 4} if algo.startswith("ppo") else {}), **KINDS[kind])
    rows = []
    model.learn(300, callback=lambda _, metrics: rows.append(metrics))
    assert len(rows) == 3
    values = [v for row in rows for k, v in row.items() if isinstance(v, float) and not k.startswith("rollout/")]
    assert all(math.isfinite(v) for v in values)
    assert all(torch.isfinite(p).all() for p in model.actor.parameters())
    assert model.config.action_dist == KINDS[kind].get("action_dist", "gaussian")
    model.close()


@pytest.mark.parametrize("kind", KINDS)
def test_save_load_predict_round_trip_with_bounded_actions(kind, tmp_path):
    model = natgrad.PPO("Pendulum-v1", seed=1, n_steps=64, minibatches=2, device="cpu", **KINDS[kind]).learn(128)
    loaded = natgrad.load(model.save(tmp_path / "m.pt"))
    assert loaded.config == model.config and loaded.actor.action == model.actor.action
    obs = np.stack([model.env.single_observation_space.sample() for _ in range(64)])
    deterministic = model.predict(obs, deterministic=True)
    np.testing.assert_array_equal(deterministic, loaded.predict(obs, deterministic=True))
    model.generator.manual_seed(7)
    loaded.generator.manual_seed(7)
    sampled = model.predict(obs)
    np.testing.assert_array_equal(sampled, loaded.predict(obs))
    bounds = model.action_space
    assert np.all((sampled >= bounds.low) & (sampled <= bounds.high))
    model.close(), loaded.close()


@pytest.mark.parametrize("kind", KINDS)
def test_onnx_export_gives_the_bounded_action_predict_gives(kind, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    from natgrad.tools.export import export_onnx

    model = natgrad.TRPO("Pendulum-v1", n_envs=1, n_steps=8, preset=False, **KINDS[kind])
    model.actor.net[-1].weight.data *= 300  # outputs far out: saturated tanh, extreme α and β
    session = ort.InferenceSession(str(export_onnx(model, tmp_path / "actor.onnx")))
    obs = np.random.default_rng(0).uniform(-1, 1, (500, 3)).astype(np.float32) * model.observation_space.high
    (onnx_actions,) = session.run(None, {"obs": obs})
    actions = model.predict(obs, deterministic=True)
    assert onnx_actions.shape == actions.shape and onnx_actions.dtype == actions.dtype
    assert np.max(np.abs(onnx_actions - actions)) <= 1e-5
    assert np.all(np.abs(actions) <= 2.0) and len(np.unique(actions)) > 10
    model.close()


@pytest.mark.parametrize("options, words", [
    ({"env": "CartPole-v1", "action_dist": "beta"}, ["action_dist='beta' needs a Box action space", "Discrete(2)"]),
    ({"env": "CartPole-v1", "state_dependent_std": True}, ["state_dependent_std=True needs a Box action space"]),
    ({"env": "Pendulum-v1", "action_dist": "beta", "state_dependent_std": True}, ["a Beta's α and β"]),
    ({"env": "Pendulum-v1", "action_dist": "normal"}, ["invalid action_dist='normal'", "'squashed' or 'beta'"]),
    ({"env": "Pendulum-v1", "state_dependent_std": True, "log_std_init": 3.0}, ["invalid log_std_init=3.0"]),
])
def test_bad_combinations_are_one_line_errors_naming_the_fix(options, words):
    env = options.pop("env")
    with pytest.raises(NatgradError) as e:
        natgrad.TRPO(env, n_steps=8, preset=False, **options)
    assert all(w in str(e.value) for w in words) and "\n" not in str(e.value)


def test_squashed_or_beta_on_infinite_bounds_is_refused():
    space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)
    for dist in ("squashed", "beta"):
        with pytest.raises(NatgradError, match=f"action_dist='{dist}' needs finite bounds"):
            Actor(OBS, space, action_dist=dist)
    Actor(OBS, space)  # the default Gaussian needs none


def test_the_command_line_sets_the_distribution_and_refuses_a_bad_one(tmp_path, monkeypatch, capsys):
    from test_cli import natgrad_cli

    out = tmp_path / "run"
    natgrad_cli("train", "--algo", "ppo", "--env", "Pendulum-v1", "--steps", "64", "--set", "n_steps=64",
                "--set", "minibatches=2", "--set", "action_dist=squashed", "--set", "state_dependent_std=true",
                "--out", str(out), "--eval-episodes", "1", "--no-progress")
    from natgrad.runs.directories import latest_model

    model = natgrad.load(latest_model(out))
    assert model.config.action_dist == "squashed" and model.config.state_dependent_std
    err = one_line_error(monkeypatch, capsys, ["train", "--env", "CartPole-v1", "--steps", "64", "--set",
                                               "action_dist=beta", "--runs-root", str(tmp_path / "runs")])
    assert "action_dist='beta' needs a Box action space" in err
