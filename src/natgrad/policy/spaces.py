"""What natgrad makes of Gymnasium spaces: observations as named arrays, actions as a distribution's samples.

An observation space is walked once (nested Dict and Tuple included) into *leaves*, each stored in the
form its encoder wants (``natgrad.policy.encoders``):

- ``vector``: every Box that is not an image, flattened and concatenated into one float vector, the only
  part the running normalizer sees;
- ``image:PATH``: a uint8 or bool Box of 2 or 3 dimensions, stored as uint8 (C, H, W);
- ``discrete:PATH`` / ``multidiscrete:PATH``: Discrete / MultiDiscrete as int64 indices from 0;
- ``binary:PATH``: MultiBinary as float 0/1.

A batch of observations (``Obs``) is that leaf's tensor when the space has one leaf (a flat Box: the
plain (…, D) tensor), else a dict of tensors by leaf key. A top-level Dict entry ``action_mask`` is not an
observation: it is the mask of legal actions. Spaces are also written to and read from plain data, so a
checkpoint can rebuild them without the env.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal, Union

import numpy as np
import torch
from gymnasium import spaces
from torch import Tensor

from natgrad.config import ActionDist, ImageChannels, check_choice
from natgrad.errors import NatgradError
from natgrad.policy.distributions import (
    Bernoulli,
    Beta,
    Categorical,
    DiagGaussian,
    Distribution,
    MultiCategorical,
    SquashedGaussian,
    StateDependentStd,
    squash,
)

Obs = Union[Tensor, dict[str, Tensor]]
NumpyObs = Union[np.ndarray, dict[str, np.ndarray]]
MASK_KEY = "action_mask"
VECTOR = "vector"
SUPPORTED = ("observations: Box, Discrete, MultiDiscrete, MultiBinary, and Dict or Tuple of them; "
             "actions: Box (1-D), Discrete, MultiDiscrete, MultiBinary")


def tree_map(fn: Callable[[Any], Any], obs: Any) -> Any:
    """``fn`` on every leaf of an observation batch (a tensor or array, or a dict of them)."""
    return {k: fn(v) for k, v in obs.items()} if isinstance(obs, dict) else fn(obs)


def tree_cat(parts: list[Any], dim: int) -> Any:
    """Observation batches joined along ``dim``, leaf by leaf."""
    if isinstance(parts[0], dict):
        return {k: torch.cat([p[k] for p in parts], dim) for k in parts[0]}
    return torch.cat(parts, dim)


def leading_shape(obs: Obs, leaf_ndim: int) -> torch.Size:
    """The batch dimensions of ``obs``: its first leaf's shape without that leaf's own ``leaf_ndim`` dims."""
    first = next(iter(obs.values())) if isinstance(obs, dict) else obs
    return first.shape[: first.dim() - leaf_ndim]


@dataclass(frozen=True)
class Leaf:
    """One stored part of an observation."""

    key: str
    """``"vector"``, or ``"<kind>:<path>"``."""
    kind: str
    """vector | image | discrete | multidiscrete | binary"""
    shape: tuple[int, ...]
    """per observation, as stored: (D,), (C, H, W), (), (K,)"""
    dtype: np.dtype
    nvec: tuple[int, ...] = ()
    """discrete: (n,); multidiscrete: every entry's n, flattened"""
    scale: float = 1.0
    """image: stored value × scale lies in [0, 1]"""


@dataclass(frozen=True)
class Part:
    """Where a leaf, or a piece of the vector, is read from in a raw observation."""

    path: tuple[Any, ...]
    space: spaces.Space
    kind: str
    channels_last: bool = False


