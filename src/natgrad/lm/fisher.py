"""The exact token Fisher of a language-model policy, as a Gauss–Newton product through the network.

F v = (1/n) Σ_t J_tᵀ M_t J_t v over the n generated tokens t of a batch (padding excluded), where J_t =
∂(logits_t / temperature)/∂θ and M_t = diag(p_t) − p_t p_tᵀ, the softmax's Fisher in its logits, applied in closed
form (``Categorical.fisher``: O(V) per token, never a V×V matrix). F is the Hessian of the mean token
KL(π_old ‖ π_θ) at θ_old (the KL's gradient in the logits vanishes there). θ: the parameters with
``requires_grad`` (the LoRA adapters alone for a ``peft`` model).

Jᵀw is a backward pass; J v uses the double-vjp trick, as ``natgrad.natural.linearized``: h(u) = Jᵀu is linear in
a dummy cotangent u, so ∂(h(u)·v)/∂u = J v. Attention runs in PyTorch's math kernel while the graph is built, the
one whose backward can itself be differentiated.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from natgrad.lm.sampling import Rollout, completion_logits
from natgrad.natural.flat import flat_grad
from natgrad.policy.distributions import Categorical


def differentiable_attention() -> object:
    """A context in which scaled-dot-product attention uses the math kernel (twice differentiable)."""
    return sdpa_kernel(SDPBackend.MATH)


class LinearizedLM:
    """The model at its current θ on a rollout: one forward pass, with its graph, serves the logits, the gradient of
    any token objective and every Fisher-vector product."""

    def __init__(self, model: nn.Module, rollout: Rollout, temperature: float, params: Sequence[Tensor]) -> None:
        self.params, self.mask = list(params), rollout.completion_mask
        with differentiable_attention():
            self.out = completion_logits(model, rollout, temperature)
        self.old = Categorical(self.out.detach())

    def value_and_grad(self, f: Callable[[Tensor], Tensor]) -> tuple[Tensor, Tensor]:
        """f(logits) and its gradient in θ as one flat vector, through the saved forward."""
        y = f(self.out)
        return y.detach(), flat_grad(y, self.params, retain_graph=True)

    def fisher_vector_product(self, damping: float = 0.0) -> Callable[[Tensor], Tensor]:
        """v ↦ F v + damping·v (see the module docstring)."""
        weights = (self.mask / self.mask.sum().clamp(min=1.0)).to(self.out.dtype).unsqueeze(-1)  # 1/n on real tokens
        u = torch.zeros_like(self.out, requires_grad=True)
        jt_u = torch.autograd.grad(self.out, self.params, u, create_graph=True, materialize_grads=True)
        linked = [i for i, t in enumerate(jt_u) if t.requires_grad]  # parameters the logits depend on

        def fvp(v: Tensor) -> Tensor:
            chunks = v.split([p.numel() for p in self.params])
            jv = torch.autograd.grad([jt_u[i] for i in linked], u, [chunks[i].view_as(self.params[i]) for i in linked],
                                     retain_graph=True)[0]
            (m_jv,) = self.old.fisher(jv)
            return flat_grad(self.out, self.params, grad_outputs=m_jv * weights, retain_graph=True) + damping * v

        return fvp
