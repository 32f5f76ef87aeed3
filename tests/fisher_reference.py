"""The independent reference for every Fisher-vector product: the explicit float64 Hessian of the mean KL, and the
float64 actors moved off their init that it is checked on."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import torch
from torch import Tensor, nn
from torch.func import functional_call

from natgrad.policy.actor_critic import Actor
from natgrad.policy.spaces import ObsLayout

Forward = Callable[..., object]


def jitter(module: nn.Module, scale: float) -> None:
    """θ ← θ + scale·ε, ε ~ N(0, I) from torch's global generator, for every parameter of ``module``, in place."""
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn_like(p))


def float64_actor(observations: gym.Space | ObsLayout, actions: gym.Space, scale: float = 0.3, seed: int = 1,
                  **options: Any) -> Actor:
    """``Actor(observations, actions, hidden=(4,), log_std_init=-0.3, **options)`` in float64, built after
    ``torch.manual_seed(seed)`` and jittered by ``scale``: off the near-zero output init, so that F is well
    conditioned and the action probabilities are far from uniform."""
    torch.manual_seed(seed)
    actor = Actor(observations, actions, **{"hidden": (4,), "log_std_init": -0.3, **options}).double()
    jitter(actor, scale)
    return actor


def kl_hessian(module: nn.Module, params: list[nn.Parameter], mean_kl: Callable[[Forward], Tensor]) -> Tensor:
    """∂²/∂θ² at θ = the current values of ``params`` of ``mean_kl(forward)``: the mean KL(π_old ‖ π_θ) with π_old
    held fixed, where ``forward(*args)`` calls ``module`` with θ in place of ``params`` (its other parameters as
    they are). Built by ``torch.autograd.functional.hessian`` over the flat θ: no Fisher code of natgrad's."""
    names = {id(p): n for n, p in module.named_parameters()}
    keys = [names[id(p)] for p in params]
    sizes = [p.numel() for p in params]
    theta = torch.cat([p.detach().reshape(-1) for p in params])

    def f(flat: Tensor) -> Tensor:
        values = {k: c.view_as(p) for k, c, p in zip(keys, flat.split(sizes), params)}
        return mean_kl(lambda *args: functional_call(module, values, args))

    return torch.autograd.functional.hessian(f, theta)


def assert_fvp_matches(fvp: Callable[[Tensor], Tensor], hessian: Tensor, damping: float = 0.0, trials: int = 3,
                       rtol: float = 1e-6) -> None:
    """fvp(v) = (H + damping·I) v for random v, to relative error ``rtol`` in the norm."""
    gen = torch.Generator().manual_seed(0)
    for _ in range(trials):
        v = torch.randn(hessian.shape[0], generator=gen, dtype=hessian.dtype)
        want = hessian @ v + damping * v
        err = float((fvp(v) - want).norm() / want.norm())
        assert err <= rtol, f"relative error {err:.3g} > {rtol}"


def assert_both_fvp_routes_exact(actor: nn.Module, inputs: object, damping: float,
                                 params: list[nn.Parameter] | None = None) -> None:
    """The Gauss–Newton FVP (``LinearizedActor``) and double backprop's (``fisher_vector_product``) on ``inputs``,
    with respect to ``params`` (default: every parameter of π), each equal to the explicit Hessian of the mean KL."""
    from natgrad.natural.fisher import fisher_vector_product
    from natgrad.natural.linearized import LinearizedActor

    params = actor.policy_parameters() if params is None else params
    old = actor(inputs).detach()
    hessian = kl_hessian(actor, params, lambda forward: old.kl(forward(inputs)).mean())
    assert_fvp_matches(LinearizedActor(actor, inputs, wrt=params).fisher_vector_product(damping), hessian, damping)
    assert_fvp_matches(fisher_vector_product(old.kl(actor(inputs)).mean(), params, damping), hessian, damping)


def random_trpo_step(actor: nn.Module, inputs: object, cfg: object, seed: int) -> tuple[object, float, float]:
    """One TRPO step on a random problem: actions sampled from π_old on ``inputs`` (leading shape (T, N) or (B,)),
    standard-normal advantages; returns the step and, measured apart from it, the mean KL(π_old ‖ π_new) and the
    surrogate's gain."""
    import copy

    from natgrad.natural.step import natural_step
    from natgrad.objectives.losses import surrogate

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        old = actor(inputs)
        actions = old.sample(gen)
        log_probs = old.log_prob(actions)
    adv = torch.randn(log_probs.shape, dtype=log_probs.dtype, generator=gen)
    before = copy.deepcopy(actor)
    step = natural_step(actor, inputs, actions, log_probs, adv, cfg, line_search=True)
    with torch.no_grad():
        kl = float(before(inputs).kl(actor(inputs)).mean())
        gain = float(surrogate(actor(inputs).log_prob(actions), log_probs, adv) - surrogate(log_probs, log_probs, adv))
    return step, kl, gain

