"""Acting in envs, step by step: the rollout's and evaluation's per-step hot path.

``Acting`` picks actions for N envs from their current observations and keeps the recurrent state of each env (reset
where an episode starts). A plain MLP actor on a flat Box observation with Box or Discrete actions acts through
``NumpyActor``, a NumPy copy of it: for one observation, torch.nn's per-call overhead costs many times a small MLP's
arithmetic, and would be most of the per-step cost on top of a MuJoCo step (timings: docs/results/performance.md).
Every other actor (encoders, recurrent cores, masks, other action spaces) acts through torch, on the actor's device.
The NumPy copy serves a model on any device: a NumPy env's observations are on the host, and a small MLP is fastest
there. θ does not change while acting; log-probabilities for training are computed afterwards by the torch actor in
one batched call, so training sees exactly the distribution it differentiates.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from natgrad.policy.actor_critic import Actor, PolicyInputs
from natgrad.policy.distributions import squash
from natgrad.policy.spaces import ActionKind

NUMPY_KINDS: tuple[ActionKind, ...] = ("box", "discrete")
"""The action kinds ``NumpyActor`` samples: a Box's (every ``ActionDist``) and a Categorical's."""

_ACTIVATIONS = {  # the NumPy form of every activation module
    nn.Tanh: np.tanh,
    nn.ReLU: lambda x: np.maximum(x, 0.0),
    nn.ELU: lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0.0))),
}


class NumpyActor:
    """Samples a ~ π_θ(·|s) for a batch of normalized observations with NumPy (a plain MLP actor only)."""

    def __init__(self, actor: Actor) -> None:
        self.layers: list = []
        for module in actor.net:
            if isinstance(module, nn.Linear):
                w = module.weight.detach().cpu().numpy().T.astype(np.float64)
                b = module.bias.detach().cpu().numpy().astype(np.float64)
                self.layers.append((w, b))
            else:
                self.layers.append(_ACTIVATIONS[type(module)])
        self.continuous, self.action = actor.continuous, actor.action
        if self.action.log_std_head:
            self.std = np.exp(actor.log_std.detach().cpu().numpy().astype(np.float64))

    @staticmethod
    def fits(actor: Actor) -> bool:
        """Whether ``actor`` is a plain MLP on a flat vector with Box or Discrete actions."""
        return actor.encoder.identity and actor.core is None and actor.action.kind in NUMPY_KINDS \
            and not actor.layout.has_mask

    def __call__(self, obs: np.ndarray, rng: np.random.Generator | None = None,
                 deterministic: bool = False) -> np.ndarray:
        """a ~ π(·|s), or the mode of π(·|s) (mean, or argmax of the logits) when ``deterministic``."""
        x = obs
        for layer in self.layers:
            x = x @ layer[0] + layer[1] if isinstance(layer, tuple) else layer(x)
        if self.continuous:
            return self._real(x, rng, deterministic).astype(np.float32)
        if deterministic:
            return x.argmax(axis=1)
        # inverse-CDF sampling from softmax(logits)
        p = np.exp(x - x.max(axis=1, keepdims=True))
        cdf = np.cumsum(p, axis=1)
        u = rng.random((len(x), 1)) * cdf[:, -1:]
        return np.minimum((cdf < u).sum(axis=1), x.shape[1] - 1)

    def _real(self, x: np.ndarray, rng: np.random.Generator | None, deterministic: bool) -> np.ndarray:
        """A Box action from the network output ``x`` as the torch actor's distribution gives it
        (``ActionSpec.distribution``): a Beta's on the bounds, else a Gaussian's (a squashed one's latent u)."""
        if self.action.dist == "beta":
            alpha, beta = np.split(np.logaddexp(0.0, x) + 1, 2, axis=1)  # softplus + 1
            spread = alpha + beta - 2
            z = np.divide(alpha - 1, spread, out=np.full_like(spread, 0.5), where=spread > 0) if deterministic \
                else rng.beta(alpha, beta)
            low, high = self.action.space.low, self.action.space.high
            return low + (high - low) * z
        if self.action.state_std:
            x, pre = np.split(x, 2, axis=1)
            std = np.exp(squash(pre, *self.action.log_std_range))
        else:
            std = self.std
        return x if deterministic else x + rng.standard_normal(x.shape) * std


class Acting:
    """Actions for N envs, one step at a time, with each env's recurrent state carried between steps.

    ``masks``: the envs give legal-action masks (in their observations or by ``action_masks()``; the caller
    passes each step's in), so the actor acts through torch, which applies them, even where it could act in NumPy.
    ``tensors``: the observations, masks and episode starts come as tensors (an env that returns torch tensors), and
    the actions go back as tensors on the actor's device, acted through torch.
    """

    def __init__(self, actor: Actor, n_envs: int, rng: np.random.Generator, masks: bool = False,
                 tensors: bool = False) -> None:
        self.actor, self.rng, self.tensors = actor, rng, tensors
        self.use_numpy = NumpyActor.fits(actor) and not masks and not tensors
        device = actor.device
        self.generator = None if self.use_numpy else torch.Generator(device).manual_seed(int(rng.integers(2**62)))
        self.state = torch.zeros(n_envs, actor.state_size, device=device) if actor.recurrent else None
        self.refresh()

    def refresh(self) -> None:
        """Take the actor's current θ (the NumPy copy is a snapshot): call whenever θ has changed."""
        self.numpy = NumpyActor(self.actor) if self.use_numpy else None

    def __call__(self, obs: dict[str, np.ndarray], mask: np.ndarray | None, first: np.ndarray,
                 deterministic: bool = False) -> np.ndarray:
        """Actions (N, ...) for the N envs' normalized leaf arrays ``obs``, their ``mask`` and episode starts."""
        if self.numpy is not None:
            return self.numpy(next(iter(obs.values())), self.rng, deterministic)
        layout, device = self.actor.layout, self.actor.device
        with torch.no_grad():
            inputs = PolicyInputs(layout.pack({k: v[None] for k, v in obs.items()}, device),
                                  None if mask is None else torch.as_tensor(mask)[None].to(device),
                                  torch.as_tensor(first)[None].to(device), self.state)
            dist, self.state = self.actor.step(inputs)
            action = dist.mode() if deterministic else dist.sample(self.generator)
        return action if self.tensors else action.cpu().numpy()
