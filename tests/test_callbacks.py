"""The ready callbacks do what they say, checked against what the model and evaluate() give on their own."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest

import natgrad
from natgrad import NatgradError
from natgrad.runs.callbacks import (
    CallbackList,
    CheckpointCallback,
    EvalCallback,
    StopOnNoImprovement,
    StopOnRewardThreshold,
)
from natgrad.runs.evaluation import evaluate

BATCH = 64


def cartpole(**kw):
    return natgrad.TRPO("CartPole-v1", seed=0, n_envs=1, n_steps=BATCH, preset=False, **kw)


def test_eval_callback_logs_each_evaluation_and_keeps_the_best_model(tmp_path):
    model = cartpole()
    log, best = tmp_path / "evals.csv", tmp_path / "best.pt"
    evaluation = EvalCallback(2 * BATCH, episodes=3, log_path=log, best_model_path=best)
    means_at = {}

    def independently(m, _):
        if m.num_timesteps % (2 * BATCH) == 0:
            means_at[m.num_timesteps] = evaluate(m, 3)

    model.learn(6 * BATCH, callback=[evaluation, independently])
    rows = list(csv.DictReader(open(log)))
    assert [int(r["step"]) for r in rows] == [2 * BATCH, 4 * BATCH, 6 * BATCH]
    for row in rows:  # each row: evaluate() on the model as it was at that step, same seeds
        returns = means_at[int(row["step"])]
        assert float(row["mean"]) == pytest.approx(np.mean(returns))
        assert float(row["std"]) == pytest.approx(np.std(returns))
        assert (float(row["min"]), float(row["max"])) == (min(returns), max(returns))
    means = [float(r["mean"]) for r in rows]
    best_step = int(rows[int(np.argmax(means))]["step"])  # the first of equal bests
    assert natgrad.load(best).num_timesteps == best_step
    assert evaluation.best_mean == max(means)
    model.close()


def test_eval_callback_never_overwrites_a_file(tmp_path):
    (tmp_path / "best.pt").write_text("mine")
    with pytest.raises(NatgradError, match="already exists"):
        EvalCallback(100, best_model_path=tmp_path / "best.pt")
    (tmp_path / "evals.csv").write_text("mine")
    with pytest.raises(FileExistsError):
        EvalCallback(100, log_path=tmp_path / "evals.csv")
    assert (tmp_path / "best.pt").read_text() == (tmp_path / "evals.csv").read_text() == "mine"


def test_checkpoints_every_n_steps_carry_the_normalizer(tmp_path):
    model = cartpole()
    checkpoints = CheckpointCallback(2 * BATCH, tmp_path / "ckpt")
    model.learn(5 * BATCH, callback=checkpoints)
    assert [p.name for p in sorted((tmp_path / "ckpt").iterdir())] == [
        f"step_{2 * BATCH:010d}.pt", f"step_{4 * BATCH:010d}.pt"]
    restored = natgrad.load(checkpoints.saved[-1])
    assert restored.num_timesteps == 4 * BATCH
    assert restored.obs_normalizer.rms.count == pytest.approx(1e-4 + 4 * BATCH + 1)  # every observation seen
    model.close()


def test_stop_on_reward_threshold_stops_at_the_first_update_reaching_it():
    model = cartpole()
    seen = []
    model.learn(40 * BATCH, callback=[lambda m, metrics: seen.append(metrics["rollout/ep_return_mean"]),
                                      StopOnRewardThreshold(30, key="rollout/ep_return_mean")])
    first = next(k for k, value in enumerate(seen) if value >= 30)
    assert len(seen) == first + 1 and model.num_timesteps == (first + 1) * BATCH
    model.close()


def test_stops_after_an_evaluation_and_a_list_runs_every_callback():
    model = cartpole()
    calls = []
    evaluation = EvalCallback(2 * BATCH, episodes=1, after_eval=[StopOnRewardThreshold(-math.inf)])
    model.learn(10 * BATCH, callback=CallbackList([evaluation, lambda m, _: calls.append(m.num_timesteps)]))
    assert model.num_timesteps == 2 * BATCH and calls == [BATCH, 2 * BATCH]  # the logger-like one saw the last
    model.close()


def test_stop_on_no_improvement_counts_calls_since_the_best():
    stop = StopOnNoImprovement(patience=2, min_delta=0.5)
    values = [1.0, 2.0, math.nan, 2.4, 3.0, 3.2, 3.4]
    goes_on = [stop(None, {"eval/mean_return": v}) for v in values]
    # 2.4 and 3.2 are within min_delta of the best (2.0, then 3.0); the NaN neither improves nor counts
    assert goes_on == [True, True, True, True, True, True, False]


def test_a_stop_callback_without_its_metric_says_where_to_get_it():
    with pytest.raises(NatgradError, match="EvalCallback's after_eval") as error:
        StopOnRewardThreshold(1)(None, {"rollout/ep_return_mean": 1.0})
    assert "\n" not in str(error.value)
