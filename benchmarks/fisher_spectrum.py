"""How much of a trained Gaussian policy's Fisher lies below the CG damping: the eigenvalues of the
explicit F on states of the policy's own rollout, and how damping turns the natural step.

    python -m benchmarks.fisher_spectrum MODEL.pt [--states 4096] [--seed 1] [--cg-iters 25]

F = [2·I for log σ; E_s[J_sᵀ diag(1/σ²) J_s] for the mean network's weights] (a diagonal Gaussian
actor), from ``torch.func`` Jacobians in chunks of states, and checked against natgrad's own
Fisher-vector product (``LinearizedActor``) on random vectors before it is used. The gradient is the
surrogate's, g = ∇ E[Â log π(a|s)] on the same rollout, with GAE(γ, λ) advantages from the model's critic
on its rewards scaled as in training (``RewardScaler.scale``), normalized as in training. For each damping
d the script solves (F + d·I) x = g exactly and by the training's truncated CG (``--cg-iters``), and
prints the cosine of the exact x to the exact d = 0.1 solution, of the CG x to the exact d = 0.1 one and
to the CG d = 0.1 one (the step training takes), and each x's xᵀFx. Nothing here is used by the library.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from torch.func import functional_call, jacrev, vmap

import natgrad
from natgrad.natural.cg import conjugate_gradient
from natgrad.natural.linearized import LinearizedActor
from natgrad.objectives.gae import gae, normalize
from natgrad.rollouts.envs import make_env


def rollout(model, n: int, seed: int) -> dict[str, torch.Tensor]:
    """``n`` steps of the model's stochastic policy in one env, with what GAE needs."""
    env = make_env(model.env_id, model.config.env_kwargs)
    obs, _ = env.reset(seed=seed)
    torch.manual_seed(seed)
    out = {k: [] for k in ("obs", "act", "rew", "next_obs", "term", "ended")}

    def normalized(o: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(model.obs_normalizer(np.asarray(o, np.float64)[None]))[0]

    x = normalized(obs)
    for _ in range(n):
        with torch.no_grad():
            a = model.actor(x[None]).sample()[0]
        nxt, r, term, trunc, _ = env.step(a.numpy())
        x_next = normalized(nxt)
        for k, v in (("obs", x), ("act", a), ("rew", float(r)), ("term", term), ("ended", term or trunc),
                     ("next_obs", x_next)):
            out[k].append(v)
        x = normalized(env.reset()[0]) if term or trunc else x_next
    return {k: torch.stack(v) if isinstance(v[0], torch.Tensor) else torch.tensor(v) for k, v in out.items()}


def explicit_fisher(actor, obs: torch.Tensor, chunk: int = 256) -> torch.Tensor:
    """F of a diagonal Gaussian actor in ``actor.parameters()`` order (log σ first, then the network)."""
    if not actor.continuous:
        raise SystemExit("this script handles Gaussian (Box-action) actors only")
    params = {k: v.detach() for k, v in actor.net.named_parameters()}
    inv_var = torch.exp(-2 * actor.log_std.detach()).double()
    k = len(inv_var)
    n_net = sum(v.numel() for v in params.values())
    F = torch.zeros(k + n_net, k + n_net, dtype=torch.float64)
    F[:k, :k] = 2 * torch.eye(k, dtype=torch.float64)
    jac = vmap(jacrev(lambda p, x: functional_call(actor.net, p, (x[None],))[0]), in_dims=(None, 0))
    for part in obs.split(chunk):
        J = torch.cat([j.reshape(len(part), k, -1) for j in jac(params, part).values()], dim=2).double()
        F[k:, k:] += torch.einsum("nip,i,niq->pq", J, inv_var, J) / len(obs)
    return F


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model")
    p.add_argument("--states", type=int, default=4096)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--cg-iters", type=int, default=25)
    args = p.parse_args()
    model = natgrad.load(args.model)
    cfg = model.config
    b = rollout(model, args.states, args.seed)
    with torch.no_grad():
        v, v_next = model.critic(b["obs"]), model.critic(b["next_obs"])
    rew = torch.as_tensor(model.reward_scaler.scale(b["rew"].numpy()), dtype=v.dtype) \
        if cfg.normalize_reward else b["rew"].to(v.dtype)
    adv, _ = gae(rew[:, None], v[:, None], v_next[:, None], b["term"][:, None], b["ended"][:, None],
                 cfg.gamma, cfg.gae_lambda)
    adv = normalize(adv[:, 0]) if cfg.normalize_advantage else adv[:, 0]

    lin = LinearizedActor(model.actor, b["obs"])
    log_p_old = lin.dist.log_prob(b["act"])
    _, g = lin.value_and_grad(lambda d: (torch.exp(d.log_prob(b["act"]) - log_p_old) * adv).mean())
    F = explicit_fisher(model.actor, b["obs"])
    fvp = lin.fisher_vector_product(0.0)
    for v in torch.randn(3, len(g), dtype=torch.float64):
        err = float((F @ v - fvp(v.float()).double()).norm() / (F @ v).norm())
        if err > 1e-3:
            raise SystemExit(f"explicit F disagrees with natgrad's Fisher-vector product (relative error {err:.2g})")
    ev = torch.linalg.eigvalsh(F)
    sigma = model.actor.log_std.exp().detach()  # a Gaussian actor: explicit_fisher refuses others
    print(f"{model.env_id} {args.model}: {len(g)} parameters, {args.states} states, σ = "
          f"{[round(float(s), 3) for s in sigma]}")
    qs = (0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0)
    print("eigenvalue quantiles: " + ", ".join(f"{q:.0%} {float(torch.quantile(ev, q)):.3g}" for q in qs))
    for d in (0.1, 0.01, 0.001):
        print(f"  share of eigenvalues below {d:g}: {float((ev < d).double().mean()):.0%}")
    gd = g.double()

    def solve(d: float) -> tuple[torch.Tensor, torch.Tensor]:
        exact = torch.linalg.solve(F + d * torch.eye(len(g), dtype=F.dtype), gd)
        return exact, conjugate_gradient(lambda u: F @ u + d * u, gd, args.cg_iters, cfg.cg_tol).x

    def cos(x: torch.Tensor, y: torch.Tensor) -> float:
        return float(x @ y / x.norm() / y.norm())

    ref, ref_cg = solve(0.1)
    print(f"{'damping':>8} {'exact·exact0.1':>15} {'CG·exact0.1':>12} {'CG·CG0.1':>9} {'xFx exact':>10} {'xFx CG':>8}")
    for d in (0.1, 0.01, 0.001):
        exact, cg = solve(d)
        print(f"{d:>8g} {cos(exact, ref):>15.3f} {cos(cg, ref):>12.3f} {cos(cg, ref_cg):>9.3f} "
              f"{float(exact @ F @ exact):>10.3g} {float(cg @ F @ cg):>8.3g}")


if __name__ == "__main__":
    main()
