"""What a refactoring must not move: the metric rows of two updates per algorithm and policy kind, and saved models
of each kind with the actions they predict.

``python tests/behaviour.py rows OUT.json`` writes the rows (timings dropped; floats as ``repr``, so two files
compare bit for bit on one machine); run it before and after a change that should not alter behaviour and compare
the files (``cmp``). ``python tests/behaviour.py fixtures`` re-makes ``tests/fixtures/`` (the saved models and their
actions, which ``test_fixture_checkpoints.py`` holds every later natgrad to): do that only when the checkpoint
format changes on purpose.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import space_envs

import natgrad

FIXTURES = Path(__file__).parent / "fixtures"
KINDS: dict[str, tuple[str, dict[str, Any]]] = {  # policy kind: (env id, options)
    "mlp": ("Pendulum-v1", {}),
    "cnn": ("natgrad-test/Image-v0", {}),
    "lstm": ("CartPole-v1", {"recurrent": "lstm", "seq_len": 16}),
    "masked": ("natgrad-test/Masked-v0", {}),
    "shared_trunk": ("CartPole-v1", {"share_trunk": True}),
}
N_STEPS = 64


def make(algo: str, kind: str, seed: int = 0) -> natgrad.Algorithm:
    """A fresh ``algo`` model of policy ``kind`` on its env, without presets, ``N_STEPS`` steps per update, on the
    CPU whatever the machine has (the rows and fixtures are CPU numbers)."""
    space_envs.register()
    env_id, options = KINDS[kind]
    return natgrad.ALGORITHMS[algo](env_id, seed=seed, preset=False, n_steps=N_STEPS, device="cpu", **options)


def metric_rows(algo: str, kind: str) -> list[dict[str, str]]:
    """The metric rows of two updates, timings (``time/`` but the step counters) dropped, values as ``repr``."""
    rows: list[dict[str, str]] = []
    model = make(algo, kind)
    model.learn(2 * N_STEPS, callback=lambda _, metrics: rows.append(
        {k: repr(v) for k, v in metrics.items() if not k.startswith("time/") or k in ("time/steps", "time/updates")}))
    model.close()
    return rows


def observations(kind: str, n: int = 8) -> dict[str, Any]:
    """``n`` observations of ``kind``'s env (and its legal-action masks where it has them), as JSON data."""
    model = make("trpo", kind)
    env = model.env
    obs, _ = env.reset(seed=123)
    batch, masks = [], []
    for _ in range(n):
        batch.append(np.asarray(obs[0]).tolist())
        if kind == "masked":
            masks.append(np.asarray(env.call("action_masks")[0]).astype(int).tolist())
        obs, *_ = env.step(np.asarray([env.single_action_space.sample()]))
    model.close()
    return {"obs": batch, **({"masks": masks} if masks else {})}


def predictions(model: natgrad.Algorithm, data: dict[str, Any]) -> list:
    """The deterministic actions of ``model`` for the observations in ``data`` (one batch), as JSON data."""
    obs = np.asarray(data["obs"], model.observation_space.dtype)
    kwargs = {"action_masks": np.asarray(data["masks"], bool)} if "masks" in data else {}
    action = model.predict(obs, deterministic=True, **kwargs)
    return np.asarray(action[0] if isinstance(action, tuple) else action).tolist()


def write_fixtures() -> None:
    """Train a TRPO model of each kind for a few updates, save it and the actions it predicts."""
    FIXTURES.mkdir(exist_ok=True)
    expected = {}
    for kind in KINDS:
        model = make("trpo", kind)
        model.learn(4 * N_STEPS)
        model.save(FIXTURES / f"{kind}.pt", overwrite=True)
        data = observations(kind)
        expected[kind] = {**data, "actions": predictions(model, data)}
        model.close()
    (FIXTURES / "predictions.json").write_text(json.dumps(expected, indent=1) + "\n")


def main(argv: list[str]) -> None:
    if argv[:1] == ["rows"] and len(argv) == 2:
        rows = {f"{algo}/{kind}": metric_rows(algo, kind) for algo in natgrad.ALGORITHMS for kind in KINDS
                if algo != "trpl" or kind == "mlp"}  # TRPL projects Gaussians: the Box kind only
        Path(argv[1]).write_text(json.dumps(rows, indent=1, sort_keys=True) + "\n")
    elif argv == ["fixtures"]:
        write_fixtures()
    else:
        raise SystemExit("usage: python tests/behaviour.py rows OUT.json | fixtures")


if __name__ == "__main__":
    main(sys.argv[1:])