class ObsLayout:
    """The leaves of an observation space and how to turn raw observations into them."""

    def __init__(self, space: spaces.Space, image_channels: ImageChannels = "auto") -> None:
        check_choice("image_channels", image_channels, ImageChannels)
        self.space = space
        self.has_mask = isinstance(space, spaces.Dict) and MASK_KEY in space.spaces
        self.mask_size = int(np.prod(space[MASK_KEY].shape)) if self.has_mask else 0
        parts = list(_walk(space, (), image_channels))
        self._vector = [p for p in parts if p.kind == VECTOR]
        self._others = [p for p in parts if p.kind != VECTOR]
        leaves = []
        if self._vector:
            size = sum(int(np.prod(p.space.shape)) for p in self._vector)
            leaves.append(Leaf(VECTOR, VECTOR, (size,), np.dtype(np.float64)))
        leaves += [_leaf(p) for p in self._others]
        if not leaves:
            raise NatgradError(f"observation space {space} has nothing to observe besides its {MASK_KEY!r}")
        self.leaves = leaves
        self.single = len(leaves) == 1
        self.vector_size = leaves[0].shape[0] if self._vector else 0

    @property
    def parts(self) -> list[Part]:
        """Where the leaves are read from in a raw observation: the vector's pieces first, then the other leaves."""
        return [*self._vector, *self._others]

    def encode(self, raw: Any, rows: int) -> dict[str, Any]:
        """``rows`` raw observations (a vector env's batch; one unbatched observation with rows=1) as leaf
        arrays of (rows, *leaf.shape); the vector in float64, not yet normalized. Entries that are torch tensors
        give tensors on their device: one encoding, written in the functions NumPy and torch both have by the same
        names (``asarray``, ``concatenate``, ``moveaxis``, dtypes), run in the module of the entries."""
        xp = torch if isinstance(entry(raw, (self._vector or self._others)[0].path), Tensor) else np
        out = {}
        if self._vector:
            pieces = [xp.asarray(entry(raw, p.path), dtype=xp.float64).reshape(rows, -1) for p in self._vector]
            out[VECTOR] = pieces[0] if len(pieces) == 1 else xp.concatenate(pieces, axis=1)
        for part, leaf in zip(self._others, self.leaves[len(self.leaves) - len(self._others):]):
            x = xp.asarray(entry(raw, part.path))
            if part.kind == "image":
                x = x.reshape(rows, *part.space.shape)
                if x.ndim == 3:
                    x = x[:, None]
                elif part.channels_last:
                    x = _contiguous(xp.moveaxis(x, -1, 1))
                out[leaf.key] = xp.asarray(x, dtype=xp.uint8)
            elif part.kind in ("discrete", "multidiscrete"):
                start = _alongside(x, np.asarray(part.space.start).reshape(-1))
                out[leaf.key] = xp.asarray(x.reshape(rows, -1) - start, dtype=xp.int64).reshape(rows, *leaf.shape)
            else:
                out[leaf.key] = xp.asarray(x.reshape(rows, -1), dtype=xp.float32)
        return out

    def mask(self, raw: Any, rows: int) -> np.ndarray | None:
        """The legal-action mask carried in the observation, (rows, n) bool; None without one."""
        if not self.has_mask:
            return None
        return np.asarray(raw[MASK_KEY]).reshape(rows, -1).astype(bool)

    def rows_of(self, raw: Any) -> int:
        """How many observations ``raw`` holds, 0 for one unbatched observation. An entry that is missing, not
        numbers, of the wrong shape, or batched unlike the others is refused in one line saying so."""
        mask = [Part((MASK_KEY,), self.space[MASK_KEY], "mask")] if self.has_mask else []
        rows = {part.path: _rows(raw, part) for part in [*self.parts, *mask]}
        if len(set(rows.values())) > 1:
            sizes = ", ".join(f"{_name(path) or 'it'}: {n or 'unbatched'}" for path, n in rows.items())
            raise NatgradError(f"its entries have different batch sizes ({sizes}): give every entry the same first "
                               "axis, or none")
        return next(iter(rows.values()))

    def pack(self, arrays: dict[str, np.ndarray | Tensor], device: torch.device | str = "cpu") -> Obs:
        """Leaf arrays (or tensors) as the tensors a network on ``device`` takes: one tensor for a single leaf, else a
        dict."""
        tensors = {k: torch.as_tensor(v).to(device) for k, v in arrays.items()}
        return tensors[self.leaves[0].key] if self.single else tensors

    def unpack(self, obs: Obs) -> dict[str, Tensor]:
        """Network tensors as a dict by leaf key (the inverse of ``pack``)."""
        return {self.leaves[0].key: obs} if self.single else obs

    def empty(self, shape: tuple[int, ...]) -> dict[str, np.ndarray]:
        """Zeroed storage of (*shape, *leaf.shape) per leaf, the vector in float32 (normalized)."""
        return {leaf.key: np.zeros((*shape, *leaf.shape), np.float32 if leaf.kind == VECTOR else leaf.dtype)
                for leaf in self.leaves}


