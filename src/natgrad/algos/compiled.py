"""``compile=True``: the update's hot, shape-stable pieces through ``torch.compile``, with a fallback to eager.

Compiled, each a pure function of tensors of fixed shapes (``dynamic=False``; a batch of another size compiles
once more): PPO's and PPO-KL's minibatch loss (actor and critic forwards, objective, entropy, value loss; its
backward is compiled with it), the natural step's forward at each line-search try (L(θ) and the KL), and the
critic fit's minibatch loss. On CUDA the mode is ``"reduce-overhead"``: the compiled graphs are captured as CUDA
graphs and replayed. The Fisher-vector products stay eager: they differentiate the forward's backward pass, which
a compiled graph does not allow. Where ``torch.compile`` is unavailable, or a compiled call fails where the eager
one works, one warning names the cause and the model runs eagerly from then on.

On CUDA, TRPO's and NPG's sync-free natural step (FVPs by double backward, masked CG, every line-search try and
the choice) is moreover captured whole as one CUDA graph (``CapturedStep``) and replayed at each update.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

import torch
from torch import Tensor
from torch.utils._pytree import tree_map

from natgrad.config import NaturalConfig
from natgrad.errors import NatgradError, one_line
from natgrad.natural.flat import flat_params, set_flat_params
from natgrad.natural.step import Forward, NaturalStep, figures_step, natural_step, step_figures
from natgrad.policy.actor_critic import Actor, PolicyInputs, as_inputs

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


class CapturedStep:
    """``natural_step`` through one CUDA graph: captured at the first update (after a warm-up on a side stream, θ
    put back after each), into static buffers the batch is copied into, then replayed; its figures read back once.

    Used when ``compile=True`` on CUDA for a step of fixed settings: not for a recurrent actor, a subsampled FVP
    (``fvp_fraction`` < 1: a fresh random subset each update) or an annealed trust region (δ changes each update),
    which run the eager sync-free step; a batch of another shape is captured anew. A capture or replay that fails
    warns once and leaves the eager step from then on.
    """

    def __init__(self, compiler: Compiler) -> None:
        self.compiler = compiler
        self.failure: str | None = None
        """why the step runs eagerly after all (None while captured, or not tried)"""
        self.graph: Any = None
        self.key: Any = None
        self.static: tuple[PolicyInputs, Tensor, Tensor, Tensor] | None = None
        self.figures: Tensor | None = None

    def usable(self, actor: Actor, cfg: NaturalConfig) -> bool:
        """Whether the step is captured: compile=True on CUDA, settings fixed across updates, nothing failed."""
        return (self.compiler.active and self.compiler.cuda_graphs and self.failure is None and not actor.recurrent
                and cfg.fvp_fraction == 1.0 and not cfg.anneal_kl)

    def __call__(self, actor: Actor, inputs: PolicyInputs, actions: Tensor, log_probs_old: Tensor, advantages: Tensor,
                 cfg: NaturalConfig, line_search: bool, generator: torch.Generator | None, forward: Forward
                 ) -> NaturalStep:
        """``natural_step`` (with ``generator`` and ``forward``), replayed from the graph where ``usable``, else
        eagerly."""
        eager = lambda: natural_step(actor, inputs, actions, log_probs_old, advantages, cfg, line_search, generator,
                                     forward=forward)
        if not self.usable(actor, cfg):
            return eager()
        batch = (as_inputs(inputs), actions, log_probs_old, advantages)
        try:
            key = (cfg, line_search, tree_map(lambda x: (x.shape, x.dtype), _fields(batch)))
            if key != self.key:
                self._capture(actor, batch, cfg, line_search)
                self.key = key
            for static, new in zip(_fields(self.static), _fields(batch)):
                static.copy_(new)
            self.graph.replay()
        except Exception as e:  # capture unsupported here (an op, a driver, memory): the eager step, from now on
            self.failure = f"{type(e).__name__}: {one_line(e)}"[:300]
            self.graph = self.static = self.key = None
            warnings.warn(f"compile=True: capturing the natural step as a CUDA graph failed ({self.failure}); "
                          "running it eagerly", stacklevel=2)
            return eager()
        return figures_step(self.figures, cfg)

    def _capture(self, actor: Actor, batch: tuple, cfg: NaturalConfig, line_search: bool) -> None:
        """Warm up on a side stream (θ restored after each run), then capture ``step_figures`` on static buffers."""
        params = actor.policy_parameters()
        theta = flat_params(params)
        inputs, *rest = batch
        clone = lambda x: None if x is None else x.clone()
        self.static = (PolicyInputs(tree_map(clone, inputs.obs), clone(inputs.mask), clone(inputs.first),
                                    clone(inputs.state)), *map(clone, rest))
        try:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(2):
                    step_figures(actor, *self.static, cfg, line_search)
                    set_flat_params(params, theta)
            torch.cuda.current_stream().wait_stream(side)
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):
                self.figures = step_figures(actor, *self.static, cfg, line_search)
        finally:  # a capture records without running; a failed warm-up may have written θ
            set_flat_params(params, theta)


def _fields(batch: tuple) -> list[Tensor]:
    """The tensors of a (PolicyInputs, actions, log π_old, advantages) batch, in a fixed order."""
    inputs, *rest = batch
    obs = list(inputs.obs.values()) if isinstance(inputs.obs, dict) else [inputs.obs]
    return [*obs, *(x for x in (inputs.mask, inputs.first, inputs.state) if x is not None), *rest]
