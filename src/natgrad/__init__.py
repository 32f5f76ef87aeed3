"""natgrad: policy optimization in policy space (NPG, TRPO, PPO) on Gymnasium environments."""

from natgrad.algos import ALGORITHMS, NPG, PPO, PPOKL, TRPO, VPG, Algorithm
from natgrad.checkpoint import load
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

__version__ = "0.1.0"

__all__ = ["ALGORITHMS", "NPG", "PPO", "PPOKL", "TRPO", "VPG", "Algorithm", "Config", "CriticFitConfig",
           "NaturalConfig",
           "NatgradError", "PPOConfig", "PPOKLConfig", "ProximalConfig", "VPGConfig", "load", "__version__"]
