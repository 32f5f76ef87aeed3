"""The algorithms, by the name the CLI and the checkpoints use."""

from natgrad.algos.base import Algorithm
from natgrad.algos.natural import NPG, TRPO
from natgrad.algos.ppo import PPO, PPOKL
from natgrad.algos.vpg import VPG

ALGORITHMS: dict[str, type[Algorithm]] = {cls.name: cls for cls in (TRPO, NPG, VPG, PPO, PPOKL)}
"""The algorithm classes by the name the CLI and checkpoints use: ``trpo``, ``npg``, ``vpg``, ``ppo``, ``ppo-kl``."""

__all__ = ["ALGORITHMS", "NPG", "PPO", "PPOKL", "TRPO", "VPG", "Algorithm"]
