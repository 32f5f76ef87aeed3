"""``natgrad tune``: hyperparameter search with Optuna over natgrad training runs.

Each trial is a ``natgrad train`` run (``OUT/trials/<number>/``, a complete run directory) of the algorithm on
the env from the env's preset with the trial's values on top. Optuna's TPE sampler proposes the values from a
search space (a default one per algorithm, narrowed or replaced by ``--space FILE``); every periodic evaluation
is reported as an intermediate value, and a median pruner stops a trial whose evaluation falls below the median
of the earlier trials' at the same step; a finished trial's value is its final deterministic evaluation.

The study lives in ``OUT/study.db`` (SQLite): run the same command again and it goes on to ``--trials`` finished
trials; a trial that was running when the process died is marked failed and its values are tried again first.
``--jobs N`` runs N trials at once as processes sharing that storage; with ``--ray-address`` the driver asks
Optuna for trials (ask-and-tell) and runs each as a Ray task on whichever node has room, its evaluations reported
back through a small Ray actor on the driver's node, its run directory shipped back to ``OUT/trials/``. At the
end the best trial's configuration is written as a preset file, ``OUT/best.toml``, that
``natgrad train --preset-file`` takes, and Optuna's parameter-importance plot as ``OUT/importance.png``.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from natgrad.algos import algorithm
from natgrad.errors import NatgradError, one_line
from natgrad.presets import preset, tomllib
from natgrad.runs.directories import check_writable
from natgrad.runs.training import Interrupted, train_run

STUDY, SETTINGS, STORAGE, LOCK, BEST, IMPORTANCE = "natgrad", "tune.json", "study.db", ".lock", "best.toml", \
    "importance.png"
TRIALS = "trials"
MAX_FAILURES = 3  # trials failing one after another before the study stops: the space or the env is wrong

_GAMMA = {"choices": [0.98, 0.99, 0.995, 0.999]}
_LAMBDA = {"choices": [0.9, 0.95, 0.97, 0.99]}
_N_STEPS = {"choices": [256, 512, 1024, 2048]}
_HIDDEN = {"choices": ["64,64", "128,128", "256,256"]}
_NATURAL = {"max_kl": {"low": 0.001, "high": 0.1, "log": True}, "damping": {"low": 0.01, "high": 1.0, "log": True},
            "vf_lr": {"low": 1e-4, "high": 3e-3, "log": True}, "gae_lambda": _LAMBDA, "gamma": _GAMMA,
            "n_steps": _N_STEPS, "hidden": _HIDDEN}
_PROXIMAL = {"lr": {"low": 1e-5, "high": 1e-3, "log": True}, "epochs": {"choices": [3, 5, 10, 20]},
             "minibatches": {"choices": [4, 8, 16, 32]}, "gae_lambda": _LAMBDA, "gamma": _GAMMA, "n_steps": _N_STEPS,
             "hidden": _HIDDEN}
DEFAULT_SPACES: dict[str, dict[str, Any]] = {  # per algorithm: option -> {low, high[, log]} | {choices} | value
    "trpo": _NATURAL,
    "npg": _NATURAL,
    "vpg": {"pi_lr": {"low": 1e-4, "high": 1e-2, "log": True}, "vf_lr": {"low": 1e-4, "high": 3e-3, "log": True},
            "gae_lambda": _LAMBDA, "gamma": _GAMMA, "n_steps": _N_STEPS, "hidden": _HIDDEN},
    "ppo": {**_PROXIMAL, "clip_range": {"choices": [0.1, 0.2, 0.3]},
            "ent_coef": {"low": 1e-8, "high": 1e-2, "log": True}},
    "ppo-kl": {**_PROXIMAL, "kl_target": {"low": 0.003, "high": 0.03, "log": True}},
    "trpl": {**_PROXIMAL, "mean_bound": {"low": 0.005, "high": 0.1, "log": True},
             "cov_bound": {"low": 1e-4, "high": 1e-2, "log": True}},
}


@dataclass(frozen=True)
class TuneSettings:
    """What a study is; its ``OUT/tune.json``. Running it again must give the same (``trials`` may grow)."""

    algo: str
    """The algorithm's CLI name."""
    env_id: str
    """The env every trial trains on."""
    steps: int
    """Env steps per trial."""
    trials: int
    """Finished (complete or pruned) trials to reach."""
    eval_every: int
    """Env steps between the evaluations reported to the pruner."""
    eval_episodes: int
    """Episodes per evaluation."""
    seed: int
    """Every trial trains from this seed (trials differ only in their values)."""
    overrides: dict[str, Any]
    """``--set``, on top of the preset, under the searched values."""
    space: dict[str, Any]
    """Option → ``{low, high[, log]}``, ``{choices}`` or a fixed value."""
    device: str = "auto"
    """Where every trial trains (``--device``): not part of what the study is, so a study may go on on another."""
    compile: bool = False
    """Whether every trial compiles its update (``--compile``): like ``device``, not part of what the study is."""

    def __post_init__(self) -> None:
        cls = algorithm(self.algo)
        if self.trials < 1 or self.steps < 1 or not 1 <= self.eval_every <= self.steps or self.eval_episodes < 1:
            raise NatgradError(f"a study needs --trials >= 1, --steps >= 1, --eval-every in [1, --steps] and "
                               f"--eval-episodes >= 1; got {self.trials}, {self.steps}, {self.eval_every}, "
                               f"{self.eval_episodes}")
        config = cls.config_cls().replace(**preset(self.algo, self.env_id))
        config.replace(**self.overrides)  # an option the algorithm does not take: refused before any trial

    def fixed(self) -> dict[str, Any]:
        """Every trial's options besides the searched ones: --set, then the space's fixed values."""
        return {**self.overrides, **{k: v for k, v in self.space.items() if not isinstance(v, dict)}}