def _walk(space: spaces.Space, path: tuple[Any, ...], image_channels: ImageChannels) -> Iterator[Part]:
    where = f" at {_name(path)}" if path else ""
    if isinstance(space, spaces.Dict):
        for key, sub in space.spaces.items():
            if not (path == () and key == MASK_KEY):
                yield from _walk(sub, (*path, key), image_channels)
    elif isinstance(space, spaces.Tuple):
        for i, sub in enumerate(space.spaces):
            yield from _walk(sub, (*path, i), image_channels)
    elif isinstance(space, (spaces.Box, spaces.MultiDiscrete, spaces.MultiBinary)) and not np.prod(space.shape):
        raise NatgradError(f"observation space {space}{where} holds no values: drop that entry with a wrapper (e.g. "
                           "gymnasium.wrappers.FilterObservation), or observe at least one value")
    elif isinstance(space, spaces.Box):
        if _is_image(space):
            last = image_channels == "last" or (image_channels == "auto" and space.shape[0] >= space.shape[-1])
            yield Part(path, space, "image", channels_last=len(space.shape) == 3 and last)
        else:
            yield Part(path, space, VECTOR)
    elif isinstance(space, spaces.Discrete):
        yield Part(path, space, "discrete")
    elif isinstance(space, spaces.MultiDiscrete):
        yield Part(path, space, "multidiscrete")
    elif isinstance(space, spaces.MultiBinary):
        yield Part(path, space, "binary")
    else:
        raise NatgradError(
            f"unsupported observation space {type(space).__name__}{where}: natgrad supports {SUPPORTED} "
            "(drop or convert that entry with a wrapper, e.g. gymnasium.wrappers.FilterObservation)"
        )


def _name(path: tuple[Any, ...]) -> str:
    """An entry's path in a raw observation as error messages name it: ``"pos"``, ``"t/0"``; "" for the whole."""
    return "/".join(map(str, path))


def _rows(raw: Any, part: Part) -> int:
    """How many observations the raw entry of ``part`` holds (0: one, unbatched); refused in one line unless it is
    there, holds numbers (integers for an image) and has the space's shape, with or without a batch axis."""
    name = _name(part.path)
    where = f"its entry {name!r}" if name else "it"
    try:
        x = np.asarray(entry(raw, part.path))
    except (KeyError, IndexError, TypeError):
        raise NatgradError(f"it has no entry {name!r}: pass every entry of the space") from None
    except ValueError:  # a ragged nesting of lists
        raise NatgradError(f"{where} is not an array of numbers") from None
    space, shape = part.space, tuple(part.space.shape)
    if x.shape != shape and (x.shape[1:] != shape or len(x) == 0):
        batch = str(("n", *shape)).replace("'", "")
        raise NatgradError(f"{where} has shape {x.shape}: expected shape {shape} (one observation) or {batch} "
                           "(a batch)")
    if x.dtype.kind not in "biuf":
        raise NatgradError(f"{where} holds {x.dtype} values: pass numbers")
    if part.kind == "image" and x.dtype.kind == "f":
        raise NatgradError(f"{where} holds {x.dtype} pixels where the space's are {space.dtype}: pass the image as "
                           f"the env returns it ({space.dtype})")
    if not _in_space(x, part):
        raise NatgradError(f"{where} holds values outside {space}: pass values the space contains")
    return 0 if x.shape == shape else len(x)


def _in_space(x: np.ndarray, part: Part) -> bool:
    """Whether the values of a raw entry lie in its space: indices of a (Multi)Discrete, 0/1 of a MultiBinary, an
    image's pixel range. A vector's values are not bounded (its finiteness is checked once encoded)."""
    space = part.space
    if part.kind in ("discrete", "multidiscrete"):
        index = x - np.asarray(space.start)
        n = np.asarray(space.n if part.kind == "discrete" else space.nvec)
        return bool(((index == np.round(index)) & (index >= 0) & (index < n)).all())
    if part.kind == "binary":
        return bool(np.isin(x, (0, 1)).all())
    if part.kind == "image":
        return bool(((x >= space.low) & (x <= space.high)).all())
    return True


