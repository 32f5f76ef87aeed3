"""Where a model's envs come from, and the vector env with same-step autoreset that natgrad steps.

An env is given as a registered id (``"CartPole-v1"``, ``"module:EnvId"``), a zero-argument factory (a
callable, or ``"module:factory"`` from the CLI), a ``gymnasium.Env`` instance, or a ready
``gymnasium.vector.VectorEnv``. An ``EnvSource`` holds it and makes envs from it: as many as asked for
from an id or a factory (also in Ray workers, when the factory can be pickled), exactly the one given
for an instance or a vector env. Gymnasium's env checker runs once on every env natgrad did not make
from the registry (``gym.make`` checks those itself).
"""

from __future__ import annotations

import functools
import importlib
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, SupportsFloat

import gymnasium as gym
from gymnasium.utils.env_checker import check_env
from gymnasium.vector import AutoresetMode, SyncVectorEnv, VectorEnv

from natgrad.config import Vectorization, check_choice
from natgrad.errors import NatgradError, one_line
from natgrad.policy.spaces import ActionSpec, ObsLayout

EnvLike = str | gym.Env | VectorEnv | Callable[[], gym.Env]


@dataclass
class EnvSource:
    """What makes a model's envs: an id, a factory, one env instance, or one vector env."""

    id: str | None = None
    """a registered id ("module:EnvId" imports module first)"""
    factory: Callable[..., gym.Env] | None = None
    instance: gym.Env | None = field(default=None, repr=False)
    vector: VectorEnv | None = field(default=None, repr=False)

    @property
    def name(self) -> str | None:
        """How a checkpoint names this env so that it can be made again: the id, or ``module:factory``
        for a factory importable by name; None for an instance or a vector env."""
        if self.id is not None:
            return self.id
        if self.factory is not None:
            return _importable_name(self.factory)
        return None

    @property
    def label(self) -> str:
        """A short name for run directories and messages."""
        if self.name is not None:
            return self.name
        env = self.instance if self.instance is not None else self.vector
        spec = getattr(env, "spec", None)
        return spec.id if spec is not None else type(getattr(env, "unwrapped", env)).__name__

    @property
    def repeatable(self) -> bool:
        """Whether fresh envs can be made (for more envs, Ray workers and evaluation)."""
        return self.id is not None or self.factory is not None

    def make(self, env_kwargs: dict[str, Any] | None = None) -> gym.Env:
        """One new env (the ones evaluation episodes run on)."""
        if self.id is not None:
            return gym.make(check_env_id(self.id), **(env_kwargs or {}))
        if self.factory is not None:
            return _call_factory(self.factory, env_kwargs)
        raise NatgradError(f"natgrad cannot make another {self.label} env from the one instance it was given: "
                           "pass env=... (an env or a zero-argument factory) to evaluate on")


def env_source(env: EnvLike | EnvSource) -> EnvSource:
    """The ``EnvSource`` of anything ``natgrad.TRPO(env)`` accepts; an id naming ``module:factory`` gives a factory."""
    if isinstance(env, EnvSource):
        return env
    if isinstance(env, str):
        factory = _factory_by_name(env)
        return EnvSource(factory=factory) if factory is not None else EnvSource(id=env)
    if isinstance(env, VectorEnv):
        return EnvSource(vector=env)
    if isinstance(env, gym.Env):
        return EnvSource(instance=env)
    if callable(env):
        return EnvSource(factory=env)
    raise NatgradError(f"cannot train on {env!r}: pass an env id, a gymnasium.Env, a zero-argument factory "
                       "returning one, or a gymnasium.vector.VectorEnv")


def check_env_name(text: str) -> None:
    """Refuse early, in one line, a name that is neither a registered id (``module:EnvId`` imports ``module``) nor a
    ``module:factory``: what the command line takes as ``--env``."""
    if env_source(text).id is not None:
        check_env_id(text)