def read_space(path: str | Path | None, algo: str) -> dict[str, Any]:
    """The search space: the algorithm's default with a TOML or JSON file's entries on top (or, where the file
    says ``replace = true``, the file's alone). An entry is ``{low, high[, log]}`` (int when both are ints),
    ``{choices = [...]}`` or a plain value (fixed, not searched)."""
    space = dict(DEFAULT_SPACES.get(algo, {}))
    if path is not None:
        path = Path(path)
        try:
            text = path.read_bytes()
            given = json.loads(text) if path.suffix == ".json" else tomllib.loads(text.decode())
        except OSError as e:
            raise NatgradError(f"cannot read the search space {path} ({e.strerror}): check the path") from None
        except (ValueError, tomllib.TOMLDecodeError) as e:
            raise NatgradError(f"{path} is not valid {'JSON' if path.suffix == '.json' else 'TOML'} ({one_line(e)})"
                               ) from None
        replace = given.pop("replace", False)
        space = {**({} if replace else space), **given}
    check_space(space, algo)
    return space


def check_space(space: dict[str, Any], algo: str) -> None:
    """Refuse in one line an entry of an unknown shape, or an option or value the algorithm does not take."""
    config = algorithm(algo).config_cls()
    for name, entry in space.items():
        if isinstance(entry, dict):
            if not (set(entry) == {"choices"} and entry["choices"]) and not (
                    {"low", "high"} <= set(entry) <= {"low", "high", "log"} and entry["low"] < entry["high"]):
                raise NatgradError(f"search space entry {name} = {entry}: use {{low = A, high = B}} (A < B, "
                                   "optionally log = true), {choices = [...]} or a plain value (fixed)")
            samples = entry["choices"] if "choices" in entry else [entry["low"], entry["high"]]
        else:
            samples = [entry]
        for value in samples:
            try:
                config.replace(**{name: value})
            except NatgradError as e:
                raise NatgradError(f"search space entry {name}: {e}") from None


