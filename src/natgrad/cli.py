"""The ``natgrad`` command line: train, eval, presets, bench, tune, report, export, plot, lab and version.

Each command checks its options and calls the library function that does the work (in ``runs``, ``tools``,
``lab``, ``presets``).
"""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Optional

import typer

from natgrad.config import MAX_SEED, check_seed, check_steps, resolve_device
from natgrad.errors import NatgradError
from natgrad.lab import EXPERIMENTS, run_lab
from natgrad.presets import preset_file as preset_file_of
from natgrad.version import __version__

Device = Annotated[str, typer.Option(
    help="where the networks and the update run: auto (CUDA when torch sees a GPU, else the CPU), cpu, cuda, cuda:N "
         "or mps")]
"""The ``--device`` option of train, eval, tune and bench."""
Compile = Annotated[bool, typer.Option(
    "--compile", help="compile the update's forward passes and losses with torch.compile (CUDA graphs on CUDA); "
                      "pays on accelerators, falls back to eager with a warning where torch cannot")]
"""The ``--compile`` option of train, tune and bench."""

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode=None,
                  help="Policy optimization in policy space: TRPO, NPG, VPG, PPO-Clip and PPO-KL on Gymnasium envs.")


def parse_overrides(pairs: list[str]) -> dict[str, str]:
    """``["max_kl=0.02", "hidden=64,64"]`` → {"max_kl": "0.02", "hidden": "64,64"}."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise NatgradError(f"--set takes KEY=VALUE, got {pair!r}: e.g. --set max_kl=0.02")
        out[key.strip().replace("-", "_")] = value.strip()
    return out


@app.command()
def train(
    algo: Annotated[Optional[str], typer.Option(
        help="trpo | npg | vpg | ppo | ppo-kl | trpl; with --resume, the checkpoint's (another is refused)",
        show_default="trpo")] = None,
    env: Annotated[Optional[str], typer.Option(
        help="Gymnasium env id or module:factory, e.g. CartPole-v1 or Hopper-v5; with --resume, the env to go on "
             "training on instead of the one the checkpoint names (it must have the model's spaces)",
        show_default="CartPole-v1")] = None,
    steps: Annotated[Optional[float], typer.Option(
        help="env steps to train for, e.g. 1e6 (default 1e5); with --resume, that many MORE steps "
             "(default: up to the resumed run's own total)")] = None,
    seed: Annotated[Optional[int], typer.Option(
        help=f"an integer from 0 to {MAX_SEED}; with --resume, the checkpoint's (another is refused)",
        show_default="0")] = None,
    out: Annotated[Optional[Path], typer.Option(
        help="run directory (new or empty); default runs/<env>-<algo>-s<seed>-<time>")] = None,
    runs_root: Annotated[Path, typer.Option(help="where default run directories go")] = Path("runs"),
    set_: Annotated[list[str], typer.Option("--set", help="config override KEY=VALUE, repeatable")] = [],
    resume: Annotated[Optional[Path], typer.Option(
        help="continue from a run directory (its newest valid checkpoint) or a checkpoint file, into a new run "
             "directory: without --steps up to that run's own total, with --steps N for N more")] = None,
    trust_env: Annotated[bool, typer.Option(
        "--trust-env", help="with --resume: make the env the checkpoint names even where natgrad must import a "
                            "module it names (module:factory): only for files you trust")] = False,
    checkpoint_every: Annotated[float, typer.Option(help="env steps between checkpoints (0: final only)")] = 1e5,
    eval_episodes: Annotated[int, typer.Option(help="episodes of each deterministic evaluation")] = 10,
    eval_every: Annotated[float, typer.Option(
        help="env steps between evaluations written to evals.csv (0: only the final one)")] = 0,
    preset: Annotated[bool, typer.Option(
        help="start from the tuned preset for --env (see `natgrad presets`); --set goes on top")] = True,
    preset_file: Annotated[Optional[Path], typer.Option(
        help="start from the preset for --env in this TOML file instead (one table per env id, as natgrad tune's "
             "best.toml); --set goes on top")] = None,
    progress: Annotated[Optional[bool], typer.Option(
        help="live progress bar on stderr (default: where stderr is a terminal)")] = None,
    threads: Annotated[int, typer.Option(help="torch intra-op threads; 1 is fastest for small networks")] = 1,
    workers: Annotated[int, typer.Option(
        help="Ray rollout workers sharing the n_envs envs (1: sample in this process; needs natgrad[ray])")] = 1,
    ray_address: Annotated[Optional[str], typer.Option(
        help="Ray cluster for the workers: auto, HOST:PORT or local (default: this machine's, else a new one)")] = None,
    worker_cpus: Annotated[float, typer.Option(help="CPUs Ray reserves per rollout worker, e.g. 0.5")] = 1.0,
    device: Device = "auto",
    compile: Compile = False,
) -> None:
    """Train a policy and write a new run directory: config, metrics.csv, TensorBoard, checkpoints, eval."""
    from natgrad.rollouts.threads import check_threads
    from natgrad.rollouts.workers import Sampling
    from natgrad.runs.training import DEFAULT_ENV, train_run

    check_threads(threads, "--threads")
    resolve_device(device, "--device")
    sampling = Sampling(workers, ray_address, worker_cpus)
    if sampling.uses_ray:  # refuse a missing Ray or an unreachable cluster before making a run directory
        from natgrad.rollouts.ray_cluster import connect

        connect(ray_address)
    from natgrad.runs.training import Interrupted

    if preset_file is not None and (resume is not None or not preset):
        raise NatgradError("--preset-file starts a new run from that preset: leave out --resume and --no-preset")
    chosen = preset if preset_file is None else preset_file_of(preset_file, env or DEFAULT_ENV)
    try:
        _, result = train_run(
            algo=algo, env_id=env, steps=None if steps is None else _count(steps, "--steps"), seed=seed, out=out,
            runs_root=runs_root, overrides=parse_overrides(set_), resume=resume, trust_env=trust_env,
            checkpoint_every=_count(checkpoint_every, "--checkpoint-every"), eval_episodes=eval_episodes,
            eval_every=_count(eval_every, "--eval-every"), preset=chosen, progress=progress, argv=sys.argv,
            sampling=sampling, threads=threads, device=device, compile=compile, echo=typer.echo, warn=_warn,
        )
    except Interrupted as e:
        typer.echo(str(e), err=True)
        raise typer.Exit(e.status) from None
    if result is not None:
        typer.echo(f"final evaluation: {result['mean']:.2f} ± {result['std']:.2f} over {result['episodes']} episodes")


@app.command("eval")
def eval_(
    run: Annotated[Path, typer.Argument(
        help="run directory (its final model, else newest checkpoint) or a checkpoint file")],
    episodes: Annotated[int, typer.Option(help="episodes to run, >= 1")] = 10,
    seed: Annotated[int, typer.Option(help=f"seed of the first evaluation episode, 0 to {MAX_SEED}")] = 10_000,
    stochastic: Annotated[bool, typer.Option(help="sample actions instead of the mode")] = False,
    env: Annotated[Optional[str], typer.Option(
        help="the env to evaluate on, an id or module:factory (default: the one the model was trained on)")] = None,
    trust_env: Annotated[bool, typer.Option(
        "--trust-env", help="make the env the model file names even where natgrad must import a module it names "
                            "(module:factory): only for files you trust")] = False,
    video: Annotated[Optional[Path], typer.Option(
        help="record every episode as an MP4 file in this directory (needs natgrad[video])")] = None,
    device: Device = "auto",
) -> None:
    """Reload a trained model and print its mean ± std return (and record its episodes with --video)."""
    from natgrad.algos.loading import load
    from natgrad.runs.directories import latest_model
    from natgrad.runs.evaluation import evaluate, summary
    from natgrad.tools.video import record_video

    if episodes < 1:
        raise NatgradError(f"--episodes must be >= 1, got {episodes}: evaluate at least one episode")
    check_seed(seed)
    resolve_device(device, "--device")
    path = latest_model(run, _warn)
    model = load(path, env=env, trust_env=trust_env, device=device)
    if model.env is None:
        raise NatgradError(model.no_env_reason)
    if video is None:
        returns = evaluate(model, episodes, seed, deterministic=not stochastic)
    else:
        recording = record_video(model, video, episodes, seed, deterministic=not stochastic)
        returns = recording.returns
        typer.echo(f"wrote {len(recording.files)} video(s): {', '.join(map(str, recording.files))}")
    result = summary(returns)
    model.close()
    typer.echo(f"{model.name} on {model.env_id} ({path}, {model.num_timesteps} steps): "
               f"{result['mean']:.2f} ± {result['std']:.2f} over {episodes} episodes")


@app.command("presets")
def presets_(
    algo: Annotated[Optional[str], typer.Option(help="only this algorithm")] = None,
    env: Annotated[Optional[str], typer.Option(help="only this env id")] = None,
) -> None:
    """List the tuned presets: per algorithm and env, the values that differ from the defaults."""
    from natgrad.algos import ALGORITHMS, algorithm
    from natgrad.presets import presets

    names = [algorithm(algo).name] if algo is not None else list(ALGORITHMS)
    known = sorted({env_id for name in names for env_id in presets(name)})
    if env is not None and env not in known:
        raise NatgradError(f"no {algo + ' ' if algo else ''}preset for {env}: the envs with one are "
                           f"{', '.join(known)}; any other env trains from the defaults")
    for name in names:
        for env_id, values in presets(name).items():
            if env is None or env == env_id:
                settings = " ".join(f"{k}={json.dumps(v) if isinstance(v, dict) else v}" for k, v in values.items())
                typer.echo(f"{name:7s} {env_id:26s} {settings or '(defaults)'}")


@app.command()
def bench(
    algos: Annotated[str, typer.Option(help="comma-separated algorithms")] = "trpo,ppo",
    envs: Annotated[str, typer.Option(help="comma-separated env ids or module:factory names")] = "Hopper-v5",
    seeds: Annotated[str, typer.Option(help="a range 0-4 or a list 0,3,7")] = "0-4",
    steps: Annotated[float, typer.Option(help="env steps per run")] = 1e6,
    jobs: Annotated[Optional[int], typer.Option(
        help="runs at once, one process each (default 1; with --ray-address, every run is handed to Ray)")] = None,
    out: Annotated[Path, typer.Option(help="grid directory; run again to finish what is missing")] = Path("bench-out"),
    set_: Annotated[list[str], typer.Option("--set", help="override KEY=VALUE on every run's preset")] = [],
    eval_every: Annotated[float, typer.Option(help="env steps between evaluations")] = 25_000,
    eval_episodes: Annotated[int, typer.Option(help="episodes per evaluation")] = 10,
    ray_address: Annotated[Optional[str], typer.Option(
        help="run each training run as a task on this Ray cluster: auto or HOST:PORT (needs natgrad[ray])")] = None,
    run_cpus: Annotated[float, typer.Option(help="with --ray-address: CPUs Ray reserves per run")] = 1.0,
    device: Device = "auto",
    compile: Compile = False,
) -> None:
    """Run a grid of training runs as parallel processes or Ray tasks (resumable), then write its report."""
    from natgrad.rollouts.envs import check_env_name
    from natgrad.tools.bench import GridSettings, grid, parse_seeds, run_grid, run_local
    from natgrad.tools.report import write_report

    env_list = _split(envs)
    for env_id in env_list:
        check_env_name(env_id)
    overrides = tuple(sorted(parse_overrides(set_).items()))
    resolve_device(device, "--device")
    settings = GridSettings(_count(steps, "--steps"), overrides, _count(eval_every, "--eval-every"), eval_episodes,
                            device, compile)
    specs = grid(_split(algos), env_list, parse_seeds(seeds))
    runner, default_jobs = run_local, 1
    if ray_address is not None:
        from natgrad.rollouts.ray_cluster import connect

        connect(ray_address)
        from natgrad.tools.ray_grid import ray_runner

        runner, default_jobs = ray_runner(run_cpus), max(1, len(specs))  # Ray queues what does not fit yet
    failed = run_grid(out, specs, settings, default_jobs if jobs is None else jobs, runner, echo=typer.echo)
    for path in write_report(out, _warn):
        typer.echo(f"wrote {path}")
    if failed:
        raise NatgradError(f"{len(failed)} run(s) failed (their logs say why); run the same command again to retry")


@app.command()
def tune(
    algo: Annotated[str, typer.Option(help="trpo | npg | vpg | ppo | ppo-kl | trpl")] = "trpo",
    env: Annotated[str, typer.Option(help="Gymnasium env id")] = "CartPole-v1",
    trials: Annotated[int, typer.Option(help="finished (complete or pruned) trials to reach")] = 20,
    steps: Annotated[float, typer.Option(help="env steps per trial")] = 1e5,
    space: Annotated[Optional[Path], typer.Option(
        help="search space, TOML or JSON: entries go on top of the algorithm's default space (replace = true: "
             "instead of it); an entry is {low, high[, log]}, {choices = [...]} or a fixed value")] = None,
    out: Annotated[Optional[Path], typer.Option(
        help="the study's directory (study.db, trials/, best.toml); run again to resume; "
             "default tune-out/<env>-<algo>")] = None,
    jobs: Annotated[Optional[int], typer.Option(
        help="trials at once (default 1; with --ray-address, as many as the cluster's CPUs hold)")] = None,
    eval_every: Annotated[Optional[float], typer.Option(
        help="env steps between the evaluations reported to the median pruner (default: --steps / 10)")] = None,
    eval_episodes: Annotated[int, typer.Option(help="episodes per evaluation")] = 5,
    seed: Annotated[int, typer.Option(help="the seed every trial trains from; TPE's seed")] = 0,
    set_: Annotated[list[str], typer.Option("--set", help="override KEY=VALUE of every trial, repeatable")] = [],
    ray_address: Annotated[Optional[str], typer.Option(
        help="run each trial as a task on this Ray cluster: auto or HOST:PORT (needs natgrad[ray])")] = None,
    run_cpus: Annotated[float, typer.Option(help="with --ray-address: CPUs Ray reserves per trial")] = 1.0,
    device: Device = "auto",
    compile: Compile = False,
) -> None:
    """Search hyperparameters with Optuna (TPE, median pruning, resumable); write the best as a preset file."""
    import torch

    from natgrad.rollouts.envs import check_env_name
    from natgrad.runs.directories import safe_name
    from natgrad.runs.training import Interrupted
    from natgrad.tools.tune import TuneSettings, local, read_space
    from natgrad.tools.tune import tune as run_study

    try:
        import optuna  # noqa: F401
    except ImportError:
        raise NatgradError("natgrad tune needs Optuna: pip install 'natgrad[tune]'") from None
    torch.set_num_threads(1)
    check_env_name(env)
    check_seed(seed)
    resolve_device(device, "--device")
    total = _count(steps, "--steps")
    settings = TuneSettings(algo, env, total, trials, _count(eval_every or max(1, total // 10), "--eval-every"),
                            eval_episodes, seed, parse_overrides(set_), read_space(space, algo), device, compile)
    if ray_address is None:
        runner = local(jobs or 1)
    else:
        from natgrad.rollouts.ray_cluster import connect

        connect(ray_address)
        from natgrad.tools.ray_tune import ray_runner

        runner = ray_runner(ray_address, jobs, run_cpus)
    try:
        run_study(settings, out or Path("tune-out") / safe_name(f"{env}-{algo}"), runner, echo=typer.echo)
    except Interrupted as e:
        typer.echo("natgrad tune was stopped: run the same command again to resume the study (the trial that was "
                   "cut off is run again)", err=True)
        raise typer.Exit(e.status) from None


@app.command()
def report(root: Annotated[Path, typer.Argument(
        help="a grid directory written by natgrad bench (or one run directory: its row is printed, "
             "nothing written)")]) -> None:
    """Aggregate the finished runs of a grid: summary.md/.json and learning-curve plots."""
    from natgrad.runs.directories import CONFIG, failure
    from natgrad.tools.report import aggregate, is_grid, markdown, read_run, write_report

    if not root.is_dir():
        raise NatgradError(f"no grid directory at {root}: pass the --out of a natgrad bench run")
    if (root / CONFIG).is_file():  # one run, not a grid: show its row and write nothing into it
        if note := failure(root):
            raise NatgradError(f"{note}; a failed run has no result to report")
        if not (root / "eval.json").is_file():
            raise NatgradError(f"{root} is one run, not a grid, and has no final evaluation: "
                               f"evaluate it with `natgrad eval {root}`")
        typer.echo(markdown(aggregate([read_run(root)])), nl=False)
        typer.echo(f"({root} is one run, not a grid: nothing was written)")
        return
    if not is_grid(root):
        raise NatgradError(f"{root} holds no grid (no grid.json, no finished run): "
                           "pass the --out of a natgrad bench run")
    written = write_report(root, _warn)
    typer.echo(markdown(json.loads(written[0].read_text())), nl=False)
    for path in written:
        typer.echo(f"wrote {path}")


@app.command()
def export(
    run: Annotated[Path, typer.Argument(
        help="run directory (its final model, else newest checkpoint) or a checkpoint file")],
    onnx: Annotated[Path, typer.Option(help="the ONNX file to write (must not exist), e.g. actor.onnx")],
    mask: Annotated[Optional[bool], typer.Option(
        help="give the graph an action_mask input (default: where the model acts on masks)")] = None,
) -> None:
    """Write the deterministic policy as one ONNX graph: raw observation in, env-ready action out."""
    from natgrad.algos.loading import load
    from natgrad.runs.directories import latest_model
    from natgrad.tools.export import export_onnx, signature

    model = load(latest_model(run, _warn), predict_only=True)  # the policy only: no env is made
    path = export_onnx(model, onnx, mask)
    model.close()
    typer.echo(f"wrote {path}: {signature(path)}")


@app.command()
def plot(
    runs: Annotated[list[Path], typer.Argument(
        help="run directories (a resumed run is drawn joined with its parent), or directories holding runs "
             "(a bench grid, a tune study)")],
    out: Annotated[Path, typer.Option(help="the PNG file to write (must not exist)")] = Path("plot.png"),
    group: Annotated[Optional[str], typer.Option(
        help="draw the mean and a ± std band of the runs sharing one value of: algo, env, seed or config.<option> "
             "(e.g. config.max_kl); default: every run on its own")] = None,
    smooth: Annotated[int, typer.Option(help="episodes in the moving average of the training return")] = 20,
) -> None:
    """Plot the return against env steps (training and evaluations) and the trust-region diagnostics of runs."""
    from natgrad.tools.plot import plot_runs

    typer.echo(f"wrote {plot_runs(runs, out, group, smooth, _warn)}")


def _count(value: float, option: str) -> int:
    """A number of env steps given as a float (``1e6``); NaN and infinity are refused, more than 1e12 warned of."""
    count = check_steps(value, option)
    if count > 1e12:
        _warn(f"warning: {option} {value:g} is over 1e12 env steps, far more than a run takes: check the value")
    return count


def _warn(message: str) -> None:
    typer.echo(message, err=True)


def _split(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


lab = typer.Typer(no_args_is_help=True, help="The natural-gradient lab: experiments that show, and check, why trust "
                 "regions work. Each prints its table, saves its figure and writes report.md.")
app.add_typer(lab, name="lab")


def _lab_command(name: str, experiments: list[str]) -> Callable[..., None]:
    """The ``natgrad lab NAME`` command running ``experiments`` in order."""

    def command(
        out: Annotated[Optional[Path], typer.Option(
            help="directory for report.md and the PNGs (new or empty); default lab-out/<name>-<time>")] = None,
        threads: Annotated[int, typer.Option(help="torch intra-op threads")] = 1,
    ) -> None:
        import torch

        from natgrad.rollouts.threads import check_threads

        torch.set_num_threads(check_threads(threads, "--threads"))
        argv = ["natgrad", "lab", name, *(["--out", str(out)] if out else []),
                *(["--threads", str(threads)] if threads != 1 else [])]
        run_lab(experiments, out, command=shlex.join(argv), echo=typer.echo)

    return command


def _register_lab() -> None:
    lab.command("all", help="Run every experiment (a few minutes on 2 cores) into one report.")(
        _lab_command("all", list(EXPERIMENTS)))
    for name, section in EXPERIMENTS.items():
        lab.command(name, help=section.__doc__)(_lab_command(name, [name]))


_register_lab()

lm = typer.Typer(no_args_is_help=True, help="GRPO, GRPO-KL, TRPO and NPG on causal language models (natgrad[lm]).")
app.add_typer(lm, name="lm")


@lm.command("train")
def lm_train(
    task: Annotated[str, typer.Option(
        help="module:function returning (model, prompts, reward_funcs) or an object with them; naming it imports "
             "the module")],
    algo: Annotated[str, typer.Option(help="trpo | npg | grpo | grpo-kl")] = "trpo",
    samples: Annotated[float, typer.Option(help="completions to train on, e.g. 1e4")] = 1e3,
    set_: Annotated[list[str], typer.Option("--set", help="config override KEY=VALUE, repeatable")] = [],
    out: Annotated[Optional[Path], typer.Option(help="run directory (new or empty)")] = None,
    runs_root: Annotated[Path, typer.Option(help="where default run directories go")] = Path("runs"),
) -> None:
    """Train a language-model policy on a task and write a new run directory that natgrad plot reads."""
    from natgrad.lm import ALGORITHMS
    from natgrad.lm.training import train_lm

    if algo not in ALGORITHMS:
        raise NatgradError(f"unknown --algo {algo!r}: use one of {', '.join(ALGORITHMS)}")
    run_dir = train_lm(ALGORITHMS[algo], task, check_steps(samples, "--samples"), parse_overrides(set_), out,
                       runs_root)
    typer.echo(f"run written to {run_dir}")


@app.command()
def version() -> None:
    """Print natgrad's version."""
    typer.echo(__version__)


def main() -> None:
    """Entry point: a NatgradError becomes one line on stderr and exit status 2."""
    try:
        app()
    except NatgradError as e:
        typer.echo(f"error: {e}", err=True)
        raise SystemExit(2) from None
