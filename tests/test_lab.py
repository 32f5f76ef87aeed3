"""The lab's claims, asserted on the numbers its experiments compute (smaller instances where a run is long)."""

from __future__ import annotations

import functools
import re

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from natgrad.cli import app, main
from natgrad.lab import EXPERIMENTS, cg, curves, fisher, invariance, quadratic, run_lab, softmax

DELTA = 0.01  # natgrad's default max_kl, which NPG and TRPO run with in the curves experiment
SMALL = {  # every experiment at a size that renders in a second or two
    "softmax": {"gaps": (0.0, 4.0, 8.0)},
    "quadratic": {"budgets": (1.0, 1e-3, 1e-6)},
    "fisher": {"samples": 200},
    "invariance": {"steps": 4},
    "curves": {"seeds": 1, "steps": 2048},
    "cg": {"iters": (1, 3), "dampings": (0.1,), "pretrain_steps": 0, "overrides": {"n_envs": 2, "n_steps": 128}},
}


def test_softmax_euclidean_step_kl_spans_decades_while_natural_step_kl_stays_at_delta():
    r = softmax.sensitivity(np.linspace(0, 8, 17), budgets=(1e-5,))
    assert np.all(np.diff(r.euclid_kl) < 0)  # the more saturated π, the less a unit step moves it
    assert r.euclid_kl.max() / r.euclid_kl.min() > 100
    assert np.all(np.abs(r.natural_kl[0] / 1e-5 - 1) < 0.10)  # KL of the natural step within 10 % of δ
    assert np.all(np.diff(r.natural_norm[0]) > 0)  # ... by ever longer steps in θ
    assert r.natural_norm[0, -1] / r.natural_norm[0, 0] > 10
    assert np.all(r.reward_alignment > 1 - 1e-9)  # F⁺∇J = r − r̄: the natural direction does not depend on π


def test_quadratic_form_relative_error_shrinks_like_the_step():
    for c in quadratic.quadratic_curves(np.logspace(0, -6, 13)):
        err = c.relative_error
        small = c.quadratic <= 1e-4 * (1 + 1e-9)
        assert np.all(np.diff(err[small]) < 0), (c.kind, c.direction, err)
        assert err[-1] < 1e-2 and err[-1] < err[0] / 100, (c.kind, c.direction, err)
        slope = np.polyfit(np.log(c.quadratic[small]), np.log(err[small]), 1)[0]
        assert 0.4 < slope < 0.6, (c.kind, c.direction, slope)  # error ∝ ‖Δ‖ ∝ (½ΔᵀFΔ)^½
        np.testing.assert_allclose(c.quadratic, np.logspace(0, -6, 13), rtol=1e-6)  # steps hit their targets


@pytest.mark.parametrize("kind", fisher.KINDS)
def test_fisher_three_constructions_agree_and_are_positive_semidefinite(kind):
    r = fisher.fisher_three_ways(kind, samples=2000)
    torch.testing.assert_close(r.fvp, r.hessian, rtol=0, atol=1e-12)
    torch.testing.assert_close(r.hessian, r.hessian.T, rtol=0, atol=1e-12)
    deviation = (r.score - r.hessian).abs()
    assert deviation.max() > 1e-6  # a real Monte-Carlo estimate, not the same computation
    assert bool((deviation <= 5 * r.score_stderr + 1e-12).all()), r.max_sigma  # within sampling error
    eig = r.eigenvalues
    assert eig[0] >= -1e-12 * eig[-1] and eig[-1] > 0
    # singular: 6 states × 2 free logits, or 6 states × 2 means + 2 log σ
    assert fisher.rank(eig) == {"categorical": 12, "gaussian": 14}[kind]


def test_natural_trajectories_agree_across_parameterizations_standard_ones_do_not():
    r = invariance.invariance(steps=15)
    linear, nonlinear = r.gaps("natural")
    assert linear < 1e-10  # logits = Aθ: exactly the same policies, step by step
    assert min(r.gaps("standard")) > 0.1  # the standard gradient's path depends on the coordinates
    small_linear, small_nonlinear = r.gaps("natural_small")
    assert small_linear < 1e-10
    assert nonlinear < 0.05 and small_nonlinear < nonlinear / 5  # sinh: first order, the gap shrinks with δ
    rewards = torch.tensor(invariance.REWARDS, dtype=torch.float64)
    for path in r.natural + r.standard:
        j = [float(invariance.expected_reward(torch.from_numpy(np.log(p)), rewards)) for p in path]
        assert np.all(np.diff(j) > 0)


