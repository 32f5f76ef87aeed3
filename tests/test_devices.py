"""``device=``: where a model's networks, optimizers, batches and update live; checkpoints load onto any device.

The CPU tests run everywhere; the ``cuda`` ones need a GPU and are skipped without one.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from test_cli import one_line_error

import natgrad
from natgrad.config import resolve_device
from natgrad.errors import NatgradError
from natgrad.rollouts.batch import RolloutBatch


def cuda(test: Any) -> Any:
    """A test that needs a CUDA device: marked ``cuda``, skipped without one."""
    return pytest.mark.cuda(pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")(test))


no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal where torch sees no CUDA device")
SMALL = {"n_steps": 64, "preset": False}


def tensors(x: Any, where: str = "") -> list[tuple[str, torch.Tensor]]:
    """Every tensor in a nest of dicts, lists and dataclass batches, with where it was found."""
    if isinstance(x, torch.Tensor):
        return [(where, x)]
    if isinstance(x, dict):
        return [t for k, v in x.items() for t in tensors(v, f"{where}/{k}")]
    if isinstance(x, (list, tuple)):
        return [t for i, v in enumerate(x) for t in tensors(v, f"{where}/{i}")]
    if isinstance(x, RolloutBatch):
        return tensors(vars(x), where)
    return []


def off_device(model: natgrad.Algorithm, batch: RolloutBatch) -> list[str]:
    """Where a tensor of the model's networks and optimizers, or of a batch it collected, is not on its device (the
    normalizer statistics are NumPy on the host, where a NumPy env's observations are)."""
    state = {k: v for k, v in model.state().items() if k not in ("obs_rms", "reward_rms")}
    found = tensors(state) + tensors(batch, "batch")
    return [f"{where}: {t.device}" for where, t in found if t.device != model.device]


def rows(model: natgrad.Algorithm, steps: int = 128) -> list[dict[str, str]]:
    """The metric rows of training ``model`` for ``steps`` env steps, timings left out, as ``repr`` (NaN included)."""
    out: list[dict[str, str]] = []
    model.learn(steps, callback=lambda _, m: out.append({k: repr(v) for k, v in m.items()
                                                         if not k.startswith("time/")}))
    model.close()
    return out


def test_auto_is_cuda_where_torch_sees_one_else_cpu():
    gpu = torch.cuda.is_available()
    assert resolve_device("auto") == (torch.device("cuda", torch.cuda.current_device()) if gpu else torch.device("cpu"))
    assert resolve_device("cpu") == resolve_device(torch.device("cpu")) == torch.device("cpu")
    assert natgrad.TRPO("CartPole-v1", device="cpu", **SMALL).device == torch.device("cpu")


@pytest.mark.parametrize("device", ["gpu", "cuda:x", "tpu", "meta", "", None, 3.5])
def test_an_unknown_device_is_one_line_naming_the_known_ones(device):
    with pytest.raises(NatgradError, match=r"^invalid device=.*: use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'$"):
        natgrad.PPO("CartPole-v1", device=device, **SMALL)


@no_cuda
@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_cuda_without_cuda_names_the_fix(device):
    with pytest.raises(NatgradError) as e:
        natgrad.TRPO("CartPole-v1", device=device, **SMALL)
    assert str(e.value) == f"device={device!r} but torch sees no CUDA device: use device='cpu' or device='auto'"


@no_cuda
def test_the_cli_refuses_a_device_before_making_a_run_directory(tmp_path, monkeypatch, capsys):
    err = one_line_error(monkeypatch, capsys, ["train", "--out", str(tmp_path / "run"), "--device", "cuda"])
    assert "--device cuda but torch sees no CUDA device: use --device cpu or --device auto" in err
    assert not (tmp_path / "run").exists()
    err = one_line_error(monkeypatch, capsys, ["eval", str(tmp_path), "--device", "gpu"])
    assert "invalid --device gpu" in err


@pytest.mark.parametrize("algo, env_id, options", [
    ("trpo", "Pendulum-v1", {}),
    ("ppo", "CartPole-v1", {"recurrent": "lstm", "seq_len": 16, "minibatches": 4}),
    ("vpg", "CartPole-v1", {"share_trunk": True}),
])
def test_device_cpu_trains_exactly_as_the_default_does_here(algo, env_id, options):
    cls = natgrad.ALGORITHMS[algo]
    default = rows(cls(env_id, **SMALL, **options))
    assert rows(cls(env_id, device="cpu", **SMALL, **options)) == default
    if not torch.cuda.is_available():
        assert rows(cls(env_id, device="auto", **SMALL, **options)) == default


@pytest.mark.parametrize("algo, options", [("trpo", {}),
                                           ("ppo", {"recurrent": "gru", "seq_len": 16, "minibatches": 4})])
