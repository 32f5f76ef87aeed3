"""compile=True: the compiled update agrees with the eager one, compiles once per shape, and falls back to eager
(with one warning) where torch cannot compile."""

from __future__ import annotations

import copy
import json
import math
import warnings

import pytest
import torch
from test_trust_region import real_batches
from typer.testing import CliRunner

import natgrad
from natgrad.algos import compiled
from natgrad.algos.compiled import CapturedStep, Compiler
from natgrad.cli import app
from natgrad.errors import NatgradError
from natgrad.natural.flat import flat_params
from natgrad.natural.step import natural_step, surrogate_and_kl

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")

SMALL = {"n_envs": 1, "n_steps": 64, "hidden": (16,), "preset": False}
FAMILIES = [(natgrad.PPO, {"minibatches": 2, "epochs": 2}),  # proximal: the minibatch loss
            (natgrad.TRPO, {"vf_epochs": 2, "vf_minibatch_size": 32})]  # natural: the tries and the critic loss


def trained(algo, updates: int = 2, **kwargs) -> tuple[natgrad.Algorithm, list[dict[str, float]]]:
    """A tiny model on CartPole after ``updates`` updates, and its metric rows (timings left out)."""
    model = algo("CartPole-v1", seed=3, **SMALL, **kwargs)
    rows: list[dict[str, float]] = []
    model.learn(updates * 64, callback=lambda _, r: rows.append({k: v for k, v in r.items()
                                                                 if not k.startswith("time/")}))
    model.close()
    return model, rows


def assert_same_training(a: natgrad.Algorithm, rows_a: list, b: natgrad.Algorithm, rows_b: list, rel: float) -> None:
    """Equal parameters to ``rel`` (and 1e-6 absolute) and metric rows to 10·``rel`` (1e-5 absolute: the second
    update's CG solve amplifies float32 rounding in the critic into its residual and β)."""
    for module in ("actor", "critic"):
        theirs = getattr(b, module).state_dict()
        for name, p in getattr(a, module).state_dict().items():
            torch.testing.assert_close(theirs[name], p, rtol=rel, atol=1e-6 if rel else 0, msg=f"{module}.{name}")
    assert [r.keys() for r in rows_a] == [r.keys() for r in rows_b]
    for ra, rb in zip(rows_a, rows_b):
        for k, v in ra.items():
            assert rb[k] == pytest.approx(v, rel=10 * rel, abs=1e-5 if rel else 0, nan_ok=True), k


@pytest.mark.parametrize(("algo", "kwargs"), FAMILIES, ids=["ppo", "trpo"])
def test_compiled_updates_agree_with_eager_and_compile_once(algo, kwargs):
    from torch._dynamo.utils import counters

    eager = trained(algo, **kwargs)
    model, rows = trained(algo, **kwargs, compile=True)
    assert model.compiler.active, model.compiler.failure  # no fallback: inductor compiles on this CPU
    assert_same_training(*eager, model, rows, rel=1e-5)
    graphs = counters["stats"]["unique_graphs"]
    model.learn(64)  # a third update: every shape seen, nothing compiled again
    assert counters["stats"]["unique_graphs"] == graphs


def test_a_torch_compile_that_raises_warns_once_and_runs_eagerly(monkeypatch):
    def unsupported(*args, **kwargs):
        raise RuntimeError("Dynamo is not supported on this platform")

    monkeypatch.setattr(torch, "compile", unsupported)
    with pytest.warns(UserWarning) as caught:
        model, rows = trained(natgrad.TRPO, compile=True)  # two compiled functions, one warning
    assert len(caught) == 1
    assert str(caught[0].message) == ("compile=True: torch.compile failed here (RuntimeError: Dynamo is not "
                                      "supported on this platform); running eagerly")
    assert not model.compiler.active
    assert_same_training(*trained(natgrad.TRPO), model, rows, rel=0)


def test_a_compiled_call_that_fails_warns_once_and_runs_eagerly(monkeypatch):
    def no_compiler(fn, **kwargs):
        def run(*args, **kw):
            raise RuntimeError("InvalidCxxCompiler: No working C++ compiler found")
        return run

    monkeypatch.setattr(torch, "compile", no_compiler)
    with pytest.warns(UserWarning, match=r"^compile=True: torch.compile failed here \(RuntimeError: Invalid") as caught:
        model, rows = trained(natgrad.PPO, minibatches=2, compile=True)
    assert len(caught) == 1 and model.compiler.failure is not None
    assert_same_training(*trained(natgrad.PPO, minibatches=2), model, rows, rel=0)


def test_an_error_of_the_function_itself_is_raised_not_hidden(monkeypatch):
    monkeypatch.setattr(torch, "compile", lambda fn, **kwargs: fn)
    compiler = Compiler(True, torch.device("cpu"))

    @compiler
    def loss(x: torch.Tensor) -> torch.Tensor:
        raise ValueError("shapes do not match")

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="shapes do not match"):
            loss(torch.zeros(1))
    assert compiler.active


def test_compile_off_leaves_the_functions_alone():
    compiler = Compiler(False, torch.device("cpu"))
    assert compiler(math.sqrt) is math.sqrt and not compiler.active


