"""Actor π_θ(a|s) and critic V_φ(s): separate modules built from the env's spaces."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from gymnasium import spaces
from torch import Tensor, nn

from natgrad.distributions import Categorical, DiagGaussian, Distribution
from natgrad.errors import NatgradError
from natgrad.networks import mlp

SUPPORTED = "observations: Box; actions: Box or Discrete"


def obs_dim(space: spaces.Space) -> int:
    """Flat size of a Box observation; any other space is refused with what is supported."""
    if not isinstance(space, spaces.Box):
        raise NatgradError(
            f"unsupported observation space {type(space).__name__}: natgrad supports {SUPPORTED} "
            "(flatten it first, e.g. gymnasium.wrappers.FlattenObservation)"
        )
    return int(np.prod(space.shape))


class Actor(nn.Module):
    """Maps observations to an action distribution.

    Discrete: logits = MLP(s). Box: mean = MLP(s), with a state-independent learnable log σ.
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        hidden: Sequence[int] = (64, 64),
        activation: str = "tanh",
        log_std_init: float = 0.0,
    ) -> None:
        super().__init__()
        n_in = obs_dim(observation_space)
        if isinstance(action_space, spaces.Discrete):
            self.continuous = False
            self.net = mlp(n_in, hidden, int(action_space.n), activation, out_gain=0.01)
        elif isinstance(action_space, spaces.Box) and len(action_space.shape) == 1:
            self.continuous = True
            act_dim = action_space.shape[0]
            self.net = mlp(n_in, hidden, act_dim, activation, out_gain=0.01)
            self.log_std = nn.Parameter(torch.full((act_dim,), float(log_std_init)))
        else:
            raise NatgradError(
                f"unsupported action space {action_space}: natgrad supports {SUPPORTED} "
                "(a Box must be 1-D)"
            )

    def forward(self, obs: Tensor) -> Distribution:
        return self.distribution(self.net(obs))

    def distribution(self, out: Tensor) -> Distribution:
        """The distribution whose parameters are the network output ``out`` (and log σ)."""
        if self.continuous:
            return DiagGaussian(out, self.log_std)
        return Categorical(out)


class Critic(nn.Module):
    """V_φ(s) = MLP(s), a scalar per state."""

    def __init__(
        self,
        observation_space: spaces.Space,
        hidden: Sequence[int] = (64, 64),
        activation: str = "tanh",
    ) -> None:
        super().__init__()
        self.net = mlp(obs_dim(observation_space), hidden, 1, activation, out_gain=1.0)

    def forward(self, obs: Tensor) -> Tensor:
        return self.net(obs).squeeze(-1)
