"""Observation encoders: from the leaves of an ``ObsLayout`` to one feature vector per observation.

Each leaf gets the encoder its kind asks for, and the features are concatenated in leaf order:

- vector: itself (already normalized by the running statistics);
- image: a CNN on the image scaled to [0, 1]: the Nature-CNN layout (8×8/4, 4×4/2, 3×3/1 convolutions and a
  512-unit layer) when both sides are at least 36 pixels, else one 3×3 convolution of 16 channels and a
  128-unit layer (MinAtar's network), ReLU throughout;
- discrete / multidiscrete: one-hot per entry; binary: the bits as 0/1.

An encoder is part of the network the Fisher-vector product differentiates through, like any layer.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from natgrad.config import Cnn, check_choice
from natgrad.errors import NatgradError
from natgrad.policy.networks import orthogonal
from natgrad.policy.spaces import VECTOR, Leaf, Obs, ObsLayout


class Encoder(nn.Module):
    """Obs with leading dimensions (…) → features (…, ``features``)."""

    def __init__(self, layout: ObsLayout, cnn: Cnn = "auto", cnn_features: int = 0) -> None:
        super().__init__()
        check_choice("cnn", cnn, Cnn)
        self.layout = layout
        self.leaves = layout.leaves
        self.images = nn.ModuleDict({_name(leaf): image_encoder(leaf, cnn, cnn_features)
                                     for leaf in self.leaves if leaf.kind == "image"})
        self.features = sum(_width(leaf, self.images) for leaf in self.leaves)
        self.identity = self.layout.single and self.leaves[0].kind == VECTOR

    def forward(self, obs: Obs, dtype: torch.dtype = torch.float32) -> Tensor:
        """Features in ``dtype`` (the network's) for observations with any leading dimensions."""
        if self.identity:
            return obs
        parts = self.layout.unpack(obs)
        lead = parts[self.leaves[0].key].shape[: parts[self.leaves[0].key].dim() - len(self.leaves[0].shape)]
        out = []
        for leaf in self.leaves:
            x = parts[leaf.key]
            if leaf.kind == "image":  # scaled to [0, 1] by the first convolution
                features = _cnn_features(self.images[_name(leaf)], x.reshape(-1, *leaf.shape), dtype)
                out.append(features.reshape(*lead, -1))
            elif leaf.kind == "discrete":
                out.append(F.one_hot(x, leaf.nvec[0]).to(dtype))
            elif leaf.kind == "multidiscrete":
                out.append(torch.cat([F.one_hot(x[..., k], n).to(dtype) for k, n in enumerate(leaf.nvec)], -1))
            else:
                out.append(x.to(dtype))
        return out[0] if len(out) == 1 else torch.cat(out, -1)


class ScaledConv2d(nn.Conv2d):
    """A convolution of its input times ``scale``: conv_W(s·x) = conv_{s·W}(x), which scales the weights (a few
    thousand numbers) instead of every pixel of the batch. The first layer of every image encoder: its input,
    the image, takes no gradient."""

    def __init__(self, *args, scale: float = 1.0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.scale = scale
        self.own_backward = (self.dilation == (1, 1) and self.groups == 1 and self.padding_mode == "zeros"
                             and isinstance(self.padding, tuple))  # the convolutions _ImageConv computes

    def forward(self, x: Tensor) -> Tensor:
        """conv_{s·W}(x) + b."""
        weight = self.weight * self.scale if self.scale != 1.0 else self.weight
        if (not self.own_backward or x.requires_grad or not torch.is_grad_enabled()
                or torch.compiler.is_compiling()):
            return self._conv_forward(x, weight, self.bias)
        return _ImageConv.apply(x, weight, self.bias, self.stride, self.padding)


class _ImageConv(torch.autograd.Function):
    """y = conv2d(x, W) + b on an input x that takes no gradient. Its backward, (∂L/∂W, ∂L/∂b) from g = ∂L/∂y, is
    linear in g; its derivative in g along (Ẇ, ḃ) is one forward convolution, conv2d(x, Ẇ) + ḃ
    (``_ImageConvGrad``). The double-vjp trick's J v (``natgrad.natural.linearized``) takes exactly that derivative;
    PyTorch's own double backward of a convolution also computes the gradient with respect to x, a transposed
    convolution to the image's size that J v does not use (a third to a half of J v's time)."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None, stride: tuple[int, ...],
                padding: tuple[int, ...]) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.conv, ctx.has_bias = (stride, padding), bias is not None
        return F.conv2d(x, weight, bias, stride, padding)

    @staticmethod
    def backward(ctx, g: Tensor) -> tuple[None, Tensor, Tensor | None, None, None]:
        x, weight = ctx.saved_tensors
        grad_w, grad_b = _ImageConvGrad.apply(x, weight, g, *ctx.conv)
        return None, grad_w, grad_b if ctx.has_bias else None, None, None


class _ImageConvGrad(torch.autograd.Function):
    """(∂L/∂W, ∂L/∂b) of ``_ImageConv`` from g, differentiable in g: the derivative along (Ẇ, ḃ) is
    conv2d(x, Ẇ) + ḃ."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, g: Tensor, stride: tuple[int, ...],
                padding: tuple[int, ...]) -> tuple[Tensor, Tensor]:
        ctx.save_for_backward(x)
        ctx.conv = (stride, padding)
        _, grad_w, grad_b = torch.ops.aten.convolution_backward(
            g, x, weight, [weight.shape[0]], stride, padding, (1, 1), False, (0, 0), 1, (False, True, True))
        return grad_w, grad_b

    @staticmethod
    def backward(ctx, dot_w: Tensor, dot_b: Tensor) -> tuple[None, None, Tensor, None, None]:
        (x,) = ctx.saved_tensors
        return None, None, F.conv2d(x, dot_w, dot_b, *ctx.conv), None, None


CNN_CHUNK = 256
"""Images per CNN call when no gradient is taken (a whole batch's evaluation): pieces whose buffers the allocator
reuses, where a whole batch of Atari frames at once runs slower per frame (docs/results/performance.md)."""


def _cnn_features(cnn: nn.Module, images: Tensor, dtype: torch.dtype) -> Tensor:
    """``cnn`` on a batch of images in ``dtype``; without autograd, in pieces of at most ``CNN_CHUNK`` (not while
    torch.export traces it: the batch size stays symbolic there)."""
    if torch.is_grad_enabled() or torch.compiler.is_compiling() or len(images) <= CNN_CHUNK:
        return cnn(images.to(dtype))
    return torch.cat([cnn(piece.to(dtype)) for piece in images.split(CNN_CHUNK)])


def image_encoder(leaf: Leaf, cnn: Cnn = "auto", features: int = 0) -> nn.Sequential:
    """The CNN for one image leaf of (C, H, W), on the image times ``leaf.scale`` (to [0, 1]): conv layers,
    flatten, a linear layer of ``features`` units (0: 512 for the Nature layout, 128 for the small one), ReLU
    after each."""
    channels, height, width = leaf.shape
    if cnn == "auto":
        cnn = "nature" if min(height, width) >= 36 else "small"
    if cnn == "nature":
        if min(height, width) < 36:
            raise NatgradError(f"the Nature CNN needs images of at least 36x36, {leaf.key} is {height}x{width}: "
                               "use cnn=small (or auto)")
        convs = [(32, 8, 4), (64, 4, 2), (64, 3, 1)]
        features = features or 512
    else:
        if min(height, width) < 3:
            raise NatgradError(f"image {leaf.key} is {height}x{width}: the small CNN needs at least 3x3")
        convs = [(16, 3, 1)]
        features = features or 128
    layers: list[nn.Module] = []
    c, h, w = channels, height, width
    for out_channels, kernel, stride in convs:
        conv = ScaledConv2d(c, out_channels, kernel, stride, scale=leaf.scale) if not layers else \
            nn.Conv2d(c, out_channels, kernel, stride)
        layers += [orthogonal(conv), nn.ReLU()]
        c, h, w = out_channels, (h - kernel) // stride + 1, (w - kernel) // stride + 1
    layers += [nn.Flatten(), orthogonal(nn.Linear(c * h * w, features)), nn.ReLU()]
    return nn.Sequential(*layers)


def _width(leaf: Leaf, images: nn.ModuleDict) -> int:
    if leaf.kind == "image":
        return images[_name(leaf)][-2].out_features
    if leaf.kind in ("discrete", "multidiscrete"):
        return sum(leaf.nvec)
    return leaf.shape[0]


def _name(leaf: Leaf) -> str:
    """A module name for a leaf key (no dots)."""
    return leaf.key.replace(".", "_")
