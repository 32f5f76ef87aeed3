"""Actor and critic on one shared trunk: TRPO and NPG keep the whole update's KL within the stated bound, the
policy part's FVP stays exact, checkpoints keep the sharing, and learning reaches the separate networks' bar."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import space_envs
import torch
from fisher_reference import assert_both_fvp_routes_exact

import natgrad
from natgrad.policy.actor_critic import PolicyInputs
from natgrad.rollouts.advantages import update_batch
from natgrad.rollouts.collector import Collector
from natgrad.runs.evaluation import evaluate

TRUNKS = {  # env, network options: an MLP (Categorical and Gaussian policies), a CNN, a recurrent core
    "mlp": ("CartPole-v1", {}),
    "mlp-gaussian": ("Pendulum-v1", {}),
    "cnn": ("natgrad-test/Image-v0", {}),
    "lstm": ("natgrad/CartPoleNoVel-v1", {"recurrent": "lstm", "rnn_hidden": 8}),
}


def shared(algo: str, trunk: str, **kw):
    """A small shared-trunk model on the CPU: hidden layers of 16, 32 steps of 4 envs."""
    env_id, options = TRUNKS[trunk]
    kw = {"hidden": (16,), "n_envs": 4, "n_steps": 32, "device": "cpu", **kw}
    return natgrad.ALGORITHMS[algo](env_id, seed=0, share_trunk=True, preset=False, **options, **kw)


@pytest.mark.parametrize("trunk", sorted(TRUNKS))
def test_actor_and_critic_share_the_trunk_not_the_output_layers(trunk):
    model = shared("trpo", trunk)
    assert model.critic.encoder is model.actor.encoder and model.critic.core is model.actor.core
    assert all(a is b for a, b in zip(model.critic.trunk_parameters(), model.actor.trunk_parameters()))
    assert model.critic.net[-1] is not model.actor.net[-1]
    head = {id(p) for p in model.critic.head_layer_parameters()}
    assert {id(p) for group in model.critic_optimizer.param_groups for p in group["params"]} == head
    model.close()


@pytest.mark.parametrize("trunk", sorted(TRUNKS))
def test_the_policy_part_fvp_of_a_shared_network_equals_the_explicit_hessian(trunk):
    model = shared("trpo", trunk, hidden=(6,))
    collector = Collector(model.env, model.actor, model.obs_normalizer, model.reward_scaler, seed=0)
    batch = collector.collect(6)
    actor = model.actor.double()
    obs = batch.obs.double() if batch.obs.is_floating_point() else batch.obs
    inputs = PolicyInputs(obs, batch.masks, batch.first,
                          None if batch.actor_states is None else batch.actor_states[0].double())
    params = actor.policy_parameters()
    if trunk == "cnn":  # the explicit Hessian of a CNN's every weight is large: the output layer, log σ and conv
        params = [*actor.encoder.images["image:"][0].parameters(), *actor.net[-1].parameters()]
    assert_both_fvp_routes_exact(actor, inputs, 0.1, params)
    model.close()


@pytest.mark.parametrize("algo", ["trpo", "npg"])
@pytest.mark.parametrize("trunk", sorted(TRUNKS))
@pytest.mark.parametrize("critic_step", ["natural", "head"])
def test_the_whole_update_keeps_the_kl_within_its_bound(algo, trunk, critic_step):
    """Several real updates (random advantages of a learning agent): KL(π_old ‖ π_new) measured independently after
    the policy step and the critic's step together is within δ + ε_v ("natural") or δ ("head") for TRPO; NPG
    (no line search on the policy step) keeps the critic's share within ε_v of its own step's KL."""
    model = shared(algo, trunk, critic_step=critic_step, vf_lr=3e-3)
    collector = Collector(model.env, model.actor, model.obs_normalizer, model.reward_scaler, seed=1)
    trunk_steps = []
    for _ in range(4):
        data = update_batch(collector.collect(32), model.critic, 0.99, 0.97)
        seq = data.sequences(32 if model.actor.recurrent else 1)
        before = copy.deepcopy(model.actor)
        trunk_before = [p.detach().clone() for p in model.critic.trunk_parameters()]
        metrics = model._update(data, 0.0, lambda: data)
        with torch.no_grad():
            kl = float(before(seq.actor_inputs).kl(model.actor(seq.actor_inputs)).mean())
        assert kl == pytest.approx(metrics["policy/kl_update"], rel=1e-5, abs=1e-9)
        cfg = model.config
        if algo == "trpo":
            assert kl <= metrics["policy/kl_bound"] * (1 + 1e-6)
        if critic_step == "head":
            assert metrics["policy/kl_bound"] == cfg.max_kl and kl == pytest.approx(metrics["policy/kl"], rel=1e-5)
        else:
            assert metrics["policy/kl_bound"] == cfg.max_kl + cfg.critic_kl
            trunk_steps.append(metrics["critic/trunk_step_accepted"])
            if not metrics["critic/trunk_step_accepted"]:  # refused: the trunk is where the policy step left it
                assert kl == pytest.approx(metrics["policy/kl"], rel=1e-5, abs=1e-9)
            else:
                assert metrics["critic/trunk_loss_decrease"] > 0
                assert any(not torch.equal(a, b) for a, b in zip(trunk_before, model.critic.trunk_parameters()))
    assert critic_step == "head" or sum(trunk_steps) >= 2  # the critic's trunk step is taken, not always refused
    model.close()


def test_the_peers_way_adam_on_the_shared_trunk_leaves_the_kl_unbounded():
    """critic_step = "adam" (the critic's Adam steps on the trunk after the policy step): the update's KL is logged
    and, with a large critic learning rate, passes δ."""
    model = natgrad.TRPO("CartPole-v1", seed=0, n_envs=4, n_steps=128, share_trunk=True, critic_step="adam",
                         vf_lr=1e-2, preset=False)
    rows = []
    model.learn(2048, callback=lambda m, metrics: rows.append(metrics))
    assert max(r["policy/kl_update"] for r in rows) > model.config.max_kl
    assert all(r["policy/kl_bound"] == model.config.max_kl for r in rows)
    model.close()


def test_a_shared_trunk_survives_save_and_load(tmp_path):
    model = shared("ppo", "cnn", minibatches=4)
    model.learn(256)
    model.save(tmp_path / "m.pt")
    loaded = natgrad.load(tmp_path / "m.pt")
    assert loaded.critic.encoder is loaded.actor.encoder
    for a, b in zip(model.critic.state_dict().values(), loaded.critic.state_dict().values()):
        assert torch.equal(a, b)
    model.close(), loaded.close()


@pytest.mark.parametrize("algo, env_id, threshold", [
    ("trpo", "CartPole-v1", 475), ("ppo", "CartPole-v1", 475),
    ("trpo", "natgrad-test/Image-v0", None), ("ppo", "natgrad-test/Image-v0", None)])
def test_a_shared_trunk_learns_like_separate_networks(algo, env_id, threshold):
    """The separate networks' bars: CartPole's training return of 475 within 150k (TRPO) or 200k (PPO) steps, and the
    image task's evaluation within 80% of the best, on at least two of three seeds. PPO's combined loss on one
    trunk needs returns on its advantages' scale: there with normalize_reward (on this machine seeds 0-2 then
    reach 475 by 63.5k steps; without it, not within 200k)."""
    if threshold is not None:
        from test_algorithms import seeds_reaching

        budget, kw = (150_000, {}) if algo == "trpo" else (200_000, {"normalize_reward": True})
        assert len(seeds_reaching(natgrad.ALGORITHMS[algo], threshold, budget, share_trunk=True, **kw)) >= 2
        return
    _, best, random = space_envs.TASKS[env_id]
    passed = []
    for seed in range(3):
        model = natgrad.ALGORITHMS[algo](env_id, seed=seed, n_envs=8, n_steps=64, share_trunk=True,
                                         **({"minibatches": 4} if algo == "ppo" else {}))
        model.learn(20_000)
        passed.append(np.mean(evaluate(model, 20)) >= random + 0.8 * (best - random))
        model.close()
        if sum(passed) >= 2 or len(passed) - sum(passed) >= 2:
            break
    assert sum(passed) >= 2, passed
