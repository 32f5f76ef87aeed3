"""Rebuilding a saved model: the checkpoint's algorithm, from the registry, with its env, config and state.

A model file is something people download and share, so loading one runs no code it names: the env it names is
made again only when natgrad can make it without importing anything the file names
(``natgrad.rollouts.envs.untrusted_env``); any other is made only with the user's say-so (``trust_env=True``,
``--trust-env``) or replaced by the user's own (``env=``, ``--env``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gymnasium import Space

from natgrad.algos import algorithm
from natgrad.algos.base import Algorithm
from natgrad.algos.checkpoint import read
from natgrad.config import Config
from natgrad.errors import NatgradError, one_line
from natgrad.policy.actor_critic import network_options
from natgrad.policy.spaces import describe, space_from_data
from natgrad.rollouts.envs import EnvLike, untrusted_env


def load(path: str | Path, env: EnvLike | None = None, trust_env: bool = False, predict_only: bool = False,
         **config_overrides: Any) -> Algorithm:
    """Rebuild the model saved at ``path``, ready to ``predict`` or ``learn`` on.

    Its env is ``env`` when given (an id, a factory, an env, a vector env), else made anew from the id it was
    trained on: a registered Gymnasium id, or one of natgrad's own envs. natgrad runs no code a file names: an env
    it names by ``module:...`` (or an id not registered here) is imported and made only with ``trust_env=True``.
    Without an env (that one, or a model trained on an env object), the model has its saved spaces only:
    ``predict`` works, ``learn`` and evaluation say how to give it an env. ``predict_only=True`` makes no env at
    all (what exporting needs). The env must have the spaces the model acts on.

    ``config_overrides`` change settings that do not alter the networks, e.g. ``n_envs``, or say where and how
    rollouts and the update run (``workers``, ``ray_address``, ``threads``, ``device``, ``compile``): a checkpoint
    does not record these, so a model trained on Ray loads, predicts and trains on without Ray, one trained on a GPU
    loads onto the CPU (``device="auto"``, the default, picks CUDA where torch sees one), and ``compile=True``
    compiles the loaded model's update. Options that shape the networks (``hidden``, ``activation``,
    ``recurrent``, ...) are refused.
    """
    payload = read(path)
    try:
        cls = algorithm(payload.get("algo"))
    except NatgradError as e:
        raise NatgradError(f"{path} holds an {e}") from None
    try:
        config = cls.config_cls.from_dict(payload["config"])
    except (NatgradError, TypeError, ValueError, AttributeError, KeyError) as e:  # a refused value, or no mapping
        raise NatgradError(f"{path} holds a config natgrad cannot use ({e}); the file is damaged") from None
    _check_unchanged(path, config, config_overrides)
    spaces = _saved_spaces(path, payload)
    name = payload.get("env_id")
    if name is not None and not isinstance(name, str):
        raise NatgradError(f"{path} names its env by {type(name).__name__}, not a string; the file is damaged")
    no_env = None if env is not None else _no_env_reason(path, name, trust_env)
    source = None if predict_only or no_env else (env if env is not None else name)
    model = cls(source, seed=payload.get("seed"), config=config, spaces=spaces, **config_overrides)
    if source is None:
        model.env_id, model.no_env_reason = name, no_env or model.no_env_reason
    else:
        _check_spaces(path, model, spaces)
    try:
        model.restore(payload)
    except (KeyError, RuntimeError, ValueError, TypeError) as e:
        raise NatgradError(
            f"{path} does not match its own config ({type(e).__name__}: {one_line(e)}); the file is damaged"
        ) from None
    return model


def _shaping_options(config: Config) -> tuple[str, ...]:
    """The options that shape a model's networks, fixed once it is trained: the networks' own
    (``natgrad.policy.actor_critic.network_options``), the critic's sharing of the trunk, the observations' layout and
    normalization."""
    return (*network_options(config), "share_trunk", "image_channels", "normalize_obs")


def _check_unchanged(path: str | Path, config: Config, overrides: dict[str, Any]) -> None:
    """Refuse, in one line, overrides that change an option shaping the networks saved at ``path`` with ``config``:
    the saved weights fit those networks only."""
    changed = [k for k in _shaping_options(config)
               if k in overrides and getattr(config.replace(**{k: overrides[k]}), k) != getattr(config, k)]
    if changed:
        built = ", ".join(f"{k}={getattr(config, k)!r}" for k in changed)
        raise NatgradError(f"{' and '.join(changed)} cannot change on resume: the networks in {path} were built with "
                           f"{built}; leave {'it' if len(changed) == 1 else 'them'} out, or train a new model")


def _saved_spaces(path: str | Path, payload: dict[str, Any]) -> tuple[Space, Space]:
    """The observation and action spaces the model at ``path`` acts on."""
    try:
        return space_from_data(payload["spaces"]["observation"]), space_from_data(payload["spaces"]["action"])
    except (KeyError, TypeError, AttributeError, ValueError) as e:
        raise NatgradError(f"{path} holds no readable spaces ({type(e).__name__}: {e}); the file is damaged") from None


def _no_env_reason(path: str | Path, name: str | None, trust_env: bool) -> str | None:
    """Why the model at ``path``, trained on ``name``, gets no env unless the user gives one; None if it may get
    that env."""
    if name is None:
        return (f"{path} was trained on an env object, which natgrad cannot make again: pass env=... (--env) with "
                "the env, a factory or its id")
    why = None if trust_env else untrusted_env(name)
    if why is None:
        return None
    return (f"{path} names its env {name!r}, {why}; natgrad does not run code a file names: pass env=... (--env) "
            "or, if you trust the file, trust_env=True (--trust-env)")


def _check_spaces(path: str | Path, model: Algorithm, saved: tuple[Space, Space]) -> None:
    """Refuse, in one line, an env whose spaces are not the ones the model at ``path`` acts on."""
    acts_on = " → ".join(map(describe, saved))
    given = " → ".join(map(describe, (model.observation_space, model.action_space)))
    if given != acts_on:
        model.close()
        raise NatgradError(f"this model ({path}) acts on {acts_on}; {model.env_source.label} is {given}: pass an env "
                           "with the model's spaces")
