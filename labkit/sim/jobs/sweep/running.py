"""Running a sweep job: the parent's worker, its trials, the limits and the best trial.

Stands for the service's sweep (HyperDrive) parent run once it starts. ``run`` runs in the
parent's worker (``labkit.sim.jobs.job_runner`` names it in ``JOB_TYPE_RUNNERS``): it samples
hyperparameter values (``sampling``), submits one child command job per trial
(``<sweep>_<n>``, as the service names them, each value also in ``AZUREML_SWEEP_<name>``), keeps
at most ``max_concurrent_trials`` running, follows the primary metric each trial logs to MLflow,
cancels the trials the early-termination policy stops (``termination``), enforces
``max_total_trials``, ``timeout`` and ``trial_timeout``, and at the end records the best trial on
the parent (``best_child_run_id``, what ``jobs.download`` of a sweep follows).

May import: as ``labkit.sim.jobs``.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Optional

from azure.ai.ml.constants._common import SWEEP_JOB_BEST_CHILD_RUN_ID_PROPERTY_NAME

from labkit.sim.jobs import job_state
from labkit.sim.jobs.sweep.sampling import SEARCH_SPACE_REFERENCE, make_sampler
from labkit.sim.jobs.sweep.termination import _better, first_stop

POLL_S = 0.5
# The service's defaults when limits are left out (the CLI sweep YAML reference): at most 1000
# trials, all of them at once, and a week for the whole sweep.
DEFAULT_MAX_TOTAL_TRIALS = 1000
DEFAULT_TIMEOUT_S = 7 * 24 * 3600


def _seconds(iso: Optional[str]) -> Optional[float]:
    if not iso:
        return None
    from azure.ai.ml._utils.utils import from_iso_duration_format

    return from_iso_duration_format(iso)


class _Log:
    def __init__(self, workspace, name):
        self.path = job_state.job_folder(workspace, name) / "user_logs" / "std_log.txt"
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def __call__(self, message: str) -> None:
        with open(self.path, "a") as handle:
            handle.write(f"[sweep] {message}\n")


def metric_history(client, run_id: str, metric: str) -> list[float]:
    """The values a trial logged for ``metric``, in the order logged."""
    from mlflow.exceptions import MlflowException

    try:
        history = client.get_metric_history(run_id, metric)
    except MlflowException:
        return []  # the trial's run does not exist yet
    return [m.value for m in sorted(history, key=lambda m: (m.step, m.timestamp))]


def _trial_job(sweep, parent: str, index: int, params: dict[str, Any]):
    """The child command job of one trial: the trial's command with the search space's values
    as literal inputs (``${{search_space.x}}`` becomes ``${{inputs.x}}``), and, as the SDK
    documents for sweeps, each value also in the environment as ``AZUREML_SWEEP_<name>``."""
    from azure.ai.ml import Output
    from azure.ai.ml.entities import CommandJob

    trial = sweep.trial
    command = SEARCH_SPACE_REFERENCE.sub(lambda m: "${{inputs.%s}}" % m.group(1), trial.command)
    inputs = dict(sweep.inputs or {})
    inputs.update({key: value for key, value in params.items()})
    # Each trial writes its own outputs (a fresh path per child), of the sweep's types.
    outputs = {key: Output(type=out.type, mode=out.mode) for key, out in (sweep.outputs or {}).items()
               if key != "default"}
    environment_variables = dict(trial.environment_variables or {})
    environment_variables.update({f"AZUREML_SWEEP_{key}": str(value) for key, value in params.items()})
    return CommandJob(
        name=f"{parent}_{index}", display_name=f"{parent}_{index}", experiment_name=sweep.experiment_name,
        command=command, code=trial.code, environment=trial.environment, inputs=inputs, outputs=outputs,
        environment_variables=environment_variables, compute=sweep.compute, resources=trial.resources,
        distribution=trial.distribution, tags={"hyperparameters": json.dumps(params, default=str)})


class _Trial:
    def __init__(self, name: str, params: dict[str, Any], started: float):
        self.name, self.params, self.started = name, params, started
        self.status = "NotStarted"
        self.history: list[float] = []
        self.told = False


def run(workspace, name: str) -> None:
    """Run a stored sweep job to its end (called by ``labkit.sim.jobs.job_runner`` in its worker)."""
    from mlflow.tracking import MlflowClient

    from labkit.sim.jobs.operations import JobOperations
    from labkit.sim.core.store import utc_now

    ops = JobOperations(workspace, root=workspace.folder.parent,
                        scope=(workspace.subscription_id, workspace.resource_group))
    log = _Log(workspace, name)
    if not job_state.set_status(workspace, name, "Running", only_from=("NotStarted", "Queued")):
        job_state.finish(workspace, name, "Canceled", "The job was canceled.")  # before it started
        return
    job_state.write_runtime(workspace, name, start_time=utc_now())
    props = workspace.store.get(job_state.KIND, name).payload["properties"]
    sweep = ops.get(name)
    goal = props["objective"]["goal"].lower()
    metric = props["objective"]["primaryMetric"]
    space = props["searchSpace"]
    limits = props.get("limits") or {}
    total = limits.get("maxTotalTrials") or DEFAULT_MAX_TOTAL_TRIALS
    concurrent = limits.get("maxConcurrentTrials") or total
    timeout = _seconds(limits.get("timeout")) or DEFAULT_TIMEOUT_S
    trial_timeout = _seconds(limits.get("trialTimeout"))
    policy = sweep.early_termination
    sampler = make_sampler(props.get("samplingAlgorithm") or {}, space, goal)
    client = MlflowClient(tracking_uri=workspace.mlflow_tracking_uri)
    log(f"{type(sampler).__name__} over {', '.join(space)}; primary metric {metric} ({goal}); "
        f"at most {total} trials, {concurrent} at once; policy: {type(policy).__name__ if policy else 'none'}")

    trials: list[_Trial] = []
    started = time.monotonic()
    exhausted = timed_out = canceled = False
    try:
        while True:
            if job_state.status_of(workspace, name) == "CancelRequested":
                canceled = True
                break
            now = time.monotonic()
            active = [t for t in trials if t.status not in job_state.TERMINAL_STATUSES]
            for t in active:
                job_state.refresh_if_worker_died(workspace, t.name)
                t.status = job_state.status_of(workspace, t.name)
                t.history = metric_history(client, t.name, metric)
            for t in trials:
                if t.status in job_state.TERMINAL_STATUSES and not t.told:
                    t.history = metric_history(client, t.name, metric)
                    value = t.history[-1] if t.history and t.status == "Completed" else None
                    sampler.tell(t.params, value)
                    t.told = True
                    log(f"{t.name} {t.status}" + (f": {metric} = {t.history[-1]}" if t.history else ""))
            running = [t for t in trials if t.status not in job_state.TERMINAL_STATUSES]
            if policy is not None:
                histories = {t.name: t.history for t in trials}
                for t in running:
                    n = first_stop(policy, goal, t.name, histories)
                    if n:
                        log(f"{t.name} stopped by {type(policy).__name__} at interval {n}")
                        _cancel(ops, t.name)
            if trial_timeout:
                for t in running:
                    if now - t.started > trial_timeout:
                        log(f"{t.name} exceeded the trial timeout ({trial_timeout:.0f} s)")
                        _cancel(ops, t.name)
            if not timed_out and now - started > timeout:
                timed_out = True
                log(f"the sweep exceeded its timeout ({timeout:.0f} s): canceling its trials")
                for t in running:
                    _cancel(ops, t.name)
            while not (exhausted or timed_out) and len(trials) < total and len(running) < concurrent:
                params = sampler.propose()
                if params is None:
                    exhausted = True
                    break
                child = _trial_job(sweep, name, len(trials), params)
                with job_state.cancel_deferred():  # a trial started is a trial the sweep knows (and cancels)
                    ops._submit_command(child, parent=name)
                    trial = _Trial(child.name, params, time.monotonic())
                    trials.append(trial)
                    running.append(trial)
                log(f"{child.name} started with {json.dumps(params, default=str)}")
            more = not (exhausted or timed_out) and len(trials) < total
            if not running and not more:
                break
            time.sleep(POLL_S)
    except BaseException:
        # Canceled (SIGTERM from begin_cancel raises job_state.Canceled) or an error:
        # no trial outlives its sweep.
        _cancel_running(ops, workspace, trials)
        _record_best(workspace, name, trials, client, metric, goal, log)
        _keep_log(workspace, name)
        raise
    if canceled:
        log("the sweep was canceled: canceling its running trials")
        _cancel_running(ops, workspace, trials)
    best = _record_best(workspace, name, trials, client, metric, goal, log)
    _keep_log(workspace, name)
    if canceled:
        job_state.finish(workspace, name, "Canceled", "The job was canceled.")
    elif timed_out:
        job_state.finish(workspace, name, "Canceled", "The sweep job exceeded its timeout.")
    elif best is None and trials and all(job_state.status_of(workspace, t.name) == "Failed" for t in trials):
        job_state.finish(workspace, name, "Failed", json.dumps({"code": "UserError", "message": (
            "Every trial of the sweep failed; see the trials' logs (jobs.list(parent_job_name=...)).")}, indent=4))
    else:
        job_state.finish(workspace, name, "Completed")


def _keep_log(workspace, name: str) -> None:
    """The sweep's log in its run's artifacts (``hd-artifacts`` when the sweep is downloaded)."""
    import shutil

    from labkit.sim.core.fs import local_path

    default = (workspace.store.get(job_state.KIND, name).payload["properties"].get("outputs") or {}).get("default")
    log = job_state.job_folder(workspace, name) / "user_logs" / "std_log.txt"
    if default and log.exists():
        target = Path(local_path(default["uri"])) / "user_logs"
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy2(log, target / "std_log.txt")


def _cancel_running(ops, workspace, trials) -> None:
    for t in trials:
        if job_state.status_of(workspace, t.name) not in job_state.TERMINAL_STATUSES:
            _cancel(ops, t.name)


def _cancel(ops, child: str) -> None:
    from azure.core.exceptions import HttpResponseError

    try:
        ops.begin_cancel(child)
    except HttpResponseError:
        pass  # it ended meanwhile


def best_trial(results: dict[str, list[float]], goal: str) -> Optional[tuple[str, float]]:
    """The trial whose final primary metric is best (ties: the earlier trial)."""
    best: Optional[tuple[str, float]] = None
    for trial, values in results.items():
        if values and (best is None or _better(values[-1], best[1], goal)):
            best = (trial, values[-1])
    return best


def _record_best(workspace, name, trials, client, metric, goal, log) -> Optional[tuple[str, float]]:
    """The parent's ``best_child_run_id`` and ``score`` properties (what ``jobs.download`` of a
    sweep follows), and the best value logged on the parent's MLflow run."""
    finals = {}
    for t in trials:
        status = job_state.status_of(workspace, t.name)
        if status == "Completed":
            finals[t.name] = metric_history(client, t.name, metric)
    best = best_trial(finals, goal)
    if best is None:  # no trial completed with the metric: the best of those stopped early
        best = best_trial({t.name: metric_history(client, t.name, metric) for t in trials}, goal)
    if best is None:
        log(f"no trial logged {metric}; no best trial")
        return None
    child, value = best
    job_state.update_properties(workspace, name, lambda p: p.setdefault("properties", {}).update({
        SWEEP_JOB_BEST_CHILD_RUN_ID_PROPERTY_NAME: child, "score": str(value), "best_metric_status": "Succeeded"}))
    client.log_metric(name, metric, value)
    client.set_tag(name, SWEEP_JOB_BEST_CHILD_RUN_ID_PROPERTY_NAME, child)
    log(f"best trial: {child} with {metric} = {value}")
    return best
