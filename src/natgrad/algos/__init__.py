"""The algorithms, by the name the CLI and the checkpoints use (``ALGORITHMS``; ``algorithm(name)`` looks one up).

In the order one reads them:

- ``base``: what every algorithm shares: construction, the learn loop (collect, GAE, update), predict, save.
- ``compiled``: ``compile=True``: torch.compile of the update's losses (CUDA graphs on CUDA), eager where it fails.
- ``natural``: NPG and TRPO, one natural-gradient update accepted two ways (``natgrad.natural``).
- ``critic_fit``: V_φ fitted to the GAE returns by minibatch Adam (NPG, TRPO, VPG).
- ``ppo``: PPO-Clip and PPO-KL, one loop of minibatch epochs with two objectives.
- ``trpl``: TRPL, that loop with a trust region per state, by projecting π_θ onto it.
- ``vpg``: the plain policy gradient, the baseline.
- ``checkpoint``: the checkpoint file, read back without running code.
- ``loading``: a model rebuilt from its checkpoint (``natgrad.load``).
"""

from natgrad.algos.base import Algorithm
from natgrad.algos.natural import NPG, TRPO
from natgrad.algos.ppo import PPO, PPOKL
from natgrad.algos.trpl import TRPL
from natgrad.algos.vpg import VPG
from natgrad.errors import NatgradError

ALGORITHMS: dict[str, type[Algorithm]] = {cls.name: cls for cls in (TRPO, NPG, VPG, PPO, PPOKL, TRPL)}
"""The algorithm classes by the name the CLI and checkpoints use: ``trpo``, ``npg``, ``vpg``, ``ppo``, ``ppo-kl``,
``trpl``."""


def algorithm(name: object) -> type[Algorithm]:
    """The algorithm class called ``name`` in ``ALGORITHMS``; anything else is a one-line NatgradError naming the
    known ones."""
    cls = ALGORITHMS.get(name) if isinstance(name, str) else None
    if cls is None:
        raise NatgradError(f"unknown algorithm {name!r}: use one of {', '.join(sorted(ALGORITHMS))}")
    return cls


__all__ = ["ALGORITHMS", "NPG", "PPO", "PPOKL", "TRPL", "TRPO", "VPG", "Algorithm", "algorithm"]