def distributions(space: dict[str, Any]) -> dict[str, Any]:
    """The Optuna distributions of the searched entries."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    out = {}
    for name, entry in space.items():
        if not isinstance(entry, dict):
            continue
        if "choices" in entry:
            out[name] = CategoricalDistribution(entry["choices"])
        elif isinstance(entry["low"], int) and isinstance(entry["high"], int):
            out[name] = IntDistribution(entry["low"], entry["high"], log=entry.get("log", False))
        else:
            out[name] = FloatDistribution(float(entry["low"]), float(entry["high"]), log=entry.get("log", False))
    return out


def run_trial(settings: TuneSettings, params: dict[str, Any], run_dir: Path,
              report: Callable[[float, int], bool]) -> float | None:
    """Train one trial into ``run_dir``: ``report(mean return, step)`` after each periodic evaluation says whether
    to prune (then training stops and the result is None); else the final evaluation's mean return."""
    pruned = []

    def after_eval(model: Any, results: dict[str, float]) -> bool:
        if report(results["eval/mean_return"], int(results["time/steps"])):
            pruned.append(model.num_timesteps)
            return False
        return True

    _, result = train_run(settings.algo, settings.env_id, settings.steps, settings.seed, out=run_dir,
                          overrides={**settings.fixed(), **params}, checkpoint_every=0,
                          eval_episodes=settings.eval_episodes, eval_every=settings.eval_every, progress=False,
                          device=settings.device, compile=settings.compile, echo=lambda _: None,
                          after_eval=after_eval)
    return None if pruned or result is None else result["mean"]


def trial_dir(out: Path, number: int) -> Path:
    """The run directory of trial ``number`` in the study directory ``out``."""
    return out / TRIALS / f"{number:04d}"


class Study:
    """The Optuna study of ``OUT`` (SQLite), with natgrad's sampler, pruner and bookkeeping."""

    def __init__(self, out: Path, settings: TuneSettings, sampler_offset: int = 0) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.out, self.settings = out, settings
        self.url = f"sqlite:///{(out / STORAGE).resolve()}"
        self.storage = optuna.storages.RDBStorage(self.url)
        self.study = optuna.create_study(study_name=STUDY, storage=self.storage, direction="maximize",
                                         pruner=pruner(settings), load_if_exists=True)
        self.study.sampler = optuna.samplers.TPESampler(seed=settings.seed + len(self.study.trials) + sampler_offset)
        self.distributions = distributions(settings.space)
        self.failures = 0  # trials failed one after another

    def counts(self) -> tuple[int, int]:
        """Trials finished (complete or pruned) and running."""
        from optuna.trial import TrialState

        states = [t.state for t in self.study.get_trials(deepcopy=False)]
        return (sum(s in (TrialState.COMPLETE, TrialState.PRUNED) for s in states),
                sum(s == TrialState.RUNNING for s in states))

    def retry_orphans(self, echo: Callable[[str], Any]) -> None:
        """Mark failed the trials left running by a process that died (call only while holding ``OUT``'s lock), and
        queue their values to be tried again; a trial cut off while its values were being drawn had not started."""
        from optuna.trial import TrialState

        study_id = self.storage.get_study_id_from_name(STUDY)
        for trial in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            self.storage.set_trial_state_values(
                self.storage.get_trial_id_from_study_id_trial_number(study_id, trial.number), TrialState.FAIL)
            if trial.params.keys() != self.distributions.keys():
                echo(f"trial {trial.number} was cut off before it started (its process died): marked failed")
                continue
            self.study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})
            echo(f"trial {trial.number} was cut off (its process died): marked failed, its values queued again")

    def wants_more(self) -> bool:
        """Whether the finished and running trials are still fewer than the study asks for."""
        finished, running = self.counts()
        return finished + running < self.settings.trials

    def tell(self, trial: Any, value: float | None, error: str | None, echo: Callable[[str], Any]) -> None:
        """Record a trial's outcome: its final evaluation, pruned (``value`` None) or failed (``error``); after
        ``MAX_FAILURES`` failures in a row, a NatgradError."""
        from optuna.trial import TrialState

        self.failures = self.failures + 1 if error is not None else 0
        if error is not None:
            self.study.tell(trial, state=TrialState.FAIL)
            echo(f"trial {trial.number} failed: {error}")
            if self.failures >= MAX_FAILURES:
                raise NatgradError(f"{self.failures} trials in a row failed (the last: {error}): check the search "
                                   "space")
        elif value is None:
            self.study.tell(trial, state=TrialState.PRUNED)
            echo(f"trial {trial.number} pruned at step {trial_last_step(self.study, trial.number)}")
        else:
            self.study.tell(trial, value)
            echo(f"trial {trial.number}: final evaluation {value:.2f} after {trained_steps(self.out, trial.number)} "
                 f"steps  {trial.params}")