def test_natural_methods_keep_the_update_kl_near_delta():
    runs = curves.learning_curves(seeds=1, steps=10 * 2048)
    for run in runs:
        assert len(run.kl) == 10 and np.all(np.isfinite(run.returns[-1:]))
        if run.algo == "trpo":
            assert np.all(run.kl <= DELTA * (1 + 1e-6))
        if run.algo == "npg":
            assert np.all(run.kl <= 1.1 * DELTA)
        if run.algo in ("npg", "trpo"):
            assert np.median(run.kl) > 0.5 * DELTA


@pytest.mark.slow
def test_standard_gradient_kl_swings_by_orders_of_magnitude_full_run():
    """The full curves experiment, as `natgrad lab curves` runs it (about a minute)."""
    runs = curves.learning_curves()
    by_algo = {a: [r for r in runs if r.algo == a] for a in curves.ALGOS}
    vpg = np.concatenate([r.kl for r in by_algo["vpg"]])
    assert vpg.max() / vpg.min() > 100 and curves.kl_spread(by_algo["vpg"]) > 10
    for algo in ("npg", "trpo"):
        assert curves.kl_spread(by_algo[algo]) < 3
        assert np.median(np.concatenate([r.kl for r in by_algo[algo]])) > 0.5 * DELTA
    assert all(r.returns[-1] > 475 for r in by_algo["trpo"] + by_algo["npg"])


def test_cg_lowers_its_quadratic_model_every_iteration_and_the_residual_by_decades():
    model, batch = cg.trpo_batch("CartPole-v1", 0, 0, {"n_envs": 4, "n_steps": 256})
    traces = {d: cg.cg_trace(model.actor, batch, d, 25) for d in (0.01, 0.1, 1.0)}
    for d, t in traces.items():
        # φ(x_k) = ½xᵀ(F + λI)x − gᵀx falls at every iteration, up to float32 round-off
        assert np.all(np.diff(t.model) <= cg.ROUND_OFF * abs(t.model[-1])), (d, t.model)
        # the residual need not fall at every iteration, but falls by orders of magnitude
        assert t.residual[24] < 1e-3 * t.residual[0] and t.residual[9] < t.residual[0], (d, t.residual)
    assert traces[1.0].residual[4] < traces[0.1].residual[4] < traces[0.01].residual[4]  # more damping, faster
    steps = {s.cg_iters: s for s in cg.accepted_steps(model, batch, (1, 10, 25), (0.1,))}
    model.close()
    assert all(s.step.accepted and s.step.kl <= DELTA * (1 + 1e-6) for s in steps.values())
    assert cg.cosine(steps[10].delta, steps[25].delta) > 0.999  # converged by 10 iterations
    assert cg.cosine(steps[1].delta, steps[25].delta) < 0.99  # one iteration is the plain gradient's direction
    assert steps[10].step.improvement > steps[1].step.improvement


def test_every_experiment_renders_into_one_report(tmp_path, monkeypatch):
    for name, section in list(EXPERIMENTS.items()):
        monkeypatch.setitem(EXPERIMENTS, name, functools.partial(section, **SMALL[name]))
    out = tmp_path / "lab"
    lines = []
    report = run_lab(list(EXPERIMENTS), out, command="natgrad lab all --out lab", echo=lines.append)
    text = report.read_text()
    assert text.startswith("# natgrad lab\n\nProduced by `natgrad lab all --out lab` in ")
    assert len(re.findall(r"^## \d\. ", text, re.M)) == len(EXPERIMENTS) == 6
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert sorted(images) == sorted(p.name for p in out.glob("*.png")) and len(images) == 6
    assert all((out / image).stat().st_size > 10_000 for image in images)
    assert sum("|---|" in line for line in lines) == 6 and lines[-1].endswith("report.md")


def test_cli_runs_one_experiment_and_never_overwrites(tmp_path, capsys, monkeypatch):
    out = tmp_path / "lab"
    result = CliRunner().invoke(app, ["lab", "softmax", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "| logit gap |" in result.output and sorted(p.name for p in out.iterdir()) == ["report.md", "softmax.png"]
    assert f"`natgrad lab softmax --out {out}`" in (out / "report.md").read_text()
    before = (out / "report.md").read_text()
    monkeypatch.setattr("sys.argv", ["natgrad", "lab", "softmax", "--out", str(out)])
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "already exists and is not empty" in err and err.count("\n") == 1
    assert (out / "report.md").read_text() == before
