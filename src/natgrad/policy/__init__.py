"""What π_θ and V_φ are, built from the env's spaces.

In the order a model is built and acts:

- ``spaces``: observations as named leaves (``ObsLayout``), actions as a distribution's samples (``ActionSpec``).
- ``distributions``: the action distributions, each with its closed-form KL and Fisher product.
- ``networks``: MLPs and their orthogonal initialization.
- ``encoders``: observation leaves (vectors, images, discrete values) to one feature vector.
- ``recurrent``: the LSTM/GRU core, reset at episode starts.
- ``actor_critic``: the actor π_θ(a|s) and the critic V_φ(s), separate modules (or sharing a trunk).
- ``inference``: acting step by step, the rollout's and evaluation's hot path.
"""
