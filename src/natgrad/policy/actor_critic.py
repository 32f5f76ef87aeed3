"""Actor π_θ(a|s) and critic V_φ(s): separate modules built from the env's spaces.

Each is an encoder (``natgrad.policy.encoders``: MLP input, CNN, one-hot, per Dict entry), an optional recurrent
core (``natgrad.policy.recurrent``), and an MLP ending in the distribution's parameters or the value. What a
network reads is a ``PolicyInputs``: observations with leading dimensions (T, N) (or any, without a
recurrent core), the legal-action mask, the episode starts and the recurrent state before step 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from gymnasium import spaces
from torch import Tensor, nn

from natgrad.config import ActionDist, Activation, Cnn, Recurrent
from natgrad.policy.distributions import Distribution
from natgrad.policy.encoders import Encoder
from natgrad.policy.networks import mlp, orthogonal
from natgrad.policy.recurrent import RecurrentCore
from natgrad.policy.spaces import ActionSpec, Obs, ObsLayout, tree_map


@dataclass(frozen=True)
class PolicyInputs:
    """What the networks read for a batch of states."""

    obs: Obs
    """leaves (T, N, ...), or any leading shape for a network without a recurrent core"""
    mask: Tensor | None = None
    """(T, N, n) bool legal actions, or None (all legal)"""
    first: Tensor | None = None
    """(T, N) bool: the observation starts an episode (the state is reset before it)"""
    state: Tensor | None = None
    """(N, S): the recurrent state before step 0 (zeros if None)"""

    def columns(self, index: Any) -> PolicyInputs:
        """The sequences (columns of a (T, N) batch) selected by ``index``."""
        at = lambda x: None if x is None else x[:, index]
        return PolicyInputs(tree_map(at, self.obs), at(self.mask), at(self.first),
                            None if self.state is None else self.state[index])


def as_inputs(x: PolicyInputs | Obs) -> PolicyInputs:
    """``x`` as ``PolicyInputs`` (plain observations: no mask, no episode starts, no state)."""
    return x if isinstance(x, PolicyInputs) else PolicyInputs(x)


class Network(nn.Module):
    """encoder → (recurrent core) → MLP to ``out_dim`` outputs.

    ``share``: another network whose *trunk* (encoder, recurrent core and hidden layers: all but the output
    layer) this one uses, the very same modules, with an output layer of its own: a shared actor-critic.
    """

    def __init__(self, layout: ObsLayout, out_dim: int, out_gain: float, hidden: Sequence[int] = (64, 64),
                 activation: Activation = "tanh", cnn: Cnn = "auto", cnn_features: int = 0,
                 recurrent: Recurrent = "none", rnn_hidden: int = 64, rnn_layers: int = 1,
                 share: Network | None = None) -> None:
        super().__init__()
        self.layout = layout
        if share is not None:
            self.encoder, self.core = share.encoder, share.core
            hidden_layers = list(share.net)[:-1]
            width = share.net[-1].in_features
            self.net = nn.Sequential(*hidden_layers, orthogonal(nn.Linear(width, out_dim), out_gain))
            return
        self.encoder = Encoder(layout, cnn, cnn_features)
        width = self.encoder.features
        if recurrent != "none":
            self.core = RecurrentCore(recurrent, width, rnn_hidden, rnn_layers)
            width = rnn_hidden
        else:
            self.core = None
        self.net = mlp(width, hidden, out_dim, activation, out_gain=out_gain)

    def trunk_parameters(self) -> list[nn.Parameter]:
        """The parameters before the output layer: encoder, recurrent core, hidden layers."""
        return [*self.encoder.parameters(), *([] if self.core is None else self.core.parameters()),
                *self.net[:-1].parameters()]

    def head_layer_parameters(self) -> list[nn.Parameter]:
        """The output layer's parameters."""
        return list(self.net[-1].parameters())

    @property
    def device(self) -> torch.device:
        """Where the network's parameters live."""
        return self.net[-1].weight.device

    @property
    def recurrent(self) -> bool:
        """Whether the network has a recurrent core."""
        return self.core is not None

    @property
    def state_size(self) -> int:
        """Entries of the recurrent state per env (0 without a core)."""
        return 0 if self.core is None else self.core.state_size

    def body(self, inputs: PolicyInputs) -> Tensor:
        """The network's outputs for every state of ``inputs``."""
        x = self.encoder(inputs.obs, self.net[-1].weight.dtype)
        if self.core is not None:
            x = self.core.outputs(x, inputs.first, inputs.state)
        return self.net(x)

    def body_and_states(self, inputs: PolicyInputs) -> tuple[Tensor, Tensor | None]:
        """The outputs, and the recurrent state after every step (T, N, S) (None without a core)."""
        x = self.encoder(inputs.obs, self.net[-1].weight.dtype)
        states = None
        if self.core is not None:
            x, states = self.core(x, inputs.first, inputs.state)
        return self.net(x), states


