"""benchmarks.single_agent_bar: the bootstrap pass probability against the exact binomial one."""

import math

import numpy as np
import pytest

from benchmarks.single_agent_bar import pass_probability


@pytest.mark.parametrize("n", [5, 10])
def test_pass_probability_matches_the_binomial_tail(n: int) -> None:
    # seeds that end at 1 (on the gait) or 0; the mean of n draws reaches 0.7 iff ≥ ⌈0.7 n⌉ draws are on it
    evals = np.array([1.0, 1.0, 1.0, 0.0, 0.0])
    p = 3 / 5
    k = math.ceil(0.7 * n)
    exact = sum(math.comb(n, j) * p**j * (1 - p) ** (n - j) for j in range(k, n + 1))
    assert pass_probability(evals, 0.7, n) == pytest.approx(exact, abs=0.005)


def test_no_seed_at_the_bar_never_passes_and_every_seed_always_does() -> None:
    evals = np.array([357.5, 360.8, 362.4])
    assert pass_probability(evals, 365.7, 10) == 0.0
    assert pass_probability(evals, 357.5, 10) == 1.0
