"""Every action distribution against independent computations: the FVP (both routes) against the explicit
float64 Hessian of the mean KL, with and without masks; KL, entropy and log-probabilities against brute-force
enumeration of the joint actions; masked actions never sampled; TRPO's KL bound with masks."""

from __future__ import annotations

import copy
import inspect
import itertools
import math
import typing

import gymnasium as gym
import numpy as np
import pytest
import torch
from fisher_reference import assert_both_fvp_routes_exact, float64_actor, jitter, random_trpo_step

from natgrad.config import NaturalConfig
from natgrad.policy import distributions
from natgrad.policy.actor_critic import Actor, PolicyInputs
from natgrad.policy.distributions import Distribution
from natgrad.policy.spaces import ACTION_KINDS, ActionKind

OBS = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
BOX = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
BOUNDED = gym.spaces.Box(np.array([-1.0, 0.0], np.float32), np.array([2.0, 0.5], np.float32))
SPACES = {
    "categorical": gym.spaces.Discrete(4),
    "multicategorical": gym.spaces.MultiDiscrete([3, 2, 4]),
    "multicategorical-2d": gym.spaces.MultiDiscrete([[2, 3], [3, 2]]),
    "bernoulli": gym.spaces.MultiBinary(3),
    "gaussian": BOX,
    "gaussian-state-std": BOX,
    "squashed": BOUNDED,
    "squashed-state-std": BOUNDED,
    "beta": BOUNDED,
}
OPTIONS = {  # the actor's options besides the space (a Box's distribution)
    "gaussian-state-std": {"state_dependent_std": True},
    "squashed": {"action_dist": "squashed"},
    "squashed-state-std": {"action_dist": "squashed", "state_dependent_std": True},
    "beta": {"action_dist": "beta"},
}
MASKABLE = ["categorical", "multicategorical", "multicategorical-2d"]
CONTINUOUS = [k for k, space in SPACES.items() if isinstance(space, gym.spaces.Box)]