def make_vec_env(env: EnvLike | EnvSource, n_envs: int = 1, vectorization: Vectorization = "sync",
                 env_kwargs: dict[str, Any] | None = None) -> VectorEnv:
    """``n_envs`` envs from ``env`` (made with ``env_kwargs``) that reset themselves in the step where an
    episode ends.

    Same-step autoreset puts the real last observation of an ended episode in ``info["final_obs"]``,
    which the collector needs to bootstrap truncated episodes; the envs natgrad makes carry no other
    info (``EmptyInfo``). A vector env given as it is must use same-step autoreset already.
    """
    if n_envs < 1:
        raise NatgradError(f"n_envs must be >= 1, got {n_envs}")
    check_choice("vectorization", vectorization, Vectorization)
    source = env_source(env)
    if source.vector is not None:
        vec = _given_vector_env(source.vector, n_envs, env_kwargs)
    elif source.instance is not None:
        if n_envs != 1 or env_kwargs:
            raise NatgradError(f"an env instance is one env: n_envs must be 1 (got {n_envs}) and env_kwargs empty; "
                               "pass a zero-argument factory instead, e.g. lambda: MyEnv(), for more envs")
        _check(source.instance)
        vec = SyncVectorEnv([lambda: EmptyInfo(source.instance)], autoreset_mode=AutoresetMode.SAME_STEP)
    elif source.factory is not None:
        make = functools.partial(_call_factory, source.factory, env_kwargs)
        probe = make()
        _check(probe)
        probe.close()
        cls = SyncVectorEnv if vectorization == "sync" else gym.vector.AsyncVectorEnv
        kwargs = {"shared_memory": True} if vectorization == "async" else {}
        vec = cls([lambda: EmptyInfo(make())] * n_envs, autoreset_mode=AutoresetMode.SAME_STEP, **kwargs)
    else:
        vec = _registered_vec_env(source.id, n_envs, vectorization, env_kwargs)
    check_spaces(vec.single_observation_space, vec.single_action_space)
    return vec


def _registered_vec_env(env_id: str, n_envs: int, vectorization: Vectorization,
                        env_kwargs: dict[str, Any] | None) -> VectorEnv:
    spec = check_env_id(env_id)
    if _namespace(env_id) in BATCHED_PACKAGES:
        return _batched_vec_env(env_id, spec, n_envs, vectorization, env_kwargs)
    kwargs = {"autoreset_mode": AutoresetMode.SAME_STEP}
    if vectorization == "async":
        kwargs["shared_memory"] = True
    try:
        return gym.make_vec(spec, num_envs=n_envs, vectorization_mode=vectorization, vector_kwargs=kwargs,
                            wrappers=[EmptyInfo], **(env_kwargs or {}))
    except gym.error.DependencyNotInstalled as e:
        raise NatgradError(f"{env_id} needs an extra package: {one_line(e)}") from None
    except TypeError as e:
        if not env_kwargs:
            raise
        raise NatgradError(f"{env_id} does not take env_kwargs={env_kwargs} ({one_line(e)}): "
                           "pass only keywords its constructor accepts") from None


def _batched_vec_env(env_id: str, spec: gym.envs.registration.EnvSpec, n_envs: int, vectorization: Vectorization,
                     env_kwargs: dict[str, Any] | None) -> VectorEnv:
    """The ``n_envs`` envs of a batched family (``BATCHED_PACKAGES``) as the one vector env its package steps."""
    if vectorization != "sync":
        raise NatgradError(f"{env_id} steps its {n_envs} envs as one batch in this process: leave vectorization "
                           f"'sync' (got {vectorization!r})")
    try:
        return gym.make_vec(spec, num_envs=n_envs, vectorization_mode="vector_entry_point", **(env_kwargs or {}))
    except TypeError as e:
        raise NatgradError(f"{env_id} does not take env_kwargs={env_kwargs} ({one_line(e)}): "
                           "pass only keywords the env takes") from None


def _given_vector_env(vec: VectorEnv, n_envs: int, env_kwargs: dict[str, Any] | None) -> VectorEnv:
    if vec.metadata.get("autoreset_mode") != AutoresetMode.SAME_STEP:
        raise NatgradError(
            "natgrad steps vector envs with same-step autoreset (to bootstrap truncated episodes from their real "
            "last observation): make it with autoreset_mode=gymnasium.vector.AutoresetMode.SAME_STEP, e.g. "
            "gym.make_vec(id, n, vector_kwargs={'autoreset_mode': AutoresetMode.SAME_STEP}), or pass a factory")
    if n_envs not in (1, vec.num_envs) or env_kwargs:
        raise NatgradError(f"the vector env given has {vec.num_envs} envs: leave n_envs unset (or {vec.num_envs}) "
                           "and env_kwargs empty")
    if _converts_arrays(vec) and isinstance(vec.unwrapped, (SyncVectorEnv, gym.vector.AsyncVectorEnv)):
        raise NatgradError(
            "Gymnasium's array conversions (NumpyToTorch, ...) fail on the final_obs of a Sync/AsyncVectorEnv's "
            "same-step autoreset (an array of objects): pass the vector env without the conversion (natgrad reads "
            "NumPy envs directly), or one whose final_obs is one array (e.g. a gymnax/... vector env)")
    if isinstance(vec, SyncVectorEnv):
        _check(vec.envs[0])
    return vec