def _is_image(space: spaces.Box) -> bool:
    return space.dtype in (np.uint8, np.bool_) and len(space.shape) in (2, 3)


def _leaf(part: Part) -> Leaf:
    key = f"{part.kind}:{_name(part.path)}"
    space = part.space
    if part.kind == "image":
        shape = space.shape
        chw = (1, *shape) if len(shape) == 2 else (shape[2], shape[0], shape[1]) if part.channels_last else shape
        high = float(np.max(space.high)) if space.dtype == np.uint8 else 1.0
        return Leaf(key, "image", tuple(int(s) for s in chw), np.dtype(np.uint8), scale=1.0 / high if high > 0 else 1.0)
    if part.kind == "discrete":
        return Leaf(key, "discrete", (), np.dtype(np.int64), nvec=(int(space.n),))
    if part.kind == "multidiscrete":
        nvec = tuple(int(n) for n in np.asarray(space.nvec).reshape(-1))
        return Leaf(key, "multidiscrete", (len(nvec),), np.dtype(np.int64), nvec=nvec)
    return Leaf(key, "binary", (int(np.prod(space.shape)),), np.dtype(np.float32))


def _alongside(x: np.ndarray | Tensor, values: np.ndarray) -> np.ndarray | Tensor:
    """``values`` where they combine with ``x``: as they are beside an array, a tensor on ``x``'s device beside one."""
    return torch.as_tensor(values, device=x.device) if isinstance(x, Tensor) else values


def _contiguous(x: np.ndarray | Tensor) -> np.ndarray | Tensor:
    """``x`` in row-major memory (a moved axis otherwise reaches a convolution as channels-last strides)."""
    return x.contiguous() if isinstance(x, Tensor) else np.ascontiguousarray(x)


def entry(raw: Any, path: tuple[Any, ...]) -> Any:
    """The entry of a raw observation at ``path`` (keys and indices of nested Dicts and Tuples)."""
    for key in path:
        raw = raw[key]
    return raw


ActionKind = Literal["box", "discrete", "multidiscrete", "binary"]
"""The action spaces natgrad acts in: Box (1-D), Discrete, MultiDiscrete, MultiBinary (``ACTION_KINDS``)."""


@dataclass(frozen=True)
class ActionFamily:
    """What one ``ActionKind`` is to the policy: the space, the sizes, the distribution and the actions' form."""

    space: type[spaces.Space]
    """the Gymnasium space class"""
    sizes: Callable[[Any], tuple[int, tuple[int, ...], tuple[int, ...]]]
    """a space's network outputs, shape of one stored action, and every index's n (``ActionSpec``)"""
    distribution: Callable[[ActionSpec, Tensor, Tensor | None, Tensor | None], Distribution]
    """the distribution of (the spec, network output, mask, log σ)"""
    continuous: bool = False
    """real actions, of the distribution ``ActionSpec.dist`` names; the env gets them within the space's bounds"""
    indices: bool = False
    """int64 indices from 0, which a legal-action mask can rule out; the env counts them from the space's
    ``start``"""


def _box_sizes(space: spaces.Box) -> tuple[int, tuple[int, ...], tuple[int, ...]]:
    if len(space.shape) != 1:
        raise _unsupported(space, " (a Box action must be 1-D: flatten it with a wrapper)")
    return space.shape[0], space.shape, ()


def _multidiscrete_sizes(space: spaces.MultiDiscrete) -> tuple[int, tuple[int, ...], tuple[int, ...]]:
    nvec = tuple(int(n) for n in np.asarray(space.nvec).reshape(-1))
    return sum(nvec), (len(nvec),), nvec


def _binary_sizes(space: spaces.MultiBinary) -> tuple[int, tuple[int, ...], tuple[int, ...]]:
    k = int(np.prod(space.shape))
    return k, (k,), ()


def _unsupported(space: spaces.Space, hint: str = "") -> NatgradError:
    return NatgradError(f"unsupported action space {space}: natgrad supports {SUPPORTED}{hint}")


