"""Exporting the deterministic policy as one ONNX graph: raw observation in, env-ready action out.

The graph holds what ``predict(obs, deterministic=True)`` does around the actor: the running normalization of
the vector part (in float64, as natgrad computes it), images from (H, W, C) to (C, H, W) (the actor's encoder
then scales them to [0, 1]), Discrete and MultiDiscrete entries shifted by their ``start`` (the encoder one-hots
them), and the action's post-processing: Box clipped to its bounds (a squashed Gaussian's mean squashed into them
first, a Beta's mode already in them), Discrete the argmax (+ start), MultiDiscrete the argmax of each entry
(+ start) in the space's shape, MultiBinary logit > 0. A model with legal-action masks takes them as an input
``action_mask`` (True or 1 = legal) and picks the masked argmax.

Every input has a leading batch dimension of any size: ``obs`` for a plain observation space, one input per
entry of a Dict (named by its key, ``outer/inner`` when nested) or Tuple (by its index); one output ``action``.
A recurrent actor's graph also takes its ``state`` (batch, S) and ``episode_start`` (batch,) (True: the state is
reset before this observation) and also returns the new state, ``next_state``, as ``predict`` does.
Built as a torch module around the actor and written by ``torch.onnx.export`` (``pip install 'natgrad[export]'``).
"""

from __future__ import annotations

import copy
import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor, nn

from natgrad.errors import NatgradError, one_line
from natgrad.policy.actor_critic import PolicyInputs
from natgrad.policy.distributions import squash
from natgrad.policy.spaces import MASK_KEY, VECTOR, ObsLayout, entry, tree_map
from natgrad.runs.directories import check_writable

if TYPE_CHECKING:
    from natgrad.algos.base import Algorithm

OPSET = 18
EXPORTER_NOISE = [  # what torch.onnx's exporter warns on every export, none of it about the policy
    (FutureWarning, r"`isinstance\(treespec, LeafSpec\)` is deprecated"),
    (UserWarning, r"# The axis name: \w+ will not be used, since it shares the same shape constraints"),
]


