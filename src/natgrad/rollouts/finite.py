"""Refusing NaN and inf where they would enter a model: env outputs, and tensors before they are saved.

A non-finite reward or observation trains on silently and ends in NaN weights; a non-finite
parameter written to a checkpoint poisons every run resumed from it. Each is refused in one line.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from natgrad.errors import NatgradError


def _first_non_finite(values: np.ndarray) -> tuple[int, ...] | None:
    """The index of the first NaN or inf in ``values`` (row-major order); None if every entry is finite."""
    if np.isfinite(values).all():
        return None
    return tuple(int(i) for i in np.argwhere(~np.isfinite(values))[0])


def finite_rows(raw: np.ndarray, rows: int, what: str = "observation") -> np.ndarray:
    """``raw`` as a (rows, D) float64 array; a NaN or inf is refused with the env index and the fix."""
    raw = np.asarray(raw, np.float64).reshape(rows, -1)
    bad = _first_non_finite(raw)
    if bad is not None:
        raise NatgradError(
            f"the environment returned a non-finite {what} ({raw[bad]}) from env index {bad[0]}: fix the env or "
            "wrap it (e.g. gymnasium.wrappers.TransformObservation) so observations stay finite"
        )
    return raw


def finite_input(values: np.ndarray, what: str) -> np.ndarray:
    """(rows, …) ``values`` a caller passed, refused in one line (``what``, e.g. "predict got a non-finite
    observation", then the first such value and its row) unless every entry is finite."""
    bad = _first_non_finite(values)
    if bad is not None:
        raise NatgradError(f"{what} ({values[bad]} in row {bad[0]}): pass finite numbers")
    return values


def check_rewards(rewards: np.ndarray, first_step: int) -> None:
    """Refuse a NaN or inf among (T, N) rewards, naming the first one's env index and its step
    (``first_step`` + t, counting the vector env's steps)."""
    bad = _first_non_finite(rewards)
    if bad is not None:
        t, env = bad
        raise NatgradError(
            f"the environment returned a non-finite reward ({rewards[t, env]}) at step {first_step + t} of env "
            f"index {env}: fix the env or wrap it (e.g. gymnasium.wrappers.TransformReward) so rewards stay finite"
        )


def check_finite(modules: Mapping[str, torch.nn.Module], when: str) -> None:
    """Refuse modules holding a NaN or inf parameter or buffer, naming the first one and ``when`` it was seen."""
    for name, module in modules.items():
        for key, tensor in module.state_dict().items():
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                raise NatgradError(
                    f"{name}.{key} is not finite {when}, so it is not saved: lower the learning rate or the "
                    "trust region (max_kl), or check the env's rewards and observations"
                )