def _converts_arrays(vec: VectorEnv) -> bool:
    """Whether a wrapper of ``vec`` is one of Gymnasium's array conversions (NumpyToTorch, JaxToTorch, ...), found
    by class name since their module needs the optional ``array_api_compat``."""
    while isinstance(vec, gym.vector.VectorWrapper):
        if any(cls.__name__ == "ArrayConversion" for cls in type(vec).__mro__):
            return True
        vec = vec.env
    return False


class EmptyInfo(gym.Wrapper):
    """The env with an empty ``info`` from ``step`` and ``reset``.

    The collector reads no per-env info, and a vector env merges every key of every sub-env's info
    into arrays at every step, a noticeable share of a MuJoCo step's own cost (docs/results/performance.md).
    """

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        """The env's step, its info dropped."""
        obs, reward, terminated, truncated, _ = self.env.step(action)
        return obs, reward, terminated, truncated, {}

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        """The env's reset, its info dropped."""
        obs, _ = self.env.reset(**kwargs)
        return obs, {}


def make_env(env: EnvLike | EnvSource, env_kwargs: dict[str, Any] | None = None) -> gym.Env:
    """One env from ``env`` made with ``env_kwargs``, as the evaluation episodes run on."""
    return env_source(env).make(env_kwargs)


def check_env_id(env_id: str, imports: bool = True) -> gym.envs.registration.EnvSpec:
    """The registered spec of ``env_id``; an unknown id is refused with how to list the known ones.

    ``"module:EnvId"`` imports ``module`` first (which registers ``EnvId``), in every process that
    makes the env: the way to bring a custom env to Ray workers. With ``imports=False`` (natgrad's own env
    factories, whose ``env_id`` may come from a file) such an id is refused instead: nothing is imported.
    """
    module, _, name = env_id.rpartition(":")
    if module and not imports:
        raise NatgradError(f"{env_id!r} names a module to import; natgrad's env factories make registered ids only "
                           "(they run no code an argument names): pass a registered id, or your own module:factory "
                           "as the env")
    if module:
        _import(module, env_id)
    namespace = _namespace(name)
    if namespace in ENV_PACKAGES and name not in gym.registry:
        _register_package(namespace, name)
    try:
        return gym.spec(name)
    except gym.error.Error as e:
        raise NatgradError(
            f"unknown environment id {env_id!r} ({one_line(e)}); list the registered ids with "
            "`python -c 'import gymnasium; gymnasium.pprint_registry()'`, or pass module:factory"
        ) from None


def _register_gymnax(_: Any) -> None:
    from natgrad.rollouts import gymnax

    gymnax.register()


def _register_envpool(_: Any) -> None:
    from natgrad.rollouts import envpool

    envpool.register()


# Env packages whose ids natgrad registers on first use (their import alone does not): namespace → (module,
# how to register, the extra that installs it)
ENV_PACKAGES: dict[str, tuple[str, Callable[[Any], None], str]] = {
    "ALE": ("ale_py", lambda module: gym.register_envs(module), "atari"),
    "MinAtar": ("minatar.gym", lambda module: module.register_envs(), "minatar"),
    "gymnax": ("gymnax", _register_gymnax, "gymnax"),
    "envpool": ("envpool", _register_envpool, "envpool"),
}


# The families whose N envs natgrad makes as one vector env stepped in a batch by their package (their ids'
# ``vector_entry_point``, with same-step autoreset), not as N Gymnasium envs
BATCHED_PACKAGES = frozenset({"gymnax", "envpool"})


# natgrad's own env factories: they make registered ids only (``check_env_id(..., imports=False)``), so natgrad may
# call them with whatever env_kwargs a file gives
NATGRAD_FACTORIES = frozenset({"natgrad.wrappers:atari", "natgrad.wrappers:minigrid", "natgrad.wrappers:no_velocity"})


