"""Rebuilding a saved model: the checkpoint's algorithm, from the registry, with its env, config and state."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from natgrad.algos import ALGORITHMS
from natgrad.algos.base import Algorithm
from natgrad.checkpoint import read
from natgrad.envs import EnvLike
from natgrad.errors import NatgradError
from natgrad.spaces import space_from_data


def load(path: str | Path, env: EnvLike | None = None, **config_overrides: Any) -> Algorithm:
    """Rebuild the model saved at ``path``, ready to ``predict`` or ``learn`` on.

    Its env is made anew from the id (or ``module:factory``) it was trained on, or is ``env`` when given (an
    id, a factory, an env, a vector env: for a model trained on an env object, which natgrad cannot make
    again). Without either, the model has its saved spaces only: ``predict`` works, ``learn`` and evaluation
    ask for an env.

    ``config_overrides`` change settings that do not alter the networks, e.g. ``n_envs``, or say where
    rollouts run (``workers``, ``ray_address``, ``threads``): a checkpoint does not record it, so a model
    trained on Ray loads, predicts and trains on without Ray.
    """
    payload = read(path)
    cls = ALGORITHMS.get(payload["algo"])
    if cls is None:
        raise NatgradError(f"{path} holds an unknown algorithm {payload['algo']!r}: known are {sorted(ALGORITHMS)}")
    try:
        config = cls.config_cls.from_dict(payload["config"])
    except (NatgradError, TypeError, ValueError, AttributeError) as e:  # a refused value, or not a mapping at all
        raise NatgradError(f"{path} holds a config natgrad cannot use ({e}); the file is damaged") from None
    source = env if env is not None else payload["env_id"]
    spaces = None
    if source is None:
        try:
            spaces = (space_from_data(payload["spaces"]["observation"]), space_from_data(payload["spaces"]["action"]))
        except (KeyError, TypeError, AttributeError) as e:
            raise NatgradError(f"{path} names no env and holds no spaces ({e}); the file is damaged") from None
    model = cls(source, seed=payload["seed"], config=config, spaces=spaces, **config_overrides)
    try:
        model.restore(payload)
    except (KeyError, RuntimeError, ValueError) as e:
        raise NatgradError(
            f"{path} does not match its own config ({type(e).__name__}: {e}); the file is damaged"
        ) from None
    return model
