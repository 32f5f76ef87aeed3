"""natgrad computes on its own thread count (1 by default) and gives torch's back afterwards."""

import numpy as np
import pytest
import torch

import natgrad
from natgrad import NatgradError


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("threads, inside", [(1, 1), (2, 2), (None, 2)])
def test_learn_and_predict_use_the_models_thread_count_and_restore_the_users(two_threads, threads, inside,
                                                                               monkeypatch):
    model = natgrad.TRPO("CartPole-v1", n_envs=1, n_steps=32, threads=threads)
    seen = []
    model.learn(64, callback=lambda m, metrics: seen.append(torch.get_num_threads()))
    assert seen == [inside, inside]
    assert torch.get_num_threads() == 2
    real = model.actor.forward
    monkeypatch.setattr(model.actor, "forward", lambda obs: (seen.append(torch.get_num_threads()), real(obs))[1])
    model.predict(np.zeros(4))
    assert seen[-1] == inside and torch.get_num_threads() == 2
    model.close()


@pytest.mark.parametrize("threads", [0, -1, 1.5, True])
def test_bad_thread_count_is_refused(threads):
    with pytest.raises(NatgradError, match="invalid threads"):
        natgrad.TRPO("CartPole-v1", threads=threads)


def test_the_cli_trains_on_the_thread_count_it_is_given(tmp_path, monkeypatch):
    from natgrad.algos.base import Algorithm
    from natgrad.runs.training import train_run

    seen = []
    real = Algorithm._train_on
    monkeypatch.setattr(Algorithm, "_train_on",
                        lambda self, *a, **k: (seen.append(torch.get_num_threads()), real(self, *a, **k))[1])
    train_run("trpo", "CartPole-v1", 64, out=tmp_path / "run", overrides={"n_steps": 64, "n_envs": 1},
              eval_episodes=0, progress=False, threads=2)
    assert seen == [2]
