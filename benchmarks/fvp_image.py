"""One Fisher-vector product through an image actor: the first convolution's own backward against PyTorch's.

natgrad's image encoders start with ``ScaledConv2d``, whose own backward makes the double-vjp trick's J v one
forward convolution (``natgrad.policy.encoders._ImageConv``); with ``own_backward`` off the same layer runs through
``conv2d``, whose double backward also computes the gradient with respect to the image. Both on the same actor
and batch (random observations of the space), one torch thread, taking turns; median seconds over repeats of
a whole product (J v, the distribution's Fisher block, Jᵀw) and of J v alone.

    python -m benchmarks.fvp_image --states 2048 --repeats 5 --out bench-out/fvp-image.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from gymnasium import spaces

from benchmarks._harness import record, refuse_existing
from natgrad.natural.linearized import LinearizedActor
from natgrad.policy.actor_critic import Actor
from natgrad.policy.encoders import ScaledConv2d
from natgrad.policy.spaces import ObsLayout

NETWORKS = {  # name: (observation space, cnn, cnn_features): MinAtar Breakout's and an Atari frame stack's
    "small CNN, 10x10x4 bool": (spaces.Box(0, 1, (10, 10, 4), bool), "small", 128),
    "Nature CNN, 4x84x84 uint8": (spaces.Box(0, 255, (4, 84, 84), np.uint8), "nature", 512),
}


def measure(space: spaces.Box, cnn: str, features: int, states: int, repeats: int) -> dict[str, dict[str, float]]:
    """Median seconds of a product and of J v with the first convolution's own backward and with conv2d's, the
    two taking turns within each repeat."""
    torch.manual_seed(0)
    space.seed(0)
    layout = ObsLayout(space)
    actor = Actor(layout, spaces.Discrete(6), hidden=(64, 64), cnn=cnn, cnn_features=features)
    raw = np.stack([space.sample() for _ in range(states)])
    obs = layout.pack(layout.encode(raw, states))
    first = next(m for m in actor.modules() if isinstance(m, ScaledConv2d))
    v = torch.randn(sum(p.numel() for p in actor.policy_parameters()))
    runs = {}
    for own in (True, False):
        first.own_backward = own  # read when the forward builds the graph
        linear = LinearizedActor(actor, obs)
        fvp = linear.fisher_vector_product(0.1)
        u = torch.zeros_like(linear.out, requires_grad=True)
        jt_u = torch.autograd.grad(linear.out, linear.net_params, u, create_graph=True)
        chunks = [c.view_as(p) for c, p in zip(v.split([p.numel() for p in linear.params]), linear.params)]
        runs["own backward" if own else "conv2d's"] = {
            "product_s": lambda fvp=fvp: fvp(v),
            "jv_s": lambda jt_u=jt_u, u=u, chunks=chunks: torch.autograd.grad(jt_u, u, chunks, retain_graph=True)}
    times: dict[str, dict[str, list[float]]] = {kind: {k: [] for k in r} for kind, r in runs.items()}
    for i in range(repeats + 1):  # the first round warms up
        for kind, r in runs.items():
            for key, run in r.items():
                start = time.perf_counter()
                run()
                if i:
                    times[kind][key].append(time.perf_counter() - start)
    return {kind: {k: statistics.median(t) for k, t in r.items()} for kind, r in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--states", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    refuse_existing(args.out)
    torch.set_num_threads(1)
    results = {**record(), "states": args.states, "repeats": args.repeats, "rows": {}}
    print("| network | first convolution | one product (s) | J v (s) |\n|---|---|---|---|")
    for name, (space, cnn, features) in NETWORKS.items():
        results["rows"][name] = rows = measure(space, cnn, features, args.states, args.repeats)
        for kind, r in rows.items():
            print(f"| {name} | {kind} | {r['product_s']:.3f} | {r['jv_s']:.3f} |", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
