"""natgrad: policy optimization in policy space (NPG, TRPO, PPO) on Gymnasium environments."""

from natgrad import callbacks
from natgrad.algos import ALGORITHMS, NPG, PPO, PPOKL, TRPO, VPG, Algorithm
from natgrad.config import (
           Config,
           CriticFitConfig,
           NaturalConfig,
           PPOConfig,
           PPOKLConfig,
           ProximalConfig,
           VPGConfig,
)
from natgrad.errors import NatgradError
from natgrad.loading import load
from natgrad.version import __version__
from natgrad.video import record_video
from natgrad.wrappers import register as _register_envs

__all__ = ["ALGORITHMS", "NPG", "PPO", "PPOKL", "TRPO", "VPG", "Algorithm", "Config", "CriticFitConfig",
           "NaturalConfig",
           "NatgradError", "PPOConfig", "PPOKLConfig", "ProximalConfig", "VPGConfig", "callbacks", "load",
           "record_video", "__version__"]

_register_envs()  # the natgrad/ env ids, so that gymnasium.make("natgrad/CartPoleNoVel-v1") works after import natgrad
