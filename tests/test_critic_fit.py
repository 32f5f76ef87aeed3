"""The critic fit gathers each epoch's shuffled batch once; its steps stay those of gathering per minibatch."""

import gymnasium as gym
import numpy as np
import torch

from natgrad.algos.critic_fit import fit_critic
from natgrad.objectives.batching import minibatches
from natgrad.objectives.losses import value_loss
from natgrad.objectives.optim import adam
from natgrad.policy.actor_critic import Critic
from natgrad.rollouts.batch import UpdateBatch


def test_fit_critic_takes_the_steps_of_per_minibatch_indexing_bit_for_bit():
    torch.manual_seed(0)
    space = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
    ours, ref = Critic(space, hidden=(5, 4)), Critic(space, hidden=(5, 4))
    ref.load_state_dict(ours.state_dict())
    obs, returns = torch.randn(40, 3), torch.randn(40)  # 40 = 2 × 16 + 8: a shorter last minibatch
    opt_ours, opt_ref = adam(ours.parameters(), 1e-2), adam(ref.parameters(), 1e-2)
    gen_ours, gen_ref = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    zeros = torch.zeros(1, 40)
    states = UpdateBatch(obs[None], zeros, zeros, zeros, returns[None], zeros, zeros.bool(), None, None, None)
    loss = fit_critic(ours, opt_ours, states, epochs=3, minibatch_size=16, generator=gen_ours)
    for _ in range(3):
        for idx in minibatches(len(obs), 16, gen_ref):
            step_loss = value_loss(ref(obs[idx]), returns[idx])
            opt_ref.zero_grad(set_to_none=True)
            step_loss.backward()
            opt_ref.step()
    for a, b in zip(ours.parameters(), ref.parameters()):
        assert torch.equal(a, b)
    for k, state in opt_ref.state_dict()["state"].items():
        for key in ("step", "exp_avg", "exp_avg_sq"):
            assert torch.equal(opt_ours.state_dict()["state"][k][key], state[key])
    assert torch.equal(gen_ours.get_state(), gen_ref.get_state())
    with torch.no_grad():
        assert loss == float(value_loss(ref(obs), returns))