def trained_steps(out: Path, number: int) -> int:
    """The env steps finished trial ``number`` of the study in ``out`` trained (whole updates: ``--steps`` or more)."""
    return json.loads((trial_dir(out, number) / "eval.json").read_text())["num_timesteps"]


def batch_sizes(settings: TuneSettings) -> tuple[int, int]:
    """The smallest and largest update, n_envs · n_steps env steps, of the study's trials: the preset under the
    fixed values, with the ends of the space's n_envs and n_steps entries."""
    config = algorithm(settings.algo).config_cls().replace(**{**preset(settings.algo, settings.env_id),
                                                             **settings.fixed()})

    def ends(name: str) -> list[int]:
        entry = settings.space.get(name)
        if not isinstance(entry, dict):
            return [getattr(config, name)]
        return [int(v) for v in (entry["choices"] if "choices" in entry else (entry["low"], entry["high"]))]

    sizes = [envs * steps for envs in ends("n_envs") for steps in ends("n_steps")]
    return min(sizes), max(sizes)


def steps_warning(settings: TuneSettings) -> str | None:
    """A warning where ``--steps`` is less than one update of some trial, which then trains more (whole updates)."""
    low, high = batch_sizes(settings)
    if settings.steps >= high:
        return None
    size = f"{low} to {high}" if low < high else f"{high}"
    return (f"warning: --steps {settings.steps} is less than one update (n_envs × n_steps = {size} env steps in this "
            f"study): a trial trains whole updates, so up to {high} steps; each trial's line says how many")


def trial_last_step(study: Any, number: int) -> int:
    """The env step of trial ``number``'s last reported evaluation (0 before any)."""
    steps = study.trials[number].intermediate_values
    return max(steps) if steps else 0


def pruner(settings: TuneSettings) -> Any:
    """The median pruner: after 5 finished trials, and past the first quarter of a trial's steps."""
    import optuna

    return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=settings.steps // 4)


def work(out: Path, settings: TuneSettings, echo: Callable[[str], Any], sampler_offset: int = 0) -> None:
    """Run trials in this process until the study has ``settings.trials`` finished or running ones."""
    study = Study(out, settings, sampler_offset)
    while study.wants_more():
        trial = study.study.ask(study.distributions)

        def report(value: float, step: int) -> bool:
            trial.report(value, step)
            return trial.should_prune()

        try:
            value, error = run_trial(settings, trial.params, trial_dir(out, trial.number), report), None
        except NatgradError as e:
            value, error = None, str(e)
        study.tell(trial, value, error, echo)


Runner = Callable[["Study", Callable[[str], Any]], None]  # runs a study's trials until it has enough


def local(jobs: int = 1) -> Runner:
    """Trials in this process and ``jobs - 1`` helper processes (``python -m natgrad.tools.tune OUT k``) at once."""
    if jobs < 1:
        raise NatgradError(f"--jobs must be >= 1, got {jobs}")

    def run(study: Study, echo: Callable[[str], Any]) -> None:
        lock = (study.out / LOCK).open()  # the helpers hold OUT's lock too, as long as any of them runs
        helpers = [subprocess.Popen([sys.executable, "-m", "natgrad.tools.tune", str(study.out), str(k)],
                                    pass_fds=(lock.fileno(),)) for k in range(1, jobs)]
        try:
            work(study.out, study.settings, echo)
        finally:
            for process in helpers:
                process.wait()
            lock.close()

    return run


