"""TRPL: PPO's loop with a trust region per state, enforced by projecting π_θ onto it (Otto et al., ICLR 2021).

PPO's clip bounds the policy's change on average, and only for the actions sampled; TRPL projects each state's
Gaussian onto {m(π̃, π_old) ≤ ε_μ, c(π̃, π_old) ≤ ε_Σ} inside the loss (``natgrad.objectives.projection``), so that
the objective scores a policy within the region at every state, and regresses the network's own policy onto that
projection so that the policy which acts next stays near it.
"""

from __future__ import annotations

import torch
from gymnasium import spaces

from natgrad.algos.ppo import Proximal
from natgrad.config import TRPLConfig
from natgrad.errors import NatgradError
from natgrad.objectives.losses import surrogate
from natgrad.objectives.projection import divergence, project
from natgrad.policy.distributions import DiagGaussian, Distribution, StateDependentStd


def gaussian(dist: Distribution) -> DiagGaussian:
    """The Gaussian of a Box policy: the distribution itself, or a state-dependent σ's inner one."""
    return dist.inner if isinstance(dist, StateDependentStd) else dist


class TRPL(Proximal):
    """TRPL: L(θ) = E[π̃_θ(a|s)/π_old(a|s) Â] − α E[d(π_θ, sg(π̃_θ))], π̃_θ the per-state projection of π_θ onto the
    trust region around the rollout's π_old, in PPO's epochs of minibatch Adam."""

    name = "trpl"
    config_cls = TRPLConfig
    config: TRPLConfig

    def _setup(self) -> None:
        if not isinstance(self.action_space, spaces.Box):
            raise NatgradError(f"TRPL projects Gaussian policies over Box actions, and this env's actions are "
                               f"{self.action_space}: use PPO, PPO-KL or TRPO for them")
        super()._setup()

    def projected(self, new: Distribution, old: Distribution) -> DiagGaussian:
        """π̃ = N(μ̃, diag σ̃²): ``new``'s Gaussian projected per state onto the trust region around ``old``'s,
        differentiable in ``new``'s parameters."""
        cfg, p, q = self.config, gaussian(new), gaussian(old)
        mean, log_std = project(cfg.projection, p.mean, p.log_std, q.mean, q.log_std, cfg.mean_bound, cfg.cov_bound)
        return DiagGaussian(mean, log_std)

    def _policy(self, new: Distribution, old: Distribution) -> Distribution:
        return self.projected(new, old)

    def _objective(self, log_probs, log_probs_old, adv, old, new, coefs):
        """E[π̃_θ/π_old Â] − α E[d(π_θ, π̃)], the regression's target π̃ = Π(sg(π_θ)) held fixed."""
        cfg = self.config
        with torch.no_grad():
            target = self.projected(new.detach(), old)
        p = gaussian(new)
        regression = divergence(cfg.projection, p.mean, p.log_std, target.mean, target.log_std).mean()
        return (surrogate(log_probs, log_probs_old, adv) - cfg.trust_region_coef * regression,
                {"policy/trust_region_loss": regression.detach()})
