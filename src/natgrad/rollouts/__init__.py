"""Where batches come from: envs stepped by the current actor, into time-major batches with advantages.

In the order one update uses them:

- ``envs``: the env a model trains on (an id, a factory, an env, a vector env), checked, with same-step autoreset.
- ``gymnax``, ``envpool``: envs that those packages step as one batch, by the ids ``gymnax/...`` and ``envpool/...``.
- ``normalization``: running statistics of observations and of the discounted return.
- ``finite``: NaN and inf refused where they would enter a model.
- ``collector``: the actor steps the vector env into a ``RolloutBatch``.
- ``batch``: ``RolloutBatch`` and ``UpdateBatch``, and joining batches along the env axis.
- ``advantages``: the critic's values, bootstrapped on truncation, and GAE into an ``UpdateBatch``.
- ``sampler``: where a learner's batches come from: this process, or Ray (``ray_sampler``, ``ray_cluster``).
- ``workers``: where rollouts run (``Sampling``: workers, Ray address, CPUs per worker).
- ``threads``: torch's thread count while natgrad computes.
"""
