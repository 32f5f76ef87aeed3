"""The critic's step on a trunk shared with the actor, for TRPO and NPG, with the trust region held for the update.

When actor and critic share their trunk (encoder, recurrent core, hidden layers), every step of the critic on
the trunk moves the policy too. Peers that fit the critic by gradient steps after the policy step leave that move
unbounded. Here the critic's output layer is fitted by Adam (it does not touch π), and then, for ``critic_step =
"natural"``, the trunk takes one natural-gradient step on the value loss in the same policy-space geometry as
the policy step:

    minimize ½ E[(V_w(s) − R)²] over the trunk w  subject to  KL(π_w₁ ‖ π_w) ≤ ε_v  (quadratic model),

solved with the policy's Fisher-vector products restricted to the trunk, CG and β = √(2ε_v / xᵀFx), and
accepted, by backtracking, only where the value loss falls and the whole update's mean KL(π_old ‖ π_new)
stays within δ + ε_v; else the trunk stays where the policy step left it, bit for bit.
"""

from __future__ import annotations

import torch
from torch import Tensor

from natgrad.config import NaturalConfig
from natgrad.natural.flat import flat_grad, set_flat_params
from natgrad.natural.linearized import LinearizedActor
from natgrad.natural.step import NaturalStep, trust_region_step
from natgrad.objectives.losses import value_loss
from natgrad.policy.actor_critic import Actor, Critic, PolicyInputs
from natgrad.policy.distributions import Distribution


def natural_critic_step(actor: Actor, critic: Critic, actor_inputs: PolicyInputs, critic_inputs: PolicyInputs,
                        returns: Tensor, old: Distribution, cfg: NaturalConfig) -> NaturalStep:
    """One natural-gradient step of the shared trunk on the value loss (see the module docstring), in place.
    ``old`` is π before the update's policy step; the step's ``kl`` is the whole update's KL(π_old ‖ π_new), its
    ``improvement`` the value loss's fall."""
    trunk = critic.trunk_parameters()

    def objective() -> Tensor:
        return -value_loss(critic(critic_inputs), returns)

    def evaluate(theta: Tensor) -> tuple[Tensor, Tensor]:
        set_flat_params(trunk, theta)
        with torch.no_grad():
            return objective(), old.kl(actor(actor_inputs)).mean()

    value = objective()
    g = flat_grad(value, trunk)
    fvp = LinearizedActor(actor, actor_inputs, wrt=trunk).fisher_vector_product(cfg.damping)
    return trust_region_step(trunk, g, value.detach(), fvp, evaluate=evaluate, line_search=True, cfg=cfg,
                             radius=cfg.critic_kl, bound=cfg.max_kl + cfg.critic_kl)


def critic_fit_parameters(critic: Critic, cfg: NaturalConfig) -> list[torch.nn.Parameter]:
    """What the critic's Adam fit moves: everything for separate networks and for ``critic_step = "adam"``; with a
    shared trunk otherwise, the critic's output layer only."""
    if not cfg.share_trunk or cfg.critic_step == "adam":
        return list(critic.parameters())
    return critic.head_layer_parameters()
