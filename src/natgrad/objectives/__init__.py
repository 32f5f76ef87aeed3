"""The objectives: pure functions over tensors, importing nothing of natgrad's.

In the order one update uses them:

- ``gae``: GAE(γ, λ) advantages and critic targets over a time-major batch; advantage normalization.
- ``losses``: the surrogate L(θ) = E[π_θ/π_old · Â], PPO's clipped objective, the critic's loss, the spread of
  the per-state KL an update reached.
- ``adaptive_kl``: PPO-KL's penalty coefficient β, adapted toward the KL target.
- ``projection``: TRPL's per-state trust-region projections of diagonal Gaussians (KL, W2, Frobenius).
- ``batching``: shuffled minibatches, for PPO's epochs and the critic fit.
- ``optim``: the Adam every algorithm uses.
"""
