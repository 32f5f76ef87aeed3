"""CPU cost of one critic fit on a 2,048-state Hopper-sized batch: natgrad's minibatch Adam against
full-batch L-BFGS, against the same Adam fit on a ``torch.compile``d critic, and against the same Adam
fit with the layers called as functions and the gradient taken by ``torch.autograd.grad`` (no
``nn.Module`` calls, no ``.grad`` accumulation: the same steps, less Python per step).

    python -m benchmarks.critic_fit_alternatives [--repeats 9]

Prints the median CPU milliseconds per fit of each variant (interleaved repeats, one torch thread).
The numbers feed docs/results/performance.md ("What did not pay"); nothing here is used by the library.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from collections.abc import Callable

import gymnasium as gym
import numpy as np
import torch

from natgrad.algos.critic_fit import fit_critic
from natgrad.objectives.batching import shuffled_minibatches
from natgrad.objectives.losses import value_loss
from natgrad.objectives.optim import adam
from natgrad.policy.actor_critic import Critic


def lbfgs_fit(critic: Critic, obs: torch.Tensor, returns: torch.Tensor, iterations: int) -> None:
    """Full-batch L-BFGS on ½ E[(V(s) − R)²] with strong-Wolfe line search."""
    optimizer = torch.optim.LBFGS(critic.parameters(), lr=1, max_iter=iterations, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        loss = value_loss(critic(obs), returns)
        loss.backward()
        return loss

    optimizer.step(closure)


def functional_fit(critic: Critic, optimizer: torch.optim.Optimizer, obs: torch.Tensor, returns: torch.Tensor,
                   epochs: int, minibatch_size: int, generator: torch.Generator) -> None:
    """``fit_critic``'s steps, with ``F.linear``/``torch.tanh`` in place of the modules and
    ``torch.autograd.grad`` in place of ``backward()`` (a tanh critic)."""
    layers = [(m.weight, m.bias) for m in critic.net if isinstance(m, torch.nn.Linear)]
    params = list(critic.parameters())

    def value(x: torch.Tensor) -> torch.Tensor:
        for i, (w, b) in enumerate(layers):
            x = torch.nn.functional.linear(x, w, b)
            x = torch.tanh(x) if i < len(layers) - 1 else x
        return x.squeeze(-1)

    for _ in range(epochs):
        for x, r in shuffled_minibatches((obs, returns), minibatch_size, generator):
            for p, g in zip(params, torch.autograd.grad(value_loss(value(x), r), params)):
                p.grad = g
            optimizer.step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    torch.set_num_threads(1)
    space = gym.spaces.Box(-np.inf, np.inf, (11,))  # Hopper-v5's observation size
    generator = torch.Generator().manual_seed(0)
    obs = torch.randn(2048, 11)
    returns = torch.tanh(obs @ torch.randn(11)) * 3 + obs[:, 0] ** 2
    critic = Critic(space)
    same = [copy.deepcopy(critic) for _ in range(2)]
    fit_critic(same[0], adam(same[0].parameters(), 1e-3), obs, returns, 5, 64, torch.Generator().manual_seed(1))
    functional_fit(same[1], adam(same[1].parameters(), 1e-3), obs, returns, 5, 64, torch.Generator().manual_seed(1))
    equal = all(torch.equal(a, b) for a, b in zip(same[0].parameters(), same[1].parameters()))
    print(f"functional fit from the same start gives fit_critic's parameters bit for bit: {equal}")
    optimizer = adam(critic.parameters(), 1e-3)
    compiled = torch.compile(critic)
    start = time.perf_counter()
    fit_critic(compiled, optimizer, obs, returns, 5, 64, generator)
    print(f"torch.compile: first fit {time.perf_counter() - start:.1f} s (compilation)")
    variants: dict[str, Callable[[], object]] = {
        "Adam, 5 epochs of 64 (160 steps)": lambda: fit_critic(critic, optimizer, obs, returns, 5, 64, generator),
        "L-BFGS, 10 iterations": lambda: lbfgs_fit(critic, obs, returns, 10),
        "L-BFGS, 25 iterations": lambda: lbfgs_fit(critic, obs, returns, 25),
        "Adam on torch.compile(critic)": lambda: fit_critic(compiled, optimizer, obs, returns, 5, 64, generator),
        "Adam, functional layers + autograd.grad": lambda: functional_fit(critic, optimizer, obs, returns, 5, 64,
                                                                          generator),
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.repeats):
        for name, fit in variants.items():
            start = time.process_time()
            fit()
            times[name].append(time.process_time() - start)
    for name, values in times.items():
        print(f"{name:40s} {statistics.median(values) * 1e3:7.1f} CPU ms (median of {args.repeats})")


if __name__ == "__main__":
    main()
