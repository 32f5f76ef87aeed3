"""The scripts behind the results pages, each run from the repository root as ``python -m benchmarks.NAME``
(``--help`` prints its use). None is part of the library; the peers' side runs in a virtual environment of its own
(``--peer-python``) that has Stable-Baselines3 and sb3-contrib, and no natgrad.

Against the published numbers and the peers' code (MuJoCo):

- ``compare_published``: a ``natgrad bench`` summary beside Tianshou's and rl-baselines3-zoo's published numbers.
- ``zoo_rerun``: rl-zoo's agents (sb3-contrib TRPO, SB3 PPO) re-trained here with its hyperparameters, on seeds.
- ``single_agent_bar``: how often an n-seed mean reaches rl-zoo's single trained agent (bootstrap).
- ``step_parity``: one TRPO update on one batch, natgrad's beside sb3-contrib's.
- ``ant_v3_like``: ``AntV3Like-v5``, Ant-v5 as the published Ant-v3 numbers saw it; its contact forces.
- ``readme_results``: the results tables of README.md and docs/results/benchmarks.md and the README's figure,
  from the committed result files (``--check``: exit 1 if they differ).
- ``regression``: new seeds of some of the README table's cells on the current commit, tested against the table's
  seeds (moved or not), with the commit they ran at.
- ``paths``: where two commits' runs of one seed part (``scan``: the commits that change a seed's path; ``pair``:
  two commits trained from the same initial weights), to tell a new draw from a change of the algorithm.
- ``bounded``: TRPO and PPO with Gaussian, squashed Gaussian and Beta policies, and TRPL's KL and W2 projections:
  the final evaluation against the Gaussian of the same loop, and the per-state KL each method produces.

Speed and cost:

- ``throughput``: steps/s and the shares of env, policy and update, natgrad beside sb3-contrib, SB3 and Tianshou,
  and the seconds of one TRPO update.
- ``ray_scaling``: TRPO's steps/s with the local sampler against Ray rollout workers.
- ``critic_fit_alternatives``: the CPU cost of one critic fit, Adam against L-BFGS, compiled and functional.
- ``fvp_image``: one Fisher-vector product through an image actor, with its first convolution's own backward or
  conv2d's.
- ``fisher_spectrum``: the eigenvalues of a trained Gaussian policy's Fisher, and what the CG damping does.

Devices:

- ``device_envs``: natgrad's TRPO and PPO on a game through gymnax or EnvPool beside the same game through
  Gymnasium's vector env, at several env counts: steps/s, the rollout / update split, the return at a fixed budget.
- ``gpu``: one prepared command on an accelerator: natgrad on the CPU and the device, eager and compiled, beside
  SB3 and sb3-contrib on the same device (MinAtar Breakout, Pong, Hopper, gymnax CartPole with 4096 envs).

Other observation spaces and networks:

- ``spaces_peers``: MinAtar, natgrad's TRPO and PPO beside sb3-contrib's and SB3's, same settings and network.
- ``spaces_throughput``: steps/s on MinAtar and Atari images beside the peers, and the floor of the tensor work.
- ``spaces_minigrid``: MiniGrid's image-and-direction observations with natgrad's TRPO and PPO.
- ``recurrent``: recurrent policies on partially observed classic control beside sb3-contrib's RecurrentPPO.
- ``shared_trunk``: a shared actor-critic trunk against separate networks: return, time, the KL of each update.

Language-model policies:

- ``lm_tasks``: GRPO, GRPO with a KL, GRPO-KL, TRPO and NPG (``natgrad.lm``) on checkable token tasks (reverse, sort,
  add) from a warm-started tiny Llama: success against samples, the KL of each update, collapses, wall time.
- ``lm_trl``: TRL's GRPOTrainer on the same tasks, model and budget (run in the peers' environment, with trl).

Shared by the scripts: ``_harness`` (measurements in child processes, contenders taking turns, medians, the
machine a result ran on, resumable grids of runs) and ``peers`` (the peers' names and their runs scored as
``natgrad bench`` scores natgrad's).
"""
