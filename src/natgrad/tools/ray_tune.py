"""``natgrad tune --ray-address``: the study's trials as Ray tasks, asked of and told to Optuna by the driver.

The driver keeps ``--jobs`` trials in flight (default: as many as the cluster's CPUs hold at ``--run-cpus`` each),
each a task that trains in a scratch directory of whichever node Ray places it on and ships its run directory back
to ``OUT/trials/<number>/``. A task reports every periodic evaluation to ``Reports``, an actor on the driver's node
(where the SQLite study is), which records it and answers whether the median pruner stops the trial.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ray
from ray.exceptions import RayError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from natgrad.errors import NatgradError
from natgrad.rollouts.ray_cluster import check_cpus, connect
from natgrad.tools.ray_grid import write_files
from natgrad.tools.tune import STUDY, TRIALS, Runner, Study, TuneSettings, pruner, run_trial, trial_dir


class Reports:
    """Records a trial's intermediate values in the study and answers whether to prune it (a Ray actor)."""

    def __init__(self, url: str, settings: TuneSettings) -> None:
        import optuna

        self.storage = optuna.storages.RDBStorage(url)
        self.study = optuna.load_study(study_name=STUDY, storage=self.storage, pruner=pruner(settings))
        self.study_id = self.storage.get_study_id_from_name(STUDY)

    def report(self, number: int, value: float, step: int) -> bool:
        """Record trial ``number``'s evaluation at ``step`` in the study; True when the pruner stops the trial."""
        import optuna

        trial_id = self.storage.get_trial_id_from_study_id_trial_number(self.study_id, number)
        trial = optuna.trial.Trial(self.study, trial_id)
        trial.report(value, step)
        return trial.should_prune()


def trial_task(settings: TuneSettings, number: int, params: dict[str, Any], reports: Any) -> tuple[
        float | None, str | None, dict[str, bytes]]:
    """One trial in a scratch directory of this node: its value (None if pruned), its error, and its files."""
    with tempfile.TemporaryDirectory(prefix="natgrad-trial-") as tmp:
        root = Path(tmp)
        run_dir = trial_dir(root, number)
        try:
            value = run_trial(settings, params, run_dir,
                              lambda mean, step: ray.get(reports.report.remote(number, mean, step)))
            error = None
        except NatgradError as e:
            value, error = None, str(e)
        files = {str(p.relative_to(root)): p.read_bytes() for p in (root / TRIALS).rglob("*") if p.is_file()}
        return value, error, files


def ray_runner(address: str | None, jobs: int | None = None, run_cpus: float = 1.0) -> Runner:
    """A ``natgrad.tools.tune`` runner: the trials as Ray tasks of ``run_cpus`` CPUs on the cluster at ``address``,
    ``jobs`` at a time (default: as many as its CPUs hold)."""
    if not run_cpus > 0:
        raise NatgradError(f"invalid --run-cpus {run_cpus!r}: must be > 0, e.g. 1")
    connect(address)
    check_cpus(1, run_cpus, "--run-cpus")
    in_parallel = jobs or max(1, int(ray.cluster_resources().get("CPU", 1) // run_cpus))

    def run(study: Study, echo: Callable[[str], Any]) -> None:
        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
        reports = ray.remote(Reports).options(num_cpus=0, scheduling_strategy=here).remote(study.url, study.settings)
        task = ray.remote(trial_task).options(num_cpus=run_cpus)
        in_flight: dict[Any, Any] = {}
        while in_flight or study.wants_more():
            while len(in_flight) < in_parallel and study.wants_more():
                trial = study.study.ask(study.distributions)
                in_flight[task.remote(study.settings, trial.number, trial.params, reports)] = trial
            (done,), _ = ray.wait(list(in_flight), num_returns=1)
            trial = in_flight.pop(done)
            try:
                value, error, files = ray.get(done)
            except RayError as e:
                value, error, files = None, f"its Ray task failed: {e}", {}
            write_files(study.out, files)
            study.tell(trial, value, error, echo)
        ray.kill(reports)

    return run