def test_networks_optimizers_and_batches_live_on_the_models_device(algo, options):
    model = natgrad.ALGORITHMS[algo]("CartPole-v1", device="cpu", **SMALL, **options)
    model.learn(64)
    batch = model._sampler.collect(8)
    assert off_device(model, batch) == []
    model.close()


def test_a_checkpoint_loads_onto_the_device_asked_for(tmp_path):
    model = natgrad.PPO("Pendulum-v1", device="cpu", **SMALL).learn(64)
    path = model.save(tmp_path / "model.pt")
    obs = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    loaded = natgrad.load(path, device="cpu")
    assert loaded.device == torch.device("cpu")
    np.testing.assert_array_equal(loaded.predict(obs, deterministic=True), model.predict(obs, deterministic=True))
    if not torch.cuda.is_available():
        with pytest.raises(NatgradError, match="^device='cuda' but torch sees no CUDA device"):
            natgrad.load(path, device="cuda")
    loaded.learn(64)  # and trains on from there
    model.close()
    loaded.close()


# ---- on a GPU ------------------------------------------------------------------------------------------------------
@cuda
@pytest.mark.parametrize("algo, env_id, options", [
    ("trpo", "Pendulum-v1", {}),
    ("ppo", "CartPole-v1", {"recurrent": "lstm", "seq_len": 16, "minibatches": 4}),
    ("npg", "CartPole-v1", {"share_trunk": True}),
    ("vpg", "CartPole-v1", {}),
    ("ppo-kl", "Pendulum-v1", {}),
])
def test_cuda_trains_with_every_tensor_on_the_gpu(algo, env_id, options):
    model = natgrad.ALGORITHMS[algo](env_id, device="cuda", **SMALL, **options)
    assert model.device.type == "cuda"
    model.learn(128)
    assert off_device(model, model._sampler.collect(8)) == []
    model.close()


@cuda
def test_a_gpu_model_predicts_on_the_cpu_and_exports(tmp_path):
    pytest.importorskip("onnx")
    model = natgrad.TRPO("Pendulum-v1", device="cuda", **SMALL).learn(128)
    obs = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    on_gpu = model.predict(obs, deterministic=True)
    loaded = natgrad.load(model.save(tmp_path / "model.pt"), device="cpu")
    assert loaded.device == torch.device("cpu") and all(t.device.type == "cpu" for _, t in tensors(loaded.state()))
    np.testing.assert_allclose(loaded.predict(obs, deterministic=True), on_gpu, rtol=1e-5, atol=1e-6)
    from natgrad.tools.export import export_onnx

    assert export_onnx(model, tmp_path / "actor.onnx").exists()
    assert model.device.type == "cuda"  # exporting left the model where it was
    model.close()


def test_bench_and_tune_pass_the_device_and_compile_on_and_resume_on_another(tmp_path, monkeypatch):
    from natgrad.tools import tune
    from natgrad.tools.bench import GridSettings, RunSpec, check_settings, train_command

    spec = RunSpec("trpo", "CartPole-v1", 0)
    command = train_command(spec, tmp_path / "run", GridSettings(10, device="cpu", compile=True))
    assert command[command.index("--device") + 1] == "cpu" and "--compile" in command
    assert "--compile" in train_command(spec, tmp_path / "run", GridSettings(10, compile=True), resume=tmp_path)
    assert "--compile" not in train_command(spec, tmp_path / "run", GridSettings(10))
    check_settings(tmp_path / "grid", GridSettings(10, device="cpu"))
    check_settings(tmp_path / "grid", GridSettings(10, device="auto", compile=True))  # the same grid, run otherwise
    study = tune.TuneSettings("trpo", "CartPole-v1", 256, 2, 128, 2, 0, {}, {}, device="cpu")
    tune.check_settings(tmp_path, study)
    tune.check_settings(tmp_path, tune.TuneSettings(**{**vars(study), "device": "auto", "compile": True}))
    seen = {}
    monkeypatch.setattr(tune, "train_run", lambda *args, **kwargs: (seen.update(kwargs), None))
    tune.run_trial(tune.TuneSettings(**{**vars(study), "compile": True}), {}, tmp_path / "trial", lambda *_: False)
    assert (seen["device"], seen["compile"]) == ("cpu", True)


def test_the_tune_and_bench_commands_take_compile(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from natgrad.cli import app
    from natgrad.tools import bench, tune

    settings = []
    monkeypatch.setattr(bench, "run_grid", lambda out, specs, grid, *args, **kwargs: settings.append(grid) or [])
    monkeypatch.setattr(tune, "tune", lambda study, *args, **kwargs: settings.append(study))
    common = ["--steps", "64", "--out", str(tmp_path), "--device", "cpu", "--compile"]
    for args in (["bench", "--algos", "trpo", "--envs", "CartPole-v1", "--seeds", "0", *common],
                 ["tune", "--trials", "1", *common]):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
    assert [(s.device, s.compile) for s in settings] == [("cpu", True), ("cpu", True)]