def random_mask(actor: Actor, shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    """Legal actions at random, about half of them, at least one per state (per head)."""
    heads = []
    for n in actor.action.nvec:
        mask = torch.rand(*shape, n, generator=gen) < 0.5
        keep = torch.randint(n, shape, generator=gen)
        heads.append(mask | torch.nn.functional.one_hot(keep, n).bool())
    return torch.cat(heads, -1)


def setup(kind: str, masked: bool, shape=(4, 3)):
    """A float64 actor moved off its near-zero output init, states of leading ``shape`` and (maybe) masks."""
    actor = float64_actor(OBS, SPACES[kind], scale=0.5, hidden=(5,), **OPTIONS.get(kind, {}))
    gen = torch.Generator().manual_seed(2)
    mask = random_mask(actor, shape, gen) if masked else None
    return actor, PolicyInputs(torch.randn(*shape, 3, dtype=torch.float64, generator=gen), mask)


CASES = [(k, False) for k in SPACES] + [(k, True) for k in MASKABLE]


@pytest.mark.parametrize("kind, masked", CASES)
@pytest.mark.parametrize("damping", [0.0, 0.1])
def test_both_fvp_routes_equal_the_explicit_hessian_of_the_mean_kl(kind, masked, damping):
    actor, inputs = setup(kind, masked)
    assert_both_fvp_routes_exact(actor, inputs, damping)


@pytest.mark.parametrize("kind", MASKABLE)
def test_illegal_logits_are_outside_the_kl_and_the_fisher(kind):
    """Changing the logit of an illegal action changes nothing: its rows and columns of F are 0 (in the
    logits), its gradient is 0, and the KL does not move."""
    actor, inputs = setup(kind, masked=True)
    out = actor.body(inputs).detach()
    dist = actor.distribution(out, inputs.mask)
    u = torch.randn_like(out) * (~inputs.mask)  # a change of the illegal logits only
    assert torch.all(dist.fisher(u)[0] == 0)
    moved = actor.distribution(out + 100 * u, inputs.mask)
    assert torch.all(dist.kl(moved) == 0) and torch.equal(dist.log_probs if kind == "categorical" else
                                                          torch.cat([h.log_probs for h in dist.heads], -1)
                                                          .masked_fill(~inputs.mask, 0),
                                                          moved.log_probs if kind == "categorical" else
                                                          torch.cat([h.log_probs for h in moved.heads], -1)
                                                          .masked_fill(~inputs.mask, 0))
    logits = out.clone().requires_grad_()
    actor.distribution(logits, inputs.mask).entropy().sum().backward()
    assert torch.all(logits.grad[~inputs.mask] == 0) and torch.isfinite(logits.grad).all()


def joint_actions(actor: Actor) -> torch.Tensor:
    """Every joint action of a finite action space, (A, K) (or (A,) for Discrete)."""
    if actor.action.kind == "discrete":
        return torch.arange(actor.action.nvec[0])
    values = [range(n) for n in actor.action.nvec] if actor.action.kind == "multidiscrete" else \
        [range(2)] * actor.action.n_out
    return torch.tensor(list(itertools.product(*values)), dtype=torch.float64 if
                        actor.action.kind == "binary" else torch.int64)


@pytest.mark.parametrize("kind, masked", [c for c in CASES if c[0] not in CONTINUOUS])
def test_log_prob_entropy_and_kl_against_enumeration(kind, masked):
    actor, inputs = setup(kind, masked, shape=(5,))
    with torch.no_grad():
        p = actor(inputs)
        other = copy.deepcopy(actor)
        jitter(other, 0.3)
        q = other(inputs)
        actions = joint_actions(actor)
        # log π(a|s) of every joint action at every state: (A, S)
        logp = torch.stack([p.log_prob(a.expand(5, *a.shape)) for a in actions])
        logq = torch.stack([q.log_prob(a.expand(5, *a.shape)) for a in actions])
        probs = logp.exp()
        torch.testing.assert_close(probs.sum(0), torch.ones(5, dtype=torch.float64))
        if masked:  # a joint action with an illegal entry has probability exactly 0
            legal = torch.stack([_legal(actor, inputs.mask, a) for a in actions])
            assert torch.all(probs[~legal] == 0) and torch.all(probs[legal] > 0)
        plogp = torch.where(probs > 0, probs * logp, torch.zeros_like(probs))
        torch.testing.assert_close(p.entropy(), -plogp.sum(0))
        kl = torch.where(probs > 0, probs * (logp - logq), torch.zeros_like(probs)).sum(0)
        torch.testing.assert_close(p.kl(q), kl)
        assert torch.all(p.kl(p).abs() < 1e-12) and torch.all(p.kl(q) >= 0)
        mode = p.mode()
        best = actions[logp.argmax(0)]
        assert torch.equal(mode.to(best.dtype), best)


def _legal(actor: Actor, mask: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
    """Whether every entry of ``action`` is legal under ``mask`` (S, Σn), per state."""
    heads = mask.split(actor.action.nvec, -1)
    entries = action.reshape(-1)
    return torch.stack([h[:, int(a)] for h, a in zip(heads, entries)]).all(0)


@pytest.mark.parametrize("kind", MASKABLE)
def test_a_masked_action_is_never_sampled(kind):
    actor, inputs = setup(kind, masked=True, shape=(4,))
    with torch.no_grad():
        dist = actor(PolicyInputs(inputs.obs.repeat(25_000, 1), inputs.mask.repeat(25_000, 1)))
        samples = dist.sample(torch.Generator().manual_seed(0))  # 10⁵ draws
    mask = inputs.mask.repeat(25_000, 1)
    heads = mask.split(actor.action.nvec, -1)
    entries = samples.reshape(len(samples), -1)
    for k, head in enumerate(heads):
        assert head.gather(1, entries[:, k:k + 1]).all()
    assert len(torch.unique(entries, dim=0)) > 1


@pytest.mark.parametrize("kind", ["categorical", "multicategorical", "bernoulli", *CONTINUOUS[1:]])
def test_kl_within_the_trust_region_after_every_accepted_trpo_step_with_masks(kind):
    """Random problems: random states, masks (where the space has them), actions sampled from π_old and random
    advantages; every accepted step has KL ≤ δ measured independently of the step."""
    cfg = NaturalConfig(max_kl=0.01)
    accepted = 0
    for trial in range(8):
        actor, inputs = setup(kind, masked=kind in MASKABLE, shape=(64, 2))
        step, kl, gain = random_trpo_step(actor, inputs, cfg, trial)
        if step.accepted:
            accepted += 1
            assert kl <= cfg.max_kl * (1 + 1e-9) and gain > 0
            assert kl == pytest.approx(step.kl, rel=1e-9)
        else:
            assert kl == 0.0
    assert accepted >= 6
    assert math.isfinite(step.cg_residual)


def test_every_distribution_class_has_the_distribution_interface():
    classes = [c for c in vars(distributions).values()
               if inspect.isclass(c) and c.__module__ == distributions.__name__ and c is not Distribution]
    assert len(classes) == 7 and all(issubclass(c, Distribution) for c in classes)
    assert not isinstance(object(), Distribution)  # the check has teeth


def test_every_action_kind_has_one_entry_and_builds_its_distribution():
    assert tuple(ACTION_KINDS) == typing.get_args(ActionKind)
    built = {}
    for kind in SPACES:
        actor, inputs = setup(kind, masked=False)
        dist = actor(inputs)
        assert isinstance(dist, Distribution) and isinstance(dist[0], Distribution)
        assert dist.sample().shape == dist.mode().shape == (*inputs.obs.shape[:-1], *actor.action.shape)
        built[actor.action.kind] = type(dist)
    assert set(built) == set(ACTION_KINDS)
