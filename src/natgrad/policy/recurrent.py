"""A recurrent core (LSTM or GRU layers) run over time-major sequences, with the state reset at episode starts.

The state of every layer is packed into one tensor per env, (N, S), so a batch stores, joins and
indexes it like any other per-env tensor. Over a sequence x of (T, N, F) with ``first`` (T, N):

    h ← 0 where first[t];   h ← cell(x[t], h);   y[t] = the last layer's output

so an episode that starts inside the sequence never sees the state of the one before it. The cells are
torch's LSTMCell/GRUCell: plain differentiable operations, so both Fisher-vector products (Gauss–Newton,
which differentiates twice through the unrolled graph, and double backprop) go through them.

``outputs`` computes the same y without the per-step states, by torch's fused multi-step LSTM/GRU (the op
behind nn.LSTM, on the cells' own weights): it cuts every env's sequence into its episode pieces, runs them
side by side as one padded batch, each from its own start state (the stored one, or zeros after a reset), and
gathers y back into (T, N). Padding only trails a piece, so it never reaches a real step's output. Every
gradient pass (critic fit, policy gradient, Fisher-vector products, PPO) goes this way; rollouts and the
critic's per-step states go step by step.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from natgrad.config import RecurrentCell, check_choice
from natgrad.errors import NatgradError
from natgrad.policy.networks import orthogonal


class RecurrentCore(nn.Module):
    """``layers`` LSTM or GRU cells of ``hidden`` units on ``in_dim`` features."""

    def __init__(self, kind: RecurrentCell, in_dim: int, hidden: int = 64, layers: int = 1) -> None:
        super().__init__()
        check_choice("recurrent", kind, RecurrentCell)
        if hidden < 1 or layers < 1:
            raise NatgradError(f"a recurrent core needs rnn_hidden >= 1 and rnn_layers >= 1, got {hidden}, {layers}")
        cell = nn.LSTMCell if kind == "lstm" else nn.GRUCell
        self.kind, self.hidden = kind, hidden
        self.cells = nn.ModuleList([cell(in_dim if k == 0 else hidden, hidden) for k in range(layers)])
        for c in self.cells:
            orthogonal(_Weights(c.weight_ih, c.bias_ih), 1.0)
            orthogonal(_Weights(c.weight_hh, c.bias_hh), 1.0)
        self.per_layer = 2 * hidden if kind == "lstm" else hidden
        self.state_size = self.per_layer * layers

    def forward(self, x: Tensor, first: Tensor | None = None, state: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Outputs (T, N, hidden) and the state after every step (T, N, S) of the sequence ``x`` (T, N, F),
        started from ``state`` (N, S; zeros if None) and reset wherever ``first`` (T, N) is True."""
        steps, n = x.shape[:2]
        h = x.new_zeros(n, self.state_size) if state is None else state
        keep = None if first is None else (~first).to(x.dtype).unsqueeze(-1)
        outputs, states = [], []
        for t in range(steps):
            if keep is not None:
                h = h * keep[t]
            y, h = self.step(x[t], h)
            outputs.append(y)
            states.append(h)
        return torch.stack(outputs), torch.stack(states)

    def outputs(self, x: Tensor, first: Tensor | None = None, state: Tensor | None = None) -> Tensor:
        """The outputs (T, N, hidden) that ``forward`` gives, by the fused op over episode pieces."""
        steps, n = x.shape[:2]
        h = x.new_zeros(n, self.state_size) if state is None else state
        if first is not None:
            h = h * (~first[0]).to(h.dtype).unsqueeze(-1)
        if first is None or not bool(first[1:].any()):
            return self._fused(x, h)
        cut = first.T.clone()  # (N, T): a piece starts at t = 0 and at every episode start
        cut[:, 0] = True
        count = cut.sum(1)
        piece = (count.cumsum(0) - count).unsqueeze(1) + cut.long().cumsum(1) - 1  # (N, T): piece of (t, n)
        env_t = cut.nonzero()  # (M, 2): (env, start step) of every piece, numbered as ``piece`` numbers them
        time = torch.arange(steps, device=x.device)
        offset = time - env_t[piece, 1]  # (N, T): step within its piece
        pieces, length = len(env_t), int(offset.max()) + 1
        slot = offset * pieces + piece  # (N, T): the padded (step, piece) position of (t, n), flattened
        source = torch.zeros(length * pieces, dtype=torch.long, device=x.device)
        source[slot.reshape(-1)] = (time * n + torch.arange(n, device=x.device).unsqueeze(1)).reshape(-1)
        padded = x.reshape(steps * n, -1)[source].view(length, pieces, -1)
        start = h.new_zeros(pieces, self.state_size).index_copy(0, piece[:, 0], h)
        y = self._fused(padded, start)
        return y.reshape(length * pieces, -1)[slot.T.reshape(-1)].view(steps, n, -1)

    def _fused(self, x: Tensor, state: Tensor) -> Tensor:
        """Outputs over (T, M, F) from ``state`` (M, S) with no reset inside: torch's multi-step op."""
        weights = [w for c in self.cells for w in (c.weight_ih, c.weight_hh, c.bias_ih, c.bias_hh)]
        layers = torch.stack(state.split(self.per_layer, -1))  # (layers, M, per_layer)
        if self.kind == "lstm":
            hx = tuple(layers.split(self.hidden, -1))
            return torch.lstm(x, (hx[0].contiguous(), hx[1].contiguous()), weights, True, len(self.cells), 0.0,
                              self.training, False, False)[0]
        return torch.gru(x, layers.contiguous(), weights, True, len(self.cells), 0.0, self.training, False, False)[0]

    def step(self, x: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        """One step of every layer: (output (N, hidden), new state (N, S))."""
        new = []
        for cell, h in zip(self.cells, state.split(self.per_layer, -1)):
            if self.kind == "lstm":
                hx, cx = cell(x, tuple(h.split(self.hidden, -1)))
                new.append(torch.cat([hx, cx], -1))
                x = hx
            else:
                x = cell(x, h)
                new.append(x)
        return x, torch.cat(new, -1)


class _Weights:
    """A (weight, bias) pair that ``networks.orthogonal`` can initialize like a layer."""

    def __init__(self, weight: nn.Parameter, bias: nn.Parameter) -> None:
        self.weight, self.bias = weight, bias