def network_options(cfg: Any) -> dict[str, Any]:
    """The keyword arguments of ``Network`` that a config sets."""
    return {k: getattr(cfg, k) for k in ("hidden", "activation", "cnn", "cnn_features", "recurrent", "rnn_hidden",
                                         "rnn_layers")}


class Actor(Network):
    """Maps observations to an action distribution (``natgrad.policy.spaces.ActionSpec``).

    Discrete, MultiDiscrete, MultiBinary: logits = net(s). Box, by ``action_dist``: a Gaussian's or squashed
    Gaussian's mean = net(s), with a state-independent learnable log σ, the actor's one parameter outside the network
    (its *head*), or with ``state_dependent_std`` (mean, r) = net(s), log σ bounded from r; a Beta's (x_α, x_β) =
    net(s).
    """

    def __init__(self, observation_space: spaces.Space | ObsLayout, action_space: spaces.Space,
                 hidden: Sequence[int] = (64, 64), activation: Activation = "tanh", log_std_init: float = 0.0,
                 action_dist: ActionDist = "gaussian", state_dependent_std: bool = False,
                 log_std_range: tuple[float, float] = (-5.0, 2.0), **options: Any) -> None:
        layout = observation_space if isinstance(observation_space, ObsLayout) else ObsLayout(observation_space)
        action = ActionSpec.of(action_space, action_dist, state_dependent_std, log_std_range)
        super().__init__(layout, action.n_out, 0.01, hidden, activation, **options)
        self.action = action
        if action.log_std_head:
            self.log_std = nn.Parameter(torch.full(action.shape, float(log_std_init)))
        elif action.state_std:  # r's bias: log σ = log_std_init where the (near-zero at init) weights give r = bias
            low, high = action.log_std_range
            with torch.no_grad():
                self.net[-1].bias[action.shape[0]:] = math.atanh(2 * (log_std_init - low) / (high - low) - 1)

    @classmethod
    def from_config(cls, layout: ObsLayout, action_space: spaces.Space, cfg: Any) -> Actor:
        """The actor ``cfg`` asks for on these spaces."""
        return cls(layout, action_space, log_std_init=cfg.log_std_init, action_dist=cfg.action_dist,
                   state_dependent_std=cfg.state_dependent_std, log_std_range=(cfg.log_std_min, cfg.log_std_max),
                   **network_options(cfg))

    @property
    def continuous(self) -> bool:
        """Whether the actions are a Box (real-valued)."""
        return self.action.continuous

    def forward(self, x: PolicyInputs | Obs) -> Distribution:
        """π(·|s) for the states of ``x``."""
        inputs = as_inputs(x)
        return self.distribution(self.body(inputs), inputs.mask)

    def distribution(self, out: Tensor, mask: Tensor | None = None) -> Distribution:
        """The distribution whose parameters are the network output ``out`` (and log σ), over ``mask``'s actions."""
        return self.action.distribution(out, mask, self.log_std if self.action.log_std_head else None)

    def head_parameters(self) -> list[nn.Parameter]:
        """The parameters the distribution reads directly, the same for every state (a Gaussian's log σ)."""
        return [self.log_std] if self.action.log_std_head else []

    def body_parameters(self) -> list[nn.Parameter]:
        """The parameters the network output depends on."""
        return [*self.trunk_parameters(), *self.head_layer_parameters()]

    def policy_parameters(self) -> list[nn.Parameter]:
        """θ: every parameter of π, heads first (the order of flat θ in the natural-gradient step)."""
        return [*self.head_parameters(), *self.body_parameters()]

    def step(self, inputs: PolicyInputs) -> tuple[Distribution, Tensor | None]:
        """π for one step of N envs (``inputs`` of leading shape (1, N)): the distribution and the new state."""
        out, states = self.body_and_states(inputs)
        return self.distribution(out[0], None if inputs.mask is None else inputs.mask[0]), \
            None if states is None else states[0]


class Critic(Network):
    """V_φ(s) = net(s), a scalar per state."""

    def __init__(self, observation_space: spaces.Space | ObsLayout, hidden: Sequence[int] = (64, 64),
                 activation: Activation = "tanh", **options: Any) -> None:
        layout = observation_space if isinstance(observation_space, ObsLayout) else ObsLayout(observation_space)
        super().__init__(layout, 1, 1.0, hidden, activation, **options)

    @classmethod
    def from_config(cls, layout: ObsLayout, cfg: Any, actor: Actor | None = None) -> Critic:
        """The critic ``cfg`` asks for: on the actor's trunk when ``cfg.share_trunk`` (then ``actor`` is needed)."""
        return cls(layout, **network_options(cfg), share=actor if cfg.share_trunk else None)

    def forward(self, x: PolicyInputs | Obs) -> Tensor:
        """V(s) for the states of ``x``."""
        return self.body(as_inputs(x)).squeeze(-1)

    def values_and_states(self, inputs: PolicyInputs) -> tuple[Tensor, Tensor | None]:
        """V at every state and the recurrent state after every step (None without a core)."""
        out, states = self.body_and_states(inputs)
        return out.squeeze(-1), states

