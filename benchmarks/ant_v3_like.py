"""Ant-v5 as the published Ant-v3 numbers saw it: no contact forces in the observation, no contact cost.

Tianshou's and rl-baselines3-zoo's Ant results were trained on Ant-v3 under mujoco-py >= 2.0, where
the 84 contact-force entries of the observation read zero and the contact cost was therefore zero too
(openai/gym#1541). Ant-v5 observes the forces (105 numbers, not 27) and charges for them. This module
registers ``AntV3Like-v5``: Ant-v5 with ``include_cfrc_ext_in_observation=False`` and
``contact_cost_weight=0``, everything else Ant-v5's. It is for measuring how much of natgrad's Ant gap
to the published numbers is the env; the benchmark table itself uses Ant-v5. Use it through natgrad's
``module:EnvId`` form with this folder on the path:

    PYTHONPATH=benchmarks natgrad train --algo trpo --env ant_v3_like:AntV3Like-v5 --steps 1e6
"""

import gymnasium as gym

ID = "AntV3Like-v5"

if ID not in gym.registry:
    gym.register(
        id=ID,
        entry_point="gymnasium.envs.mujoco.ant_v5:AntEnv",
        max_episode_steps=1000,
        kwargs={"include_cfrc_ext_in_observation": False, "contact_cost_weight": 0.0},
    )