def tune(settings: TuneSettings, out: Path, run: Runner | None = None,
         echo: Callable[[str], Any] = print) -> list[Path]:
    """Run the study in ``out`` up to ``settings.trials`` finished trials (resuming it if it is there) with
    ``run`` (default: one trial at a time here; ``local(jobs)``, ``natgrad.tools.ray_tune.ray_runner``); write the best
    configuration as a preset file and the importance plot; return the files written."""
    check_writable(out, "choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    check_settings(out, settings)
    warning = steps_warning(settings)
    if warning:
        echo(warning)
    with exclusive(out):
        study = Study(out, settings)
        study.retry_orphans(echo)
        echo(f"{study.counts()[0]} of {settings.trials} trials already finished in {out}")
        (run or local())(study, echo)
        return write_results(Study(out, settings), echo)


def check_settings(out: Path, settings: TuneSettings) -> None:
    """Record the study's settings in ``OUT/tune.json``, or refuse a study of other settings there."""
    path = out / SETTINGS
    mine = json.loads(json.dumps(asdict(settings)))
    free = ("trials", "device", "compile")  # may change from one run of the study to the next
    if path.exists():
        theirs = json.loads(path.read_text())
        if {k: v for k, v in theirs.items() if k not in free} != {k: v for k, v in mine.items() if k not in free}:
            differ = sorted(k for k in mine if k not in free and theirs.get(k) != mine[k])
            raise NatgradError(f"{out} holds a study of other settings ({', '.join(differ)} differ): run it with its "
                               f"own settings ({path}) to resume it, or choose a new --out")
    path.write_text(json.dumps(mine, indent=2) + "\n")


class exclusive:
    """Holds ``OUT/.lock`` while the study runs: a second ``natgrad tune`` on the same directory is refused."""

    def __init__(self, out: Path) -> None:
        self.path = out / LOCK

    def __enter__(self) -> exclusive:
        import fcntl

        self.file = self.path.open("a")
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.file.close()
            raise NatgradError(f"another natgrad tune is running on {self.path.parent}: wait for it, or choose a new "
                               "--out") from None
        return self

    def __exit__(self, *exc: object) -> None:
        self.file.close()


def write_results(study: Study, echo: Callable[[str], Any]) -> list[Path]:
    """``OUT/best.toml`` (the best trial's full configuration as a preset) and ``OUT/importance.png``; these two are
    written anew at the end of every run of the study."""
    settings, out = study.settings, study.out
    try:
        best = study.study.best_trial
    except ValueError:
        raise NatgradError("no trial finished with a value (all pruned or failed): widen the search space or give "
                           "each trial more --steps") from None
    values = {**preset(settings.algo, settings.env_id), **settings.fixed(), **best.params}
    lines = [f"# natgrad tune: the best of {study.counts()[0]} finished trials of {settings.algo} on "
             f"{settings.env_id} (--steps {settings.steps}, seed {settings.seed}): trial {best.number}, final "
             f"evaluation {best.value:.2f} after {trained_steps(out, best.number)} steps",
             f"# natgrad train --algo {settings.algo} --env {settings.env_id} --preset-file {out / BEST}",
             f"[{json.dumps(settings.env_id)}]", *(f"{k} = {toml_value(v)}" for k, v in values.items())]
    written = [out / BEST]
    (out / BEST).write_text("\n".join(lines) + "\n")
    echo(f"best: trial {best.number}, final evaluation {best.value:.2f}, {best.params}")
    try:
        written.append(importance_plot(study.study, out / IMPORTANCE))
    except (ValueError, RuntimeError) as e:  # too few finished trials, or nothing varies
        echo(f"no importance plot: {one_line(e)}")
    for path in written:
        echo(f"wrote {path}")
    return written


def importance_plot(study: Any, path: Path) -> Path:
    """Optuna's hyperparameter-importance plot (matplotlib) of the finished trials."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        ax = optuna.visualization.matplotlib.plot_param_importances(study)
    fig = ax.figure
    fig.set_size_inches(8, 4.5)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def toml_value(value: Any) -> str:
    """``value`` as a TOML value: booleans, numbers, strings, arrays and inline tables."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            return {math.inf: "inf", -math.inf: "-inf"}.get(value, "nan")
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(map(toml_value, value)) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + " }"
    return json.dumps(str(value))


def helper(out: Path, index: int) -> None:
    """A ``--jobs`` helper process: trials of the study in ``out`` (its settings from tune.json) until enough;
    stopped by Ctrl-C or SIGTERM, it exits quietly with the shell's status (the driver says how to resume)."""
    import torch

    torch.set_num_threads(1)
    settings = TuneSettings(**json.loads((out / SETTINGS).read_text()))
    try:
        work(out, settings, lambda line: print(f"[job {index}] {line}", flush=True), sampler_offset=1000 * index)
    except Interrupted as e:
        raise SystemExit(e.status) from None


if __name__ == "__main__":
    helper(Path(sys.argv[1]), int(sys.argv[2]))
