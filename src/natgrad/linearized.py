"""The actor at θ_old on a batch of states, differentiated by hand: one forward pass serves the
distribution, the policy gradient and every Fisher-vector product of a natural-gradient update.

F v = E_s[J_sᵀ M_s J_s v]: J_s = ∂(distribution parameters at s)/∂θ, M_s = the distribution's own
Fisher in those parameters (``Distribution.fisher``). This Gauss–Newton form is exactly the Hessian
of the mean KL(π_old ‖ π_θ) at θ_old that double backprop differentiates (``fisher.fisher_vector_product``):
the KL's gradient in the distribution parameters is zero there, which leaves only JᵀMJ. A product
costs one forward-mode and one reverse pass through the MLP (``mlp_ad``), no second-order graph.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from natgrad.distributions import Distribution
from natgrad.fisher import flatten
from natgrad.mlp_ad import jvp, layers, trace, vjp
from natgrad.policy import Actor


class LinearizedActor:
    """``actor`` and its derivatives at its current θ on ``obs``, in the order of ``actor.parameters()``."""

    def __init__(self, actor: Actor, obs: Tensor) -> None:
        self.actor = actor
        self.params = list(actor.parameters())
        n_net = len(list(actor.net.parameters()))
        # the parameters outside the network (a Gaussian's log σ) come first, as nn.Module lists them
        self.heads = self.params[: len(self.params) - n_net]
        if any(a is not b for a, b in zip(self.params[len(self.heads):], actor.net.parameters())):
            raise TypeError("LinearizedActor expects the actor's own parameters before its network's")
        self.trace = trace(layers(actor.net), obs)
        self.dist = actor.distribution(self.trace.output).detach()

    def value_and_grad(self, f: Callable[[Distribution], Tensor]) -> tuple[Tensor, Tensor]:
        """f(π_θ) and ∇_θ f(π_θ) as one flat vector: autograd through the distribution, ``vjp`` through the net."""
        out = self.trace.output.detach().requires_grad_()
        y = f(self.actor.distribution(out))
        grads = torch.autograd.grad(y, [*self.heads, out], allow_unused=True)
        head_grads = [torch.zeros_like(p) if g is None else g for g, p in zip(grads, self.heads)]
        return y.detach(), flatten([*head_grads, *vjp(self.trace, grads[-1])])

    def fisher_vector_product(self, damping: float = 0.0) -> Callable[[Tensor], Tensor]:
        """v ↦ F v + damping·v, F = (1/N) Σ_s J_sᵀ M_s J_s (see the module docstring)."""
        n, k = len(self.trace.output), len(self.heads)

        def fvp(v: Tensor) -> Tensor:
            chunks = [c.view_as(p) for c, p in zip(v.split([p.numel() for p in self.params]), self.params)]
            m_out, *m_heads = self.dist.fisher(jvp(self.trace, chunks[k:]), *chunks[:k])
            # a head is the same for every state, so its mean over states is itself
            return flatten([*m_heads, *vjp(self.trace, m_out / n)]) + damping * v

        return fvp

