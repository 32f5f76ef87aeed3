"""The Adam optimizers: torch's fused Adam, and the same rule in NumPy for the critic's small steps."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch


def adam(params: Iterable[torch.nn.Parameter], lr: float, eps: float = 1e-8) -> torch.optim.Adam:
    """Adam with ``fused=True``: the same update rule, ~20% cheaper per step for small networks on CPU."""
    return torch.optim.Adam(params, lr=lr, eps=eps, fused=True)


class NumpyAdam:
    """Adam on CPU parameters, applied in NumPy to all of them as one flat vector g:

    m ← β₁m + (1 − β₁)g;  v ← β₂v + (1 − β₂)g²;  θ ← θ − lr/(1 − β₁ᵗ) · m / (√v / √(1 − β₂ᵗ) + ε)

    torch.optim.Adam's rule, at a fraction of its per-step overhead: for the critic fit's many
    minibatches of 64. ``state_dict`` keeps torch.optim.Adam's layout, so checkpoints do too.
    """

    def __init__(self, params: Iterable[torch.nn.Parameter], lr: float, eps: float = 1e-8,
                 betas: tuple[float, float] = (0.9, 0.999)) -> None:
        self.params = list(params)
        self.views = [p.detach().numpy() for p in self.params]  # shared memory: updates land in the module
        self.lr, self.eps, self.betas = lr, eps, betas
        n = sum(p.numel() for p in self.params)
        self.exp_avg = np.zeros(n, self.views[0].dtype)
        self.exp_avg_sq = np.zeros(n, self.views[0].dtype)
        self.t = 0

    def step(self, grads: list[np.ndarray]) -> None:
        """One Adam step with ``grads``, one array per parameter."""
        g = np.concatenate([x.reshape(-1) for x in grads])
        beta1, beta2 = self.betas
        self.t += 1
        self.exp_avg += (1 - beta1) * (g - self.exp_avg)
        self.exp_avg_sq *= beta2
        self.exp_avg_sq += (1 - beta2) * g * g
        denom = np.sqrt(self.exp_avg_sq) / math.sqrt(1 - beta2**self.t) + self.eps
        update = (self.lr / (1 - beta1**self.t)) * self.exp_avg / denom
        offset = 0
        for view in self.views:
            view -= update[offset : offset + view.size].reshape(view.shape)
            offset += view.size

    def state_dict(self) -> dict[str, Any]:
        state = {}
        if self.t:
            m, v = self._split(self.exp_avg), self._split(self.exp_avg_sq)
            state = {i: {"step": torch.tensor(float(self.t)), "exp_avg": m[i], "exp_avg_sq": v[i]}
                     for i in range(len(self.params))}
        group = {"lr": self.lr, "betas": self.betas, "eps": self.eps, "weight_decay": 0.0, "amsgrad": False,
                 "params": list(range(len(self.params)))}
        return {"state": state, "param_groups": [group]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state = state_dict["state"]
        if not state:
            self.t = 0
            self.exp_avg[:] = self.exp_avg_sq[:] = 0
            return
        if len(state) != len(self.params):
            raise ValueError(f"optimizer state for {len(state)} parameters, expected {len(self.params)}")
        self.t = int(state[0]["step"])
        self.exp_avg[:] = np.concatenate([state[i]["exp_avg"].numpy().reshape(-1) for i in range(len(state))])
        self.exp_avg_sq[:] = np.concatenate([state[i]["exp_avg_sq"].numpy().reshape(-1) for i in range(len(state))])

    def _split(self, flat: np.ndarray) -> list[torch.Tensor]:
        out, offset = [], 0
        for p in self.params:
            out.append(torch.from_numpy(flat[offset : offset + p.numel()].copy()).view_as(p))
            offset += p.numel()
        return out