def _box_distribution(spec: ActionSpec, out: Tensor, mask: Tensor | None, log_std: Tensor | None) -> Distribution:
    """The ``spec.dist`` distribution of a Box: out = the mean (and r, the pre-bound log σ, with a state-dependent
    std), or a Beta's (x_α, x_β)."""
    if spec.dist == "beta":
        return Beta(out, *spec.bounds(out))
    mean, pre = out.chunk(2, -1) if spec.state_std else (out, None)
    if pre is not None:
        log_std = squash(pre, *spec.log_std_range)
    dist = DiagGaussian(mean, log_std)
    if spec.dist == "squashed":
        dist = SquashedGaussian(dist, *spec.bounds(out))
    return dist if pre is None else StateDependentStd(dist, pre, spec.log_std_range)


def _check_dist(space: spaces.Space, continuous: bool, dist: ActionDist, state_std: bool) -> None:
    """One line naming the fix unless ``dist`` (and a state-dependent std) fit the action space."""
    check_choice("action_dist", dist, ActionDist)
    if not continuous and (dist != "gaussian" or state_std):
        option = f"action_dist={dist!r}" if dist != "gaussian" else "state_dependent_std=True"
        raise NatgradError(f"{option} needs a Box action space, not {space}: leave it out (the default), the space "
                           "sets its own distribution")
    if dist == "beta" and state_std:
        raise NatgradError("state_dependent_std=True is for action_dist 'gaussian' or 'squashed': a Beta's α and β "
                           "are per state already; leave it out")
    if dist != "gaussian" and not np.all(np.isfinite(space.low) & np.isfinite(space.high) & (space.high > space.low)):
        raise NatgradError(f"action_dist={dist!r} needs finite bounds with low < high, and the action space {space} "
                           "lacks them: use action_dist='gaussian', or rescale the actions to finite bounds")


ACTION_KINDS: dict[ActionKind, ActionFamily] = {
    "box": ActionFamily(spaces.Box, _box_sizes, _box_distribution, continuous=True),
    "discrete": ActionFamily(spaces.Discrete, lambda space: (int(space.n), (), (int(space.n),)),
                             lambda spec, out, mask, log_std: Categorical(out, mask), indices=True),
    "multidiscrete": ActionFamily(spaces.MultiDiscrete, _multidiscrete_sizes,
                                  lambda spec, out, mask, log_std: MultiCategorical(out, spec.nvec, mask),
                                  indices=True),
    "binary": ActionFamily(spaces.MultiBinary, _binary_sizes, lambda spec, out, mask, log_std: Bernoulli(out)),
}
"""Every ``ActionKind``: a new kind of action space is one entry here (and its distribution's class)."""


