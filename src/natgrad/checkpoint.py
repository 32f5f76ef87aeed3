"""Self-describing checkpoints: algorithm, env, config, networks, optimizers, normalizers, counters.

Written atomically and never over an existing file unless asked; read with
``torch.load(weights_only=True)``, so a checkpoint cannot run code.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from natgrad.errors import NatgradError
from natgrad.finite import check_finite
from natgrad.spaces import space_from_data, space_to_data

if TYPE_CHECKING:
    from natgrad.algos.base import Algorithm
    from natgrad.envs import EnvLike

FORMAT = "natgrad-checkpoint"
VERSION = 1


def save(model: Algorithm, path: str | Path, overwrite: bool = False) -> Path:
    """Write ``model`` to ``path``; an existing file is kept unless ``overwrite=True``."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise NatgradError(f"{path} already exists: choose another path or pass overwrite=True")
    modules = model.trained_modules()
    check_finite(modules, f"at step {model.num_timesteps}")
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "algo": model.name,
        "env_id": model.env_id,  # an id or "module:factory"; None for an env natgrad cannot make again
        "spaces": {"observation": space_to_data(model.observation_space), "action": space_to_data(model.action_space)},
        "seed": model.seed,
        "config": model.config.to_dict(),
        "num_timesteps": model.num_timesteps,
        "num_updates": model.num_updates,
        **{name: module.state_dict() for name, module in modules.items()},
        "optimizers": {k: opt.state_dict() for k, opt in model.optimizers.items()},
        "obs_rms": model.obs_normalizer.rms.state_dict(),
        "reward_rms": model.reward_scaler.rms.state_dict(),
        "extra": model._extra_state(),
    }
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def read(path: str | Path) -> dict[str, Any]:
    """The checkpoint's contents, or a one-line NatgradError saying what is wrong with the file."""
    path = Path(path)
    if path.is_dir():
        raise NatgradError(f"{path} is a directory: pass a checkpoint file such as {path}/model.pt")
    if not path.exists():
        raise NatgradError(f"no checkpoint at {path}: check the path")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a damaged file
        raise NatgradError(
            f"{path} is not a readable natgrad checkpoint (corrupt or truncated: {type(e).__name__}): "
            "pass a file written by model.save or natgrad train"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise NatgradError(f"{path} is not a natgrad checkpoint: pass a file written by model.save or natgrad train")
    if payload.get("version") != VERSION:
        raise NatgradError(f"{path} has checkpoint version {payload.get('version')}; this natgrad reads {VERSION}")
    return payload


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
    from natgrad.algos import ALGORITHMS

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
        for name, module in model.trained_modules().items():
            module.load_state_dict(payload[name])
        for name, opt in model.optimizers.items():
            opt.load_state_dict(payload["optimizers"][name])
        model.obs_normalizer.rms.load_state_dict(payload["obs_rms"])
        model.reward_scaler.rms.load_state_dict(payload["reward_rms"])
        model._load_extra_state(payload["extra"])
    except (KeyError, RuntimeError, ValueError) as e:
        raise NatgradError(
            f"{path} does not match its own config ({type(e).__name__}: {e}); the file is damaged"
        ) from None
    model.num_timesteps = int(payload["num_timesteps"])
    model.num_updates = int(payload["num_updates"])
    return model
