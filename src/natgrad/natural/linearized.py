"""The actor at θ_old on a batch of states: one forward pass, with its graph, serves the distribution,
L(θ_old), the policy gradient and every Fisher-vector product of a natural-gradient update.

F v = E_s[J_sᵀ M_s J_s v]: J_s = ∂(distribution parameters at s)/∂θ, M_s = the distribution's own
Fisher in those parameters (``Distribution.fisher``). This Gauss–Newton form is exactly the Hessian
of the mean KL(π_old ‖ π_θ) at θ_old that double backprop differentiates (``fisher.fisher_vector_product``):
the KL's gradient in the distribution parameters is zero there, which leaves only JᵀMJ. J runs through the
whole network: encoder (a CNN too) and recurrent core, unrolled over the sequence from its stored state.

Both Jacobian products are autograd's, over the network output y = net(obs):
Jᵀw = ∂(y·w)/∂θ, a backward pass; J v by the double-vjp trick: h(u) = Jᵀu is linear in a dummy
cotangent u, so ∂(h(u)·v)/∂u = J v, a backward pass through h's graph, which is built once per update.
This is cheaper than double backprop, per product and per update; ``torch.func.linearize`` costs about as much
per product but far more to set up, and ``torch.func.jvp`` more per product (docs/results/performance.md).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from natgrad.natural.flat import flat_grad, flatten
from natgrad.policy.actor_critic import Actor, PolicyInputs, as_inputs
from natgrad.policy.distributions import Distribution
from natgrad.policy.spaces import Obs


class LinearizedActor:
    """``actor`` and its derivatives at its current θ on ``inputs``, with respect to ``wrt`` (by default every
    parameter of π, ``actor.policy_parameters()``): the heads among them (e.g. a Gaussian's log σ) first, then
    those the network output depends on; others are held fixed."""

    def __init__(self, actor: Actor, inputs: PolicyInputs | Obs, wrt: list[Tensor] | None = None) -> None:
        inputs = as_inputs(inputs)
        self.actor, self.mask = actor, inputs.mask
        params = actor.policy_parameters() if wrt is None else wrt
        wanted, self.all_heads = {id(p) for p in params}, list(actor.head_parameters())
        self.heads = [h for h in self.all_heads if id(h) in wanted]  # the others (log σ, for the trunk) held fixed
        head_ids = {id(h) for h in self.all_heads}
        self.net_params = [p for p in params if id(p) not in head_ids]
        self.params = [*self.heads, *self.net_params]
        self.out = actor.body(inputs)
        self.dist = actor.distribution(self.out, self.mask).detach()

    def value_and_grad(self, f: Callable[[Distribution], Tensor]) -> tuple[Tensor, Tensor]:
        """f(π_θ) and ∇_θ f(π_θ) as one flat vector, by a backward pass through the saved forward."""
        y = f(self.actor.distribution(self.out, self.mask))
        return y.detach(), flat_grad(y, self.params, retain_graph=True)

    def fisher_vector_product(self, damping: float = 0.0) -> Callable[[Tensor], Tensor]:
        """v ↦ F v + damping·v, F = (1/n) Σ_s J_sᵀ M_s J_s over the n states of any batch shape (see the module
        docstring)."""
        n, k = self.out.shape[:-1].numel(), len(self.heads)  # states: every leading index, e.g. (T, N)
        u = torch.zeros_like(self.out, requires_grad=True)
        jt_u = torch.autograd.grad(self.out, self.net_params, u, create_graph=True)  # h(u) = Jᵀu

        def fvp(v: Tensor) -> Tensor:
            chunks = [c.view_as(p) for c, p in zip(v.split([p.numel() for p in self.params]), self.params)]
            jv = torch.autograd.grad(jt_u, u, chunks[k:], retain_graph=True)[0]
            given = {id(h): c for h, c in zip(self.heads, chunks[:k])}  # a head held fixed moves by zero
            m_out, *m_all = self.dist.fisher(jv, *(given.get(id(h), torch.zeros_like(h)) for h in self.all_heads))
            m_heads = [m for h, m in zip(self.all_heads, m_all) if id(h) in given]
            jt_m = torch.autograd.grad(self.out, self.net_params, m_out / n, retain_graph=True)
            # a head is the same for every state, so its mean over states is itself
            return flatten([*m_heads, *jt_m]) + damping * v

        return fvp
