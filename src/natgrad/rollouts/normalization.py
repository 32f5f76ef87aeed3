"""Running statistics for observation normalization and reward scaling.

The statistics live in the model (not in an env wrapper) so they are saved with
every checkpoint and used by ``predict`` on raw observations.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch


@dataclass
class RunningMeanStd:
    """Mean and variance of a stream, merged batch by batch (Chan et al.'s parallel rule).

    For two sets (μ_a, σ²_a, n_a), (μ_b, σ²_b, n_b) with δ = μ_b − μ_a, n = n_a + n_b:
    μ = μ_a + δ n_b/n,  σ² = (σ²_a n_a + σ²_b n_b + δ² n_a n_b / n) / n.

    μ and σ² are float64 NumPy arrays, or after ``to(device)`` tensors on a device, updated there from tensors
    (no host copy) by the same arithmetic.
    """

    shape: tuple[int, ...] = ()
    mean: np.ndarray = field(init=False)
    var: np.ndarray = field(init=False)
    count: float = 1e-4

    def __post_init__(self) -> None:
        self.mean = np.zeros(self.shape, np.float64)
        self.var = np.ones(self.shape, np.float64)

    def update(self, batch: np.ndarray | torch.Tensor) -> None:
        """Add a batch of rows (one row: an exact running update); rows are tensors when the statistics are."""
        if isinstance(self.mean, torch.Tensor):
            batch = batch.to(self.mean.dtype).reshape(-1, *self.shape)
            if len(batch) > 1:  # NumPy's var, operation for operation: mean((x − x̄)²)
                mean = batch.mean(0)
                self.merge(mean, ((batch - mean) ** 2).mean(0), batch.shape[0])
                return
        else:
            batch = np.asarray(batch, np.float64).reshape(-1, *self.shape)
        if len(batch) == 1:
            self.add(batch[0])
        else:
            self.merge(batch.mean(0), batch.var(0), batch.shape[0])

    def to(self, device: torch.device) -> None:
        """Keep μ and σ² as tensors on ``device`` from now on: float64, or float32 on Apple's MPS (which has no
        float64)."""
        self.mean, self.var = (torch.as_tensor(x).to(device, wide_dtype(device)) for x in (self.mean, self.var))

    def merge(self, mean: np.ndarray, var: np.ndarray, count: float) -> None:
        """Add the statistics of ``count`` rows with this ``mean`` and ``var`` (Chan et al.'s parallel update)."""
        total = self.count + count
        delta = mean - self.mean
        self.mean = self.mean + delta * count / total
        m2 = self.var * self.count + var * count + delta**2 * self.count * count / total
        self.var = m2 / total
        self.count = total

    def add(self, x: np.ndarray) -> None:
        """``merge(x, 0, 1)`` for one sample, in the same floating-point operations with the
        ones that multiply by 1 or add 0 left out: the per-step case, at half the cost."""
        total = self.count + 1
        delta = x - self.mean
        self.mean = self.mean + delta / total
        self.var = (self.var * self.count + delta * delta * self.count / total) / total
        self.count = total

    def state_dict(self) -> dict:
        """Mean, variance and count, as tensors a checkpoint loads with ``weights_only=True`` (float64 on the CPU,
        wherever the statistics are kept)."""
        return {
            "mean": torch.as_tensor(self.mean).to("cpu", torch.float64),
            "var": torch.as_tensor(self.var).to("cpu", torch.float64),
            "count": float(self.count),
        }

    def load_state_dict(self, state: dict) -> None:
        """Take the statistics ``state_dict`` wrote, kept where these are (host, or a device after ``to``)."""
        if isinstance(self.mean, torch.Tensor):
            self.mean, self.var = (state[k].to(self.mean.device, self.mean.dtype).reshape(self.shape)
                                   for k in ("mean", "var"))
        else:
            self.mean = state["mean"].numpy().astype(np.float64).reshape(self.shape)
            self.var = state["var"].numpy().astype(np.float64).reshape(self.shape)
        self.count = float(state["count"])


def added_since(total: RunningMeanStd, start: RunningMeanStd) -> RunningMeanStd:
    """The statistics of the data merged into ``start`` to give ``total``: Chan's rule solved for the new set.

    How a rollout worker's new observations are recovered from its statistics before and after, whatever
    path its updates took. In float64 the relative error is about 1e-16 · total.count / (new count).
    """
    new = RunningMeanStd(total.shape, count=total.count - start.count)
    if new.count > 0:
        new.mean = (total.mean * total.count - start.mean * start.count) / new.count
        delta = new.mean - start.mean
        m2 = total.var * total.count - start.var * start.count - delta**2 * start.count * new.count / total.count
        new.var = np.maximum(m2 / new.count, 0.0)
    return new


def wide_dtype(device: torch.device) -> torch.dtype:
    """The precision of statistics and encoded observations on ``device``: float64, float32 on MPS (no float64)."""
    return torch.float32 if device.type == "mps" else torch.float64


class ObsNormalizer:
    """s ↦ clip((s − μ) / √(σ² + ε), −c, c); the identity when disabled.

    The statistics are NumPy arrays on the host, or after ``to(device)`` tensors kept and updated on a device
    (an env that returns tensors); either way ``self(obs)`` takes arrays and tensors alike."""

    def __init__(self, shape: tuple[int, ...], enabled: bool = True, clip: float = 10.0) -> None:
        self.enabled = enabled
        self.clip = clip
        self.rms = RunningMeanStd(shape)
        self.device: torch.device | None = None
        """where the statistics are kept as tensors (None: NumPy arrays on the host)"""

    def to(self, device: torch.device) -> None:
        """Keep the statistics on ``device`` (``RunningMeanStd.to``)."""
        self.rms.to(device)
        self.device = device

    def update(self, obs: np.ndarray | torch.Tensor) -> None:
        """Add observations to the statistics (nothing when normalization is off)."""
        if self.enabled:
            self.rms.update(obs)

    def __call__(self, obs: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        if isinstance(obs, torch.Tensor):
            return self._normalize_tensor(obs)
        if self.device is not None:  # an array (predict, evaluation) beside statistics on a device
            return self._normalize_tensor(torch.from_numpy(np.asarray(obs, np.float64))).numpy()
        if not self.enabled:
            return np.asarray(obs, np.float32)
        z = (obs - self.rms.mean) / np.sqrt(self.rms.var + 1e-8)
        # np.clip's value, without its Python-level dispatch (a quarter of this call's cost)
        return np.minimum(np.maximum(z, -self.clip, out=z), self.clip, out=z).astype(np.float32)

    def _normalize_tensor(self, obs: torch.Tensor) -> torch.Tensor:
        """The same map on a float64 tensor, on the statistics' device (or μ and σ² copied to the tensor's), in
        float32 on the tensor's device: equal to the NumPy map."""
        if not self.enabled:
            return obs.float()
        device = obs.device if self.device is None else self.device
        mean, var = (torch.as_tensor(x, device=device) for x in (self.rms.mean, self.rms.var))
        z = (obs.to(device, mean.dtype) - mean) / torch.sqrt(var + 1e-8)
        return z.clamp_(-self.clip, self.clip).to(obs.device, torch.float32)

    def observe(self, obs: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        """``update(obs)`` then ``self(obs)`` for (rows, D) float64 observations (tensors, for statistics on a
        device): the statistics include the observations they normalize."""
        if self.enabled:
            if len(obs) == 1:
                self.rms.add(obs[0])
            else:
                self.rms.update(obs)
        return self(obs)


class RewardScaler:
    """r ↦ r / √(Var[R] + ε), with R the running discounted return R ← γR + r (reset at episode end)."""

    def __init__(self, n_envs: int, gamma: float, enabled: bool = False, clip: float = 10.0) -> None:
        self.enabled = enabled
        self.gamma = gamma
        self.clip = clip
        self.rms = RunningMeanStd(())
        self.ret = np.zeros(n_envs, np.float64)

    def __call__(self, rewards: np.ndarray, ended: np.ndarray) -> np.ndarray:
        """Scale (T, N) rewards step by step, in time order; ``ended`` (T, N) resets R after a step."""
        if not self.enabled:
            return rewards
        scaled = np.empty_like(rewards)
        for t in range(len(rewards)):
            self.ret = self.ret * self.gamma + rewards[t]
            self.rms.update(self.ret)
            self.ret[ended[t]] = 0.0
            scaled[t] = self.scale(rewards[t])
        return scaled

    def scale(self, rewards: np.ndarray) -> np.ndarray:
        """r / √(Var[R] + ε), clipped to ±clip, with the statistics as they stand (nothing updated)."""
        return np.clip(rewards / np.sqrt(self.rms.var + 1e-8), -self.clip, self.clip)