@dataclass(frozen=True)
class ActionSpec:
    """An action space as the policy sees it: network outputs, the distribution over them, storage, env form."""

    space: spaces.Space
    kind: ActionKind
    """box | discrete | multidiscrete | binary (``ACTION_KINDS``)"""
    n_out: int
    """network outputs: the Gaussian's mean (and r, its log σ before the bound, with a state-dependent std), a
    Beta's (x_α, x_β), or the logits"""
    shape: tuple[int, ...]
    """one stored action: (A,), (), (K,), (K,)"""
    nvec: tuple[int, ...] = ()
    """discrete: (n,); multidiscrete: every entry's n, flattened"""
    dist: ActionDist = "gaussian"
    """a Box's distribution (``natgrad.config.ActionDist``); "gaussian" for the others, whose space sets theirs"""
    state_std: bool = False
    """a Gaussian's log σ is a network output (per state), not a head"""
    log_std_range: tuple[float, float] = (-5.0, 2.0)
    """(log_std_min, log_std_max): the bounds of a state-dependent log σ"""

    @classmethod
    def of(cls, space: spaces.Space, dist: ActionDist = "gaussian", state_std: bool = False,
           log_std_range: tuple[float, float] = (-5.0, 2.0)) -> ActionSpec:
        """The spec of an action space with a Box's distribution ``dist`` (and a state-dependent std); an unsupported
        space, or a distribution that does not fit it, is a one-line error."""
        for kind, family in ACTION_KINDS.items():
            if isinstance(space, family.space):
                n_out, shape, nvec = family.sizes(space)
                _check_dist(space, family.continuous, dist, state_std)
                per_action = 2 if dist == "beta" or state_std else 1
                return cls(space, kind, n_out * per_action, shape, nvec, dist, state_std, tuple(log_std_range))
        raise _unsupported(space)

    @property
    def family(self) -> ActionFamily:
        """What the spec's kind is to the policy (``ACTION_KINDS``)."""
        return ACTION_KINDS[self.kind]

    @property
    def continuous(self) -> bool:
        """Whether the actions are real (a Box)."""
        return self.family.continuous

    @property
    def log_std_head(self) -> bool:
        """Whether the actor learns one log σ for every state, a parameter beside the network (a Gaussian's, a
        squashed Gaussian's, unless it is state-dependent)."""
        return self.continuous and self.dist != "beta" and not self.state_std

    @functools.cached_property
    def _bounds(self) -> dict[tuple[torch.dtype, torch.device], tuple[Tensor, Tensor]]:
        return {}

    def bounds(self, like: Tensor) -> tuple[Tensor, Tensor]:
        """A Box's (low, high) as tensors of ``like``'s dtype on its device (made once per dtype and device)."""
        key = (like.dtype, like.device)
        if key not in self._bounds:
            self._bounds[key] = tuple(torch.as_tensor(b, dtype=like.dtype, device=like.device)
                                      for b in (self.space.low, self.space.high))
        return self._bounds[key]

    @property
    def mask_size(self) -> int:
        """Entries of a legal-action mask: one per action (Discrete) or per value of each entry (MultiDiscrete)."""
        return self.n_out if self.family.indices else 0

    @property
    def dtype(self) -> np.dtype:
        """How one stored action is typed: int64 indices, or float32."""
        return np.dtype(np.int64) if self.family.indices else np.dtype(np.float32)

    @functools.cached_property
    def offset(self) -> np.ndarray | None:
        """What the env adds to an index action: the space's ``start``, flattened (None when all 0, or not indices)."""
        start = np.asarray(self.space.start, np.int64).reshape(-1) if self.family.indices else np.zeros(0, np.int64)
        return start if start.any() else None

    def distribution(self, out: Tensor, mask: Tensor | None = None, log_std: Tensor | None = None) -> Distribution:
        """The distribution whose parameters are the network output ``out`` (and the log σ head, see
        ``log_std_head``)."""
        return self.family.distribution(self, out, mask, log_std)

    def to_env(self, actions: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        """(rows, *shape) policy actions in the env's form: real ones (a squashed Gaussian's latent u squashed
        first) clipped to the space's bounds; indices shifted by the space's ``start``, and like the others in the
        space's shape (and, as arrays, its dtype). Tensors stay tensors on their device, for an env that takes
        them."""
        space = self.space
        if isinstance(actions, torch.Tensor):
            return self._tensors_to_env(actions)
        if self.continuous:  # np.clip's value, without its Python-level dispatch (per step, this counts)
            if self.dist == "squashed":
                actions = squash(actions, space.low, space.high)
            return np.minimum(np.maximum(actions, space.low), space.high)
        if self.offset is not None:
            actions = actions + self.offset
        return actions.reshape(len(actions), *space.shape).astype(space.dtype, copy=False)

    def _tensors_to_env(self, actions: torch.Tensor) -> torch.Tensor:
        """``to_env`` of a tensor of actions, on its device."""
        like = lambda x: torch.as_tensor(x, device=actions.device)
        if self.continuous:
            low, high = like(self.space.low), like(self.space.high)
            actions = squash(actions, low, high) if self.dist == "squashed" else actions
            return torch.minimum(torch.maximum(actions, low), high)
        if self.offset is not None:
            actions = actions + like(self.offset)
        return actions.reshape(len(actions), *self.space.shape)


def check_masks(mask: np.ndarray, action: ActionSpec) -> np.ndarray:
    """``mask`` as (rows, n) bool, refused in one line unless it fits ``action`` and leaves a legal action."""
    if action.mask_size == 0:
        raise NatgradError(f"action masks need a Discrete or MultiDiscrete action space, not {action.space}")
    mask = np.asarray(mask).astype(bool).reshape(len(mask), -1)
    if mask.shape[1] != action.mask_size:
        raise NatgradError(f"an action mask has {mask.shape[1]} entries, the action space {action.space} needs "
                           f"{action.mask_size} (one per action{', entry by entry' if len(action.nvec) > 1 else ''})")
    heads = np.split(mask, np.cumsum(action.nvec)[:-1], axis=1)
    for head in heads:
        empty = np.flatnonzero(~head.any(1))
        if len(empty):
            raise NatgradError(f"a state (row {empty[0]}) has no legal action in its mask: every state needs at "
                               "least one (per entry of a MultiDiscrete); end the episode instead")
    return mask


# ---- spaces as plain data (checkpoints load with weights_only=True) ----------------------------------------------

def space_to_data(space: spaces.Space) -> dict[str, Any]:
    """``space`` as nested dicts, lists, strings, numbers and tensors."""
    if isinstance(space, spaces.Box):
        return {"type": "Box", "low": torch.from_numpy(np.array(space.low)),
                "high": torch.from_numpy(np.array(space.high)), "dtype": str(space.dtype)}
    if isinstance(space, spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, spaces.MultiDiscrete):
        return {"type": "MultiDiscrete", "nvec": torch.from_numpy(np.array(space.nvec, np.int64)),
                "start": torch.from_numpy(np.array(space.start, np.int64)), "dtype": str(space.dtype)}
    if isinstance(space, spaces.MultiBinary):
        return {"type": "MultiBinary", "n": [int(n) for n in np.atleast_1d(space.n)]}
    if isinstance(space, spaces.Dict):
        return {"type": "Dict", "keys": list(space.spaces), "spaces": [space_to_data(s) for s in space.spaces.values()]}
    if isinstance(space, spaces.Tuple):
        return {"type": "Tuple", "spaces": [space_to_data(s) for s in space.spaces]}
    raise NatgradError(f"cannot save space {space}: natgrad supports {SUPPORTED}")


def describe(space: spaces.Space) -> str:
    """``space`` in short, with what the networks depend on (kinds, shapes, sizes, a Box's dtype unless a float;
    not a Box's bounds): ``Box(4,)``, ``Box(7, 7, 3) uint8``, ``Discrete(2)``, ``Dict(image: ..., direction: ...)``."""
    if isinstance(space, spaces.Box):
        return f"Box{space.shape}" + ("" if np.issubdtype(space.dtype, np.floating) else f" {space.dtype}")
    if isinstance(space, spaces.Discrete):
        return f"Discrete({int(space.n)}" + (f", start={int(space.start)})" if space.start else ")")
    if isinstance(space, spaces.MultiDiscrete):
        start = f", start={space.start.tolist()}" if space.start.any() else ""
        return f"MultiDiscrete({space.nvec.tolist()}{start})"
    if isinstance(space, spaces.MultiBinary):
        return f"MultiBinary({space.n})"
    if isinstance(space, spaces.Dict):
        return "Dict(" + ", ".join(f"{key}: {describe(s)}" for key, s in space.spaces.items()) + ")"
    if isinstance(space, spaces.Tuple):
        return "Tuple(" + ", ".join(map(describe, space.spaces)) + ")"
    return str(space)


def space_from_data(data: dict[str, Any]) -> spaces.Space:
    """The space ``space_to_data`` wrote."""
    kind = data["type"]
    if kind == "Box":
        dtype = np.dtype(data["dtype"])
        return spaces.Box(data["low"].numpy().astype(dtype), data["high"].numpy().astype(dtype), dtype=dtype)
    if kind == "Discrete":
        return spaces.Discrete(data["n"], start=data["start"])
    if kind == "MultiDiscrete":
        return spaces.MultiDiscrete(data["nvec"].numpy(), dtype=np.dtype(data["dtype"]), start=data["start"].numpy())
    if kind == "MultiBinary":
        n = data["n"]
        return spaces.MultiBinary(n[0] if len(n) == 1 else n)
    if kind == "Dict":
        return spaces.Dict({k: space_from_data(s) for k, s in zip(data["keys"], data["spaces"])})
    if kind == "Tuple":
        return spaces.Tuple([space_from_data(s) for s in data["spaces"]])
    raise NatgradError(f"unknown space type {kind!r} in a checkpoint; the file is damaged")