def test_compile_must_be_a_bool():
    with pytest.raises(NatgradError, match="compile must be True or False, got 'yes'"):
        natgrad.PPO("CartPole-v1", compile="yes", **SMALL)


def test_compile_is_not_saved_with_the_model(tmp_path):
    model = natgrad.PPO("CartPole-v1", compile=True, **SMALL)
    path = model.save(tmp_path / "model.pt")
    model.close()
    assert "compile" not in model.state() and "compile" not in model.state()["config"]
    for compile in (False, True):
        loaded = natgrad.load(path, compile=compile)
        assert loaded.compiler.enabled == compile
        obs = torch.zeros(4).numpy()
        assert loaded.predict(obs, deterministic=True) == model.predict(obs, deterministic=True)
        loaded.close()


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize(("algo", "kwargs"), FAMILIES, ids=["ppo", "trpo"])
def test_compiled_updates_on_cuda_agree_with_eager(algo, kwargs):
    """On CUDA, compile=True captures CUDA graphs ("reduce-overhead") and takes the eager update's steps."""
    eager = trained(algo, **kwargs, device="cuda")
    model, rows = trained(algo, **kwargs, device="cuda", compile=True)
    assert model.compiler.active and model.compiler.cuda_graphs, model.compiler.failure
    assert_same_training(*eager, model, rows, rel=1e-5)


def test_train_compile_compiles_the_update_and_records_it(tmp_path, monkeypatch):
    compiled: list[str] = []
    monkeypatch.setattr(torch, "compile", lambda fn, **kwargs: compiled.append(fn.__name__) or fn)
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", "--algo", "trpo", "--steps", "64", "--set", "n_steps=64", "--out",
                                      str(out), "--eval-episodes", "0", "--no-progress", "--compile"])
    assert result.exit_code == 0, result.output
    assert compiled == ["surrogate_and_state_kl", "critic_loss"]
    assert json.loads((out / "config.json").read_text())["compile"] is True


def captured_and_eager(model, n_batches: int, step: CapturedStep, monkeypatch=None):
    """θ after ``step`` and after the eager sync-free ``natural_step`` from the same θ on each of ``n_batches``
    batches (the later ones, when ``monkeypatch`` is given, replayed under ``set_sync_debug_mode("error")`` with
    the read-back left until after)."""
    cfg, eager_actor = model.config, copy.deepcopy(model.actor)
    for k, batch in enumerate(real_batches(model, n_batches)):
        want = natural_step(eager_actor, *batch, cfg, True, sync_free=True)
        if monkeypatch is not None and k > 0:
            figures, read_back = [], compiled.figures_step
            monkeypatch.setattr(compiled, "figures_step", lambda values, cfg: figures.append(values))
            torch.cuda.set_sync_debug_mode("error")
            try:
                step(model.actor, *batch, cfg, True, None, surrogate_and_kl)
            finally:
                torch.cuda.set_sync_debug_mode("default")
                monkeypatch.setattr(compiled, "figures_step", read_back)
            got = read_back(figures[0], cfg)
        else:
            got = step(model.actor, *batch, cfg, True, None, surrogate_and_kl)
        assert got.accepted == want.accepted and got.backtracks == want.backtracks
        torch.testing.assert_close(flat_params(model.actor.policy_parameters()),
                                   flat_params(eager_actor.policy_parameters()), rtol=0, atol=1e-6)


def test_natural_step_is_not_captured_off_cuda():
    """On the CPU, compile=True leaves the natural step eager: no capture is tried, the steps are the eager ones."""
    model = natgrad.TRPO("CartPole-v1", seed=0, n_envs=2, n_steps=32, compile=True, device="cpu")
    step = CapturedStep(model.compiler)
    step._capture = lambda *args: pytest.fail("a capture was tried")
    assert not step.usable(model.actor, model.config)
    captured_and_eager(model, 2, step)
    assert step.failure is None and step.graph is None
    model.close()


def test_a_failed_capture_warns_once_and_runs_the_eager_step(monkeypatch):
    """Where capturing fails (here: asked on a CPU, whose torch has no CUDA streams), one warning and the eager
    step, bit for bit, from then on."""
    monkeypatch.setattr(torch, "compile", lambda fn, **kwargs: fn)
    model = natgrad.TRPO("CartPole-v1", seed=0, n_envs=2, n_steps=32, compile=True, device="cpu")
    model.compiler.cuda_graphs = True  # as on CUDA
    step = CapturedStep(model.compiler)
    assert step.usable(model.actor, model.config)
    with pytest.warns(UserWarning, match="capturing the natural step as a CUDA graph failed") as caught:
        captured_and_eager(model, 2, step)
    assert len(caught) == 1 and step.failure is not None and not step.usable(model.actor, model.config)
    model.close()


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_captured_natural_step_replays_the_eager_one_without_synchronising(monkeypatch):
    model = natgrad.TRPO("CartPole-v1", seed=0, n_envs=2, n_steps=64, compile=True, device="cuda")
    step = CapturedStep(model.compiler)
    assert step.usable(model.actor, model.config)
    captured_and_eager(model, 3, step, monkeypatch)
    assert step.graph is not None and step.failure is None, step.failure
    model.close()
