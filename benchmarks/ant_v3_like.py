"""Ant-v5 as the published Ant-v3 numbers saw it: no contact forces in the observation, no contact cost.

Tianshou's and rl-baselines3-zoo's Ant results were trained on Ant-v3 under mujoco-py >= 2.0, where
the 84 contact-force entries of the observation read zero and the contact cost was therefore zero too
(openai/gym#1541). Ant-v5 observes the forces (105 numbers, not 27) and charges for them. This module
registers ``AntV3Like-v5``: Ant-v5 with ``include_cfrc_ext_in_observation=False`` and
``contact_cost_weight=0``, everything else Ant-v5's. It is for measuring how much of natgrad's Ant gap
to the published numbers is the env; the benchmark table itself uses Ant-v5. Use it through natgrad's
``module:EnvId`` form with this folder on the path:

    PYTHONPATH=benchmarks natgrad train --algo trpo --env ant_v3_like:AntV3Like-v5 --steps 1e6

Run as a script, it prints what Ant-v5's contact-force entries look like under Gaussian actions of the
Ant presets' initial σ = e⁻¹ (clipped to the action bounds), over a fixed number of steps:

    python -m benchmarks.ant_v3_like [--steps 3000]
"""

import argparse

import gymnasium as gym
import numpy as np

from natgrad.rollouts.normalization import ObsNormalizer

ID = "AntV3Like-v5"
# Ant-v5 with its reward untouched (contact cost charged) whose observation leaves out the contact
# forces: the candidate of tuning.md's fifth Ant round, run before natgrad's presets could set env options.
NO_CONTACT_OBS_ID = "AntNoContactObs-v5"

for env_id, kwargs in {ID: {"include_cfrc_ext_in_observation": False, "contact_cost_weight": 0.0},
                       NO_CONTACT_OBS_ID: {"include_cfrc_ext_in_observation": False}}.items():
    if env_id not in gym.registry:
        gym.register(id=env_id, entry_point="gymnasium.envs.mujoco.ant_v5:AntEnv", max_episode_steps=1000,
                     kwargs=kwargs)


def contact_force_stats(steps: int, seed: int = 0) -> dict[str, float]:
    """How many of Ant-v5's contact-force entries are ever non-zero, how often, and how far natgrad's
    running observation normalization (``ObsNormalizer.observe``, as the rollout applies it) sends them."""
    env = gym.make("Ant-v5")
    n_other = gym.make(ID).observation_space.shape[0]  # the entries that are not contact forces
    normalizer = ObsNormalizer(env.observation_space.shape)
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    raw, normalized = [], []
    for _ in range(steps):
        action = np.clip(rng.normal(0.0, np.exp(-1.0), env.action_space.shape), -1, 1)
        obs, _, terminated, truncated, _ = env.step(action)
        raw.append(obs[n_other:])
        normalized.append(normalizer.observe(obs[None].astype(np.float64))[0, n_other:])
        if terminated or truncated:
            obs, _ = env.reset()
    forces, z = np.array(raw), np.array(normalized)
    active = (forces != 0).any(axis=0)
    on = (forces[:, active] != 0).mean(0)
    return {"entries": forces.shape[1], "ever_nonzero": int(active.sum()),
            "fraction_on_min": float(on.min()), "fraction_on_max": float(on.max()),
            "max_abs": float(np.abs(forces).max()), "max_abs_normalized": float(np.abs(z[:, active]).max())}

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Ant-v5's contact-force observations under random actions")
    parser.add_argument("--steps", type=int, default=3000)
    print(contact_force_stats(parser.parse_args().steps))
