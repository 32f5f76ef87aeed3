"""``compile=True``: the update's hot, shape-stable pieces through ``torch.compile``, with a fallback to eager.

Compiled, each a pure function of tensors of fixed shapes (``dynamic=False``; a batch of another size compiles
once more): PPO's and PPO-KL's minibatch loss (actor and critic forwards, objective, entropy, value loss; its
backward is compiled with it), the natural step's forward at each line-search try (L(θ) and the KL), and the
critic fit's minibatch loss. On CUDA the mode is ``"reduce-overhead"``: the compiled graphs are captured as CUDA
graphs and replayed. The Fisher-vector products stay eager: they differentiate the forward's backward pass, which
a compiled graph does not allow. Where ``torch.compile`` is unavailable, or a compiled call fails where the eager
one works, one warning names the cause and the model runs eagerly from then on.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

import torch
from torch.utils._pytree import tree_map

from natgrad.errors import NatgradError, one_line

F = TypeVar("F", bound=Callable[..., Any])


class Compiler:
    """Compiles the functions of one model's update; after a first failure, every one of them runs eagerly."""

    def __init__(self, enabled: bool, device: torch.device) -> None:
        if not isinstance(enabled, bool):
            raise NatgradError(f"compile must be True or False, got {enabled!r}")
        self.enabled = enabled
        """whether ``compile=True`` was asked for"""
        self.cuda_graphs = device.type == "cuda"
        """the mode is "reduce-overhead" (CUDA graphs), whose outputs the next replay overwrites unless cloned"""
        self.failure: str | None = None
        """why the functions run eagerly after all (None while compiled)"""

    @property
    def active(self) -> bool:
        """Whether the functions run compiled: asked for, and nothing has failed."""
        return self.enabled and self.failure is None

    def __call__(self, fn: F) -> F:
        """``fn`` compiled (on its first call) when ``compile=True``, else ``fn`` itself. A compiled call that
        raises runs ``fn`` again eagerly: if that raises too, the error was not compilation's and propagates."""
        if not self.enabled:
            return fn
        try:
            compiled = torch.compile(fn, mode="reduce-overhead" if self.cuda_graphs else None, dynamic=False)
        except Exception as e:  # no torch.compile on this platform or Python
            self._fall_back(e)
            return fn

        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            if self.failure is not None:
                return fn(*args, **kwargs)
            try:
                out = compiled(*args, **kwargs)
            except Exception as e:  # an unsupported op, no C++ compiler, ...
                out = fn(*args, **kwargs)
                self._fall_back(e)
                return out
            return tree_map(_clone, out) if self.cuda_graphs else out

        return run  # type: ignore[return-value]

    def _fall_back(self, error: Exception) -> None:
        """Run eagerly from now on, saying why once."""
        if self.failure is None:
            self.failure = f"{type(error).__name__}: {one_line(error)}"[:300]
            warnings.warn(f"compile=True: torch.compile failed here ({self.failure}); running eagerly", stacklevel=3)


def _clone(x: Any) -> Any:
    """A tensor output of a CUDA-graph replay, copied out of the graph's memory (the next replay reuses it)."""
    return x.clone() if isinstance(x, torch.Tensor) else x
