"""The natural-gradient step that NPG and TRPO share.

In the order one update uses them:

- ``step``: the step: g = ∇L, F x = g by CG, β = √(2δ / xᵀFx), then NPG takes it and TRPO line-searches it.
- ``linearized``: the actor at θ_old on the batch: one forward pass serves L, the KL and the Fisher product.
- ``fisher``: F v by double backprop, the reference the Gauss–Newton product is tested against.
- ``flat``: θ as one vector, and writing a vector back exactly.
- ``cg``: conjugate gradient with Fisher-vector products only; early-exit (CPU) or masked (no host sync).
- ``line_search``: backtracking until L improves and KL ≤ δ, else θ_old bit for bit; early-exit or masked.
- ``shared_critic``: the critic's step on a trunk shared with the actor, inside the trust region.
"""