def untrusted_env(name: str) -> str | None:
    """Why natgrad makes the env ``name`` that a file names (a checkpoint's) only if the user trusts the file, or
    None when it may make it unasked: a plain id already registered with Gymnasium, an id of a family natgrad
    registers itself (``ENV_PACKAGES``: natgrad's list, not the file's) or one of natgrad's own factories
    (``NATGRAD_FACTORIES``). Anything else would import a module the file names (``module:...``), or is not
    registered here."""
    if name in NATGRAD_FACTORIES:
        return None
    if ":" in name:
        return "which natgrad would import to make"
    if name in gym.registry or _namespace(name) in ENV_PACKAGES:
        return None
    return "which is not a registered Gymnasium id here"


def _namespace(env_id: str) -> str | None:
    """The namespace of a Gymnasium id (``ALE`` of ``ALE/Pong-v5``), None without one."""
    return env_id.partition("/")[0] if "/" in env_id else None


def _register_package(namespace: str, env_id: str) -> None:
    module_name, register, extra = ENV_PACKAGES[namespace]
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        raise NatgradError(f"{env_id} needs the {module_name.split('.')[0]} package: pip install "
                           f"'natgrad[{extra}]'") from None
    register(module)


def check_spaces(observation_space: gym.Space, action_space: gym.Space) -> None:
    """Raise a one-line NatgradError unless natgrad supports these spaces."""
    layout = ObsLayout(observation_space)
    action = ActionSpec.of(action_space)
    if layout.has_mask and layout.mask_size != action.mask_size:
        raise NatgradError(f"the observation's action_mask has {layout.mask_size} entries; the action space "
                           f"{action_space} needs {action.mask_size or 'none (masks need Discrete or MultiDiscrete)'}")


def offers_action_masks(env: VectorEnv) -> bool:
    """Whether the envs have an ``action_masks()`` method (sb3-contrib's convention), through any wrappers; a
    batched vector env (without ``call``) has none."""
    return hasattr(env, "call") and all(env.call("has_wrapper_attr", "action_masks"))


def _check(env: gym.Env) -> None:
    """Whether natgrad supports the spaces of an env it did not make from the registry, then Gymnasium's env checker
    on it as natgrad will step it (with its wrappers); the checker's warnings are shown, but for its advice to check
    the unwrapped env instead.

    The checker's steps that make a new env from ``env.spec`` are skipped (rendering, closing): they refuse any
    wrapper not built on ``gymnasium.utils.RecordConstructorArgs``, and natgrad never re-makes an env that way."""
    check_spaces(env.observation_space, env.action_space)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*is different from the unwrapped version")
            check_env(env.env if isinstance(env, EmptyInfo) else env, skip_render_check=True, skip_close_check=True)
    except (AssertionError, gym.error.Error) as e:
        raise NatgradError(f"the env fails Gymnasium's env checker: {one_line(e)}") from None


def _factory_by_name(text: str) -> Callable[..., gym.Env] | None:
    """The callable ``module:name`` names, if ``name`` is not a registered id after importing ``module``."""
    module, _, name = text.rpartition(":")
    if not module:
        return None
    mod = _import(module, text)
    if name in gym.registry:
        return None
    obj = getattr(mod, name, None)
    if obj is None or not callable(obj):
        return None
    return obj


def _import(module: str, what: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise NatgradError(f"cannot import {module!r} for environment {what!r} ({one_line(e)}): "
                           "make the module importable (installed, or on PYTHONPATH) where the env runs") from None


def _call_factory(factory: Callable[..., gym.Env], env_kwargs: dict[str, Any] | None) -> gym.Env:
    try:
        env = factory(**(env_kwargs or {}))
    except gym.error.DependencyNotInstalled as e:
        raise NatgradError(f"the env needs an extra package: {one_line(e)}") from None
    if not isinstance(env, gym.Env):
        raise NatgradError(f"the env factory {_importable_name(factory) or factory!r} returned {type(env).__name__}, "
                           "not a gymnasium.Env")
    return env


def _importable_name(obj: Any) -> str | None:
    """``module:qualname`` if importing it gives ``obj`` back (a module-level function or class), else None."""
    module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", "")
    if not module or module == "__main__" or "<" in qualname or "." in qualname:
        return None
    try:
        found = getattr(importlib.import_module(module), qualname)
    except (ImportError, AttributeError):
        return None
    return f"{module}:{qualname}" if found is obj else None
