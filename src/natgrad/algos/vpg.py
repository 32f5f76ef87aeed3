"""VPG: the same rollout, GAE and critic as NPG/TRPO, with a plain Adam step on the surrogate."""

from __future__ import annotations

from collections.abc import Callable

import torch

from natgrad.algos.base import Algorithm
from natgrad.algos.critic_fit import critic_loss, fit_critic
from natgrad.config import VPGConfig
from natgrad.objectives.losses import kl_spread, surrogate
from natgrad.objectives.optim import adam
from natgrad.rollouts.batch import UpdateBatch


class VPG(Algorithm):
    """Vanilla policy gradient: θ ← Adam(θ, ∇L), one step per batch (the "standard gradient")."""

    name = "vpg"
    config_cls = VPGConfig
    config: VPGConfig

    def _setup(self) -> None:
        self.actor_optimizer = adam(self.actor.parameters(), self.config.pi_lr)
        self.critic_optimizer = adam(self.critic.parameters(), self.config.vf_lr)
        self.optimizers = {"actor": self.actor_optimizer, "critic": self.critic_optimizer}
        self._critic_loss = self.compiler(critic_loss)

    def _update(self, data: UpdateBatch, progress: float, gae: Callable[[], UpdateBatch]) -> dict[str, float]:
        cfg = self.config
        inputs, actions, log_probs = data.actor_inputs, data.actions, data.log_probs
        adv = self._advantages(data)
        with torch.no_grad():
            old = self.actor(inputs).detach()
        loss = -surrogate(self.actor(inputs).log_prob(actions), log_probs, adv)
        self.actor_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.cat([p.grad.reshape(-1) for p in self.actor.parameters()]).norm()
        self.actor_optimizer.step()
        with torch.no_grad():
            dist = self.actor(inputs)
            state_kl = old.kl(dist)
            kl = state_kl.mean()
            improvement = surrogate(dist.log_prob(actions), log_probs, adv) + loss
            entropy = dist.entropy().mean()
        value_loss = fit_critic(self.critic, self.critic_optimizer, data.sequences(cfg.piece_length), cfg.vf_epochs,
                                cfg.vf_minibatch_size, self.generator, self._critic_loss)
        return {
            "policy/kl": float(kl),
            **kl_spread(state_kl),
            "policy/surrogate_improvement": float(improvement),
            "policy/grad_norm": float(grad_norm),
            "policy/entropy": float(entropy),
            "critic/loss": value_loss,
        }