class DeterministicPolicy(nn.Module):
    """``predict(obs, deterministic=True)`` as a torch module: raw observation entries (and the mask) → action."""

    def __init__(self, model: Algorithm, mask: bool) -> None:
        super().__init__()
        self.actor = copy.deepcopy(model.actor).cpu()  # exported from the CPU, the model left on its own device
        self.layout, self.action = model.layout, model.actor.action
        self.parts = self.layout.parts
        self.names = [input_name(part.path) for part in self.parts]
        self.mask = mask
        rms, normalizer = model.obs_normalizer.rms, model.obs_normalizer
        self.normalize = normalizer.enabled and self.layout.vector_size > 0
        self.register_buffer("mean", torch.as_tensor(np.asarray(rms.mean, np.float64)).reshape(-1))
        self.register_buffer("std", torch.as_tensor(np.sqrt(np.asarray(rms.var, np.float64) + 1e-8)).reshape(-1))
        self.clip = float(normalizer.clip)
        space = self.action.space
        if self.action.continuous:
            self.register_buffer("low", torch.as_tensor(space.low, dtype=torch.float32))
            self.register_buffer("high", torch.as_tensor(space.high, dtype=torch.float32))
        elif self.action.offset is not None:
            self.register_buffer("start", torch.as_tensor(self.action.offset))

    def forward(self, *inputs: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        """The env-ready action (and a recurrent actor's next state) for the raw inputs, in the graph's order."""
        if self.actor.recurrent:
            *inputs, state, start = inputs
        raw = dict(zip(self.names, inputs))
        rows = inputs[0].shape[0]
        arrays = {}
        vector = [raw[input_name(p.path)].reshape(rows, -1).to(torch.float64) for p in self.parts if p.kind == VECTOR]
        if vector:
            x = vector[0] if len(vector) == 1 else torch.cat(vector, 1)
            if self.normalize:
                x = torch.clamp((x - self.mean) / self.std, -self.clip, self.clip)
            arrays[VECTOR] = x.to(torch.float32)
        for part, leaf in zip([p for p in self.parts if p.kind != VECTOR], self.layout.leaves[bool(vector):]):
            x = raw[input_name(part.path)]
            if part.kind == "image":
                x = x.reshape(rows, *part.space.shape)
                x = x.unsqueeze(1) if x.dim() == 3 else x.permute(0, 3, 1, 2) if part.channels_last else x
                arrays[leaf.key] = x.to(torch.uint8)
            elif part.kind in ("discrete", "multidiscrete"):
                start = torch.as_tensor(np.asarray(part.space.start, np.int64).reshape(-1))
                arrays[leaf.key] = (x.reshape(rows, -1).to(torch.int64) - start).reshape(rows, *leaf.shape)
            else:
                arrays[leaf.key] = x.reshape(rows, -1).to(torch.float32)
        obs = arrays[self.layout.leaves[0].key] if self.layout.single else arrays
        mask = inputs[-1].reshape(rows, -1).to(torch.bool) if self.mask else None
        if not self.actor.recurrent:
            return self.to_env(self.actor(PolicyInputs(obs, mask)).mode(), rows)
        one_step = PolicyInputs(tree_map(lambda x: x.unsqueeze(0), obs), None if mask is None else mask.unsqueeze(0),
                                start.reshape(1, rows).to(torch.bool), state)
        dist, state = self.actor.step(one_step)
        return self.to_env(dist.mode(), rows), state

    def to_env(self, action: Tensor, rows: int) -> Tensor:
        """``ActionSpec.to_env`` in torch: real actions (a squashed Gaussian's squashed) clipped; indices shifted by
        ``start``, and like the others in the space's shape and dtype."""
        space = self.action.space
        if self.action.continuous:
            action = squash(action, self.low, self.high) if self.action.dist == "squashed" else action
            return torch.minimum(torch.maximum(action, self.low), self.high)
        if self.action.offset is not None:
            action = action + self.start
        return action.reshape(rows, *space.shape).to(torch.from_numpy(np.zeros(0, space.dtype)).dtype)


def input_name(path: tuple) -> str:
    """The ONNX input of a raw observation entry: ``obs`` for the whole observation, else its key path."""
    return "/".join(map(str, path)) or "obs"


def example_inputs(model: Algorithm, mask: bool, rows: int = 2) -> tuple[list[str], tuple[Tensor, ...]]:
    """The graph's input names and a batch of ``rows`` observations (sampled from the space) to trace it with."""
    layout: ObsLayout = model.layout
    space = model.observation_space
    space.seed(0)
    samples = [space.sample() for _ in range(rows)]
    names, tensors = [], []
    for part in layout.parts:
        values = [entry(s, part.path) for s in samples]
        names.append(input_name(part.path))
        tensors.append(torch.from_numpy(np.stack([np.asarray(v, dtype=part.space.dtype) for v in values])))
    if mask:
        names.append(MASK_KEY)
        tensors.append(torch.ones(rows, model.actor.action.mask_size, dtype=_mask_dtype(model)))
    if model.actor.recurrent:
        names += ["state", "episode_start"]
        tensors += [torch.zeros(rows, model.actor.state_size), torch.ones(rows, dtype=torch.bool)]
    return names, tuple(tensors)


def has_masks(model: Algorithm) -> bool:
    """Whether the model acts on legal-action masks: from its observation, or its env's ``action_masks()``."""
    return model.layout.has_mask or model.env_masks


def export_onnx(model: Algorithm, path: str | Path, action_mask: bool | None = None) -> Path:
    """Write the deterministic policy of ``model`` as an ONNX graph to ``path`` (a new file); return it.

    ``action_mask``: give the graph an ``action_mask`` input (default: where the model has masks, see
    ``has_masks``; only for Discrete and MultiDiscrete actions).
    """
    path = Path(path)
    if path.exists():
        raise NatgradError(f"{path} already exists: choose a new file (natgrad never overwrites a file)")
    check_writable(path, "choose another file")
    try:
        import onnx
        import onnxscript  # noqa: F401  (torch.onnx's exporter writes the graph with it)
    except ImportError:
        raise NatgradError("ONNX export needs onnx and onnxscript: pip install 'natgrad[export]'") from None
    mask = has_masks(model) if action_mask is None else action_mask
    if mask and model.actor.action.mask_size == 0:
        raise NatgradError(f"action masks need a Discrete or MultiDiscrete action space, not {model.action_space}")
    module = DeterministicPolicy(model, mask).eval()
    names, inputs = example_inputs(model, mask)
    batch = torch.export.Dim("batch")
    path.parent.mkdir(parents=True, exist_ok=True)
    with quiet_exporter(), torch.no_grad():
        try:
            outputs = ["action", "next_state"] if model.actor.recurrent else ["action"]
            program = torch.onnx.export(module, inputs, output_names=outputs, opset_version=OPSET,
                                        dynamic_shapes=(tuple({0: batch} for _ in inputs),), dynamo=True, verbose=False)
        except Exception as e:  # the exporter's many error types
            raise NatgradError(f"torch.onnx could not export this policy ({type(e).__name__}: {one_line(e)[:300]})") \
                from None
    name_inputs(program.model.graph, names)
    program.save(str(path))
    onnx.checker.check_model(str(path))
    return path


@contextmanager
def quiet_exporter() -> Iterator[None]:
    """Leave out torch.onnx's noise while the block runs: the ``EXPORTER_NOISE`` warnings and its operator
    registry's "torchvision is not installed" log lines. Every other warning and log line goes through."""

    def not_torchvision(record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("torchvision is not installed")

    registry = logging.getLogger("torch.onnx._internal.exporter._registration")
    registry.addFilter(not_torchvision)
    try:
        with warnings.catch_warnings():
            for category, message in EXPORTER_NOISE:
                warnings.filterwarnings("ignore", message, category)
            yield
    finally:
        registry.removeFilter(not_torchvision)


def _mask_dtype(model: Algorithm) -> torch.dtype:
    """The mask input's dtype: the observation's ``action_mask`` entry's, else bool (an env's ``action_masks()``)."""
    if model.layout.has_mask:
        return torch.from_numpy(np.zeros(0, model.observation_space[MASK_KEY].dtype)).dtype
    return torch.bool


def name_inputs(graph: Any, names: list[str]) -> None:
    """Give the inputs of an exported graph (``onnx_ir``) ``names``, first renaming any value inside it that has
    one of them: the exporter names values after their ops, and an entry may be called ``view`` too."""
    wanted, k = set(names), 0
    for node in graph:
        for value in node.outputs:
            while value.name in wanted:
                value.name, k = f"{value.name}_{k}", k + 1
    for value, name in zip(graph.inputs, names):
        value.name = name


def signature(path: str | Path) -> str:
    """The graph's inputs and outputs as text: ``obs float32 (batch, 4) -> action int64 (batch)``."""
    import onnx

    graph = onnx.load(str(path)).graph

    def describe(value: onnx.ValueInfoProto) -> str:
        tensor = value.type.tensor_type
        shape = ", ".join(d.dim_param or str(d.dim_value) for d in tensor.shape.dim)
        return f"{value.name} {onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type)} ({shape})"

    return f"{', '.join(map(describe, graph.input))} -> {', '.join(map(describe, graph.output))}"
