"""natgrad: policy optimization in policy space (NPG, TRPO, PPO) on Gymnasium environments.

The package in layers, each importing only from the ones before it:

- ``errors``, ``config``, ``presets``: errors, the configuration dataclasses and the tuned presets;
- ``objectives``: pure tensor functions (GAE, the losses, PPO-KL's β, minibatches, Adam);
- ``policy``: what π_θ and V_φ are (spaces, distributions, encoders, recurrent cores, the actor and critic);
- ``natural`` and ``rollouts``: the natural-gradient step; where batches come from (envs, collector, samplers);
  ``wrappers``: natgrad's env factories and ``natgrad/`` envs, by the name checkpoints store;
- ``algos``: NPG, TRPO, VPG, PPO, PPO-KL, TRPL, checkpoints and loading;
- ``runs``: a training run end to end (run directories, logging, callbacks, evaluation);
- ``tools`` and ``lab``: plots, videos, ONNX export, tuning, benchmark grids; the natural-gradient lab;
- ``cli``: the ``natgrad`` command.
"""

from natgrad.algos import ALGORITHMS, NPG, PPO, PPOKL, TRPL, TRPO, VPG, Algorithm
from natgrad.algos.loading import load
from natgrad.config import (
    Config,
    CriticFitConfig,
    NaturalConfig,
    PPOConfig,
    PPOKLConfig,
    ProximalConfig,
    TRPLConfig,
    VPGConfig,
)
from natgrad.errors import NatgradError
from natgrad.runs import callbacks
from natgrad.tools.video import record_video
from natgrad.version import __version__
from natgrad.wrappers import register as _register_envs

__all__ = ["ALGORITHMS", "NPG", "PPO", "PPOKL", "TRPO", "VPG", "Algorithm", "Config", "CriticFitConfig",
           "NaturalConfig",
           "NatgradError", "PPOConfig", "PPOKLConfig", "ProximalConfig", "TRPL", "TRPLConfig", "VPGConfig",
           "callbacks", "load", "record_video", "__version__"]

_register_envs()  # the natgrad/ env ids, so that gymnasium.make("natgrad/CartPoleNoVel-v1") works after import natgrad
