"""SIGTERM stops a run as Ctrl-C does; an unwritable destination is one line before any work; a failed run says so."""

import json
import shutil
import signal
import sys
import threading
from pathlib import Path

import pytest
from test_cli import assert_resumes, interrupted_train, one_line_error
from typer.testing import CliRunner

from natgrad.cli import app
from natgrad.errors import NatgradError
from natgrad.runs.directories import FAILED, check_writable
from natgrad.runs.training import Interrupted, sigterm_interrupts, train_run

runner = CliRunner()
TINY = ["--set", "n_steps=64", "--eval-episodes", "1", "--no-progress"]
UNWRITABLE = Path("/sys/natgrad-test")  # even root cannot make a file in /sys


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A finished 64-step CartPole run."""
    run_dir, _ = train_run("trpo", "CartPole-v1", 64, out=tmp_path_factory.mktemp("trained") / "run",
                           overrides={"n_steps": 64}, eval_episodes=1, progress=False, echo=lambda _: None)
    return run_dir


def test_sigterm_saves_a_checkpoint_prints_the_resume_command_and_exits_143(tmp_path):
    out = tmp_path / "run"
    status, stderr = interrupted_train(out, signal.SIGTERM, 1, "--checkpoint-every", "1e9", "--eval-episodes", "1")
    assert status == 143, stderr
    [checkpoint] = (out / "checkpoints").glob("step_*.pt")  # a run shorter than --checkpoint-every keeps one
    command = f"natgrad train --resume {out} --checkpoint-every 1000000000 --eval-every 0 --eval-episodes 1"
    assert stderr == f"terminated (SIGTERM): saved {checkpoint}; resume with: {command}\n"
    assert_resumes(command, checkpoint, tmp_path / "resumed", 1)


def test_the_sigterm_handler_is_there_only_while_training_and_only_in_the_main_thread():
    before = signal.getsignal(signal.SIGTERM)
    with sigterm_interrupts():
        assert signal.getsignal(signal.SIGTERM) is not before
    assert signal.getsignal(signal.SIGTERM) is before
    seen = []

    def worker() -> None:  # tune and bench workers call train_run off the main thread too
        with sigterm_interrupts():
            seen.append(signal.getsignal(signal.SIGTERM))

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert seen == [before]


@pytest.fixture
def a_file(tmp_path) -> Path:
    """A regular file: nothing can be made below it, by root either."""
    path = tmp_path / "notes.txt"
    path.write_text("mine")
    return path


@pytest.mark.parametrize("argv, shown, fix", [
    (["train", "--out", "{file}/run"], "{file}/run", "choose another --out"),
    (["train", "--runs-root", "{file}"], "{file}", "choose another --runs-root"),
    (["train", "--resume", "{run}", "--steps", "64", "--out", "{file}/r"], "{file}/r", "choose another --out"),
    (["plot", "{run}", "--out", "{file}/p.png"], "{file}/p.png", "choose another --out"),
    (["export", "{run}", "--onnx", "{file}/a.onnx"], "{file}/a.onnx", "choose another file"),
    (["eval", "{run}", "--video", "{file}"], "{file}", "choose another video directory"),
    (["tune", "--out", "{file}/t", "--steps", "64"], "{file}/t", "choose another --out"),
    (["bench", "--envs", "CartPole-v1", "--seeds", "0", "--steps", "64", "--out", "{file}/g"], "{file}/g",
     "choose another --out"),
])
def test_a_destination_below_a_file_is_one_line_before_any_work(monkeypatch, capsys, tmp_path, a_file, trained, argv,
                                                                  shown, fix):
    def no_work(*args, **kwargs):
        raise AssertionError("the work started before the destination was checked")

    for work in ("natgrad.algos.base.Algorithm.learn", "torch.onnx.export", "natgrad.tools.plot.figure",
                 "natgrad.tools.video.evaluate"):
        monkeypatch.setattr(work, no_work)
    argv = [a.format(file=a_file, run=trained) for a in argv]
    err = one_line_error(monkeypatch, capsys, argv)
    assert err == f"error: cannot write {shown.format(file=a_file)}: {a_file} is a file, not a directory; {fix}\n"
    assert list(tmp_path.iterdir()) == [a_file] and a_file.read_text() == "mine"  # nothing made, nothing lost


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/sys is Linux's")
def test_a_place_even_root_cannot_write_is_one_line(monkeypatch, capsys, trained):
    for argv, shown in [(["train", "--out", f"{UNWRITABLE}/run", *TINY], f"{UNWRITABLE}/run"),
                        (["plot", str(trained), "--out", f"{UNWRITABLE}/p.png"], f"{UNWRITABLE}/p.png")]:
        err = one_line_error(monkeypatch, capsys, argv)
        assert err.startswith(f"error: cannot write {shown}: /sys is not writable (") and \
            err.endswith("; choose another --out\n"), err
    with pytest.raises(NatgradError, match=r"cannot write /sys/natgrad-test/g: /sys is not writable \(.*\); fix it$"):
        check_writable(UNWRITABLE / "g", "fix it")


def test_a_run_that_fails_leaves_failed_json_and_plot_and_report_skip_it(monkeypatch, capsys, tmp_path, trained):
    grid = tmp_path / "grid" / "CartPole-v1" / "trpo"
    failed = grid / "s1"
    argv = ["train", "--env", "natgrad-test/NaNReward-v0", "--steps", "64", "--set", "n_steps=32", "--out",
            str(failed), "--no-progress"]
    error = "non-finite reward (nan) at step 2 of env index 0"
    assert error in one_line_error(monkeypatch, capsys, argv)
    record = json.loads((failed / FAILED).read_text())
    assert error in record["error"] and record["step"] == 0 and record["updates"] == 0
    assert "Traceback" in record["traceback"]
    note = f"skipped {failed} failed at step 0: {record['error']}\n"

    shutil.copytree(trained, grid / "s0")
    shutil.copytree(failed, tmp_path / "grid" / ".incomplete" / "set-aside" / "s1")  # a grid's old try: not named
    result = runner.invoke(app, ["plot", str(tmp_path / "grid"), "--out", str(tmp_path / "p.png")])
    assert result.exit_code == 0 and result.stderr == note and (tmp_path / "p.png").exists(), result.output
    err = one_line_error(monkeypatch, capsys, ["plot", str(failed), "--out", str(tmp_path / "q.png")])
    assert err == f"error: nothing to plot: {failed} failed at step 0: {record['error']}\n"

    result = runner.invoke(app, ["report", str(tmp_path / "grid")])
    assert result.exit_code == 0 and result.stderr == note, result.output
    assert [row["seeds"] for row in json.loads((tmp_path / "grid" / "summary.json").read_text())] == [[0]]
    err = one_line_error(monkeypatch, capsys, ["report", str(failed)])
    assert err == f"error: {failed} failed at step 0: {record['error']}; a failed run has no result to report\n"


def test_a_run_that_finishes_or_is_interrupted_leaves_no_failed_json(tmp_path, trained):
    assert not (trained / FAILED).exists()

    def ctrl_c(model, results):
        raise KeyboardInterrupt

    with pytest.raises(Interrupted, match="^interrupted: saved .*; resume with: natgrad train --resume") as stop:
        train_run("trpo", "CartPole-v1", 128, out=tmp_path / "run", overrides={"n_steps": 64}, eval_episodes=1,
                  eval_every=64, progress=False, echo=lambda _: None, after_eval=ctrl_c)
    assert stop.value.status == 130 and not (tmp_path / "run" / FAILED).exists()


def test_a_stopped_tune_says_how_to_resume_the_study_with_the_signals_exit_status(monkeypatch, tmp_path):
    def sigterm_in_training(*args, **kwargs):
        raise Interrupted("terminated (SIGTERM): saved ...; resume with: natgrad train --resume ...", 143)

    monkeypatch.setattr("natgrad.tools.tune.train_run", sigterm_in_training)
    result = runner.invoke(app, ["tune", "--out", str(tmp_path / "study"), "--steps", "64", "--trials", "1"])
    assert result.exit_code == 143, result.output
    assert result.stderr == ("natgrad tune was stopped: run the same command again to resume the study (the trial "
                             "that was cut off is run again)\n")
