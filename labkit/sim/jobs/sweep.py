"""Sweep jobs: hyperparameter tuning as the service runs it, with local trials.

``submit`` runs in the notebook: it checks the sweep as the service would (the SDK itself
checks little of it client side), resolves what the trials need (code, environment,
compute, inputs), stores the parent job and starts its worker. ``run`` runs in that worker
(``labkit.sim.jobs.job_runner``): it samples hyperparameter values, submits one child command
job per trial (``<sweep>_<n>``, as the service names them), follows the primary metric each
trial logs to MLflow, applies the early-termination policy, enforces the limits and, at the
end, records the best trial on the parent.

The sampling and the policies are pure functions (no processes, no store), so their rules
can be checked on crafted numbers: ``draw``/``make_sampler`` for sampling, ``should_stop``
and ``replay`` for early termination. Where the SDK docstrings, the service's documentation
and the service disagree, the comments say which one this follows.
"""
from __future__ import annotations

import itertools
import json
import math
import random
import re
import statistics
import time
import warnings
import zlib
from pathlib import Path
from typing import Any, Iterable, Optional

from azure.ai.ml.constants._common import SWEEP_JOB_BEST_CHILD_RUN_ID_PROPERTY_NAME
from azure.ai.ml.entities import Job
from azure.ai.ml.entities._job.to_rest_functions import to_rest_job_object

from labkit.sim.jobs import job_state
from labkit.sim.core.base import bad_request
from labkit.sim.core.storage import DEFAULT_DATASTORE

POLL_S = 0.5
# The service's defaults when limits are left out (the CLI sweep YAML reference): at most 1000
# trials, all of them at once, and a week for the whole sweep.
DEFAULT_MAX_TOTAL_TRIALS = 1000
DEFAULT_TIMEOUT_S = 7 * 24 * 3600
SEARCH_SPACE_REFERENCE = re.compile(r"\$\{\{\s*search_space\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
IO_REFERENCE = re.compile(r"\$\{\{\s*(inputs|outputs)\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
OPTIONAL_BLOCK = re.compile(r"\$\[\[(.*?)\]\]", re.DOTALL)
# Bayesian sampling works on these distributions only (service docs: choice, uniform, quniform).
BAYESIAN_KINDS = ("choice", "uniform", "quniform")
ALL_KINDS = ("choice", "randint", "uniform", "quniform", "loguniform", "qloguniform",
             "normal", "qnormal", "lognormal", "qlognormal")


# =============================================================================================
# Search spaces: the REST form the SDK produces, ``{"lr": ["uniform", [0.01, 0.1]], ...}``
# =============================================================================================
def rest_search_space(search_space: dict) -> dict[str, list]:
    """SDK distributions (``Choice(...)``, ``Uniform(...)``) or their REST lists -> REST lists."""
    return {name: (dist if isinstance(dist, list) else dist._to_rest_object()) for name, dist in search_space.items()}


def _kind(dist: list) -> str:
    return str(dist[0]).lower()


def _quantize(value: float, q) -> Any:
    # The documented form: round(x / q) * q (Python rounds halves to even).
    return round(value / q) * q


def draw(dist: list, u: float, rng: Optional[random.Random] = None) -> Any:
    """The value of one REST distribution at the point ``u`` in [0, 1) of its cumulative
    distribution (random sampling draws ``u`` uniformly, Sobol sampling from its sequence).

    Formulas as documented for sweep jobs: ``randint(upper)`` is an integer in [0, upper);
    ``quniform`` is round(uniform(min, max) / q) * q; for the log forms, min and max bound the
    *logarithm* (the SDK docstrings: "minimum value of the log of the distribution"), so
    ``loguniform(min, max)`` is exp(uniform(min, max)) and ``lognormal(mu, sigma)`` is
    exp(normal(mu, sigma)); the q forms round those to multiples of q.
    """
    kind, args = _kind(dist), dist[1]
    u = min(max(u, 1e-12), 1 - 1e-12)
    if kind == "choice":
        values = args[0]
        value = values[min(int(u * len(values)), len(values) - 1)]
        return value
    if kind == "randint":
        return min(int(u * args[0]), int(args[0]) - 1)
    if kind in ("uniform", "quniform", "loguniform", "qloguniform"):
        low, high = args[0], args[1]
        x = low + u * (high - low)
        if kind.endswith("loguniform"):
            x = math.exp(x)
        return _quantize(x, args[2]) if kind.startswith("q") else x
    if kind in ("normal", "qnormal", "lognormal", "qlognormal"):
        mu, sigma = args[0], args[1]
        x = statistics.NormalDist(mu, sigma).inv_cdf(u)
        if kind.endswith("lognormal"):
            x = math.exp(x)
        return _quantize(x, args[2]) if kind.startswith("q") else x
    raise bad_request(f"Unknown search space distribution '{dist[0]}'.")


def _expand(name: str, value: Any, rng: random.Random) -> dict[str, Any]:
    """A chosen value; a chosen dict (a nested search space) gives its own parameters."""
    if not isinstance(value, dict):
        return {name: value}
    out: dict[str, Any] = {}
    for key, inner in value.items():
        if isinstance(inner, list) and inner and _kind(inner) in ALL_KINDS:
            out.update(_expand(key, draw(inner, rng.random(), rng), rng))
        else:
            out[key] = inner
    return out


class Sampler:
    """Proposes the hyperparameters of the next trial; ``tell`` gives it a trial's result."""

    def propose(self) -> Optional[dict[str, Any]]:
        raise NotImplementedError

    def tell(self, params: dict[str, Any], value: Optional[float]) -> None:
        """``value`` is the trial's final primary metric (None: the trial failed or logged none)."""


class RandomSampler(Sampler):
    """Independent draws; ``rule="sobol"`` takes the points of a scrambled Sobol sequence."""

    def __init__(self, space: dict[str, list], seed: Optional[int] = None, rule: Optional[str] = None):
        self.space = space
        self.rng = random.Random(seed)
        self.sobol = None
        if (rule or "random").lower() == "sobol":
            from scipy.stats import qmc

            self.sobol = qmc.Sobol(d=len(space), scramble=True, seed=seed)

    def propose(self) -> dict[str, Any]:
        if self.sobol is not None:
            with warnings.catch_warnings():  # Sobol prefers powers of two; trials come one at a time
                warnings.simplefilter("ignore")
                point = self.sobol.random(1)[0]
        else:
            point = [self.rng.random() for _ in self.space]
        params: dict[str, Any] = {}
        for (name, dist), u in zip(self.space.items(), point):
            params.update(_expand(name, draw(dist, float(u)), self.rng))
        return params


class GridSampler(Sampler):
    """Every combination of the choices, the first parameter varying slowest."""

    def __init__(self, space: dict[str, list]):
        names = list(space)
        self._combinations = iter(itertools.product(*(space[n][1][0] for n in names)))
        self._names = names
        self._rng = random.Random(0)

    def propose(self) -> Optional[dict[str, Any]]:
        combination = next(self._combinations, None)
        if combination is None:
            return None
        params: dict[str, Any] = {}
        for name, value in zip(self._names, combination):
            params.update(_expand(name, value, self._rng))
        return params


class BayesianSampler(Sampler):
    """Bayesian optimization with Optuna's TPE sampler, told each finished trial's metric."""

    def __init__(self, space: dict[str, list], goal: str, seed: Optional[int] = None):
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        from optuna.distributions import CategoricalDistribution, FloatDistribution

        self.space = space
        self.distributions = {}
        for name, dist in space.items():
            kind = _kind(dist)
            if kind == "choice":
                self.distributions[name] = CategoricalDistribution([_hashable(v) for v in dist[1][0]])
            else:  # uniform, quniform: TPE models the continuous value; quniform is then rounded
                self.distributions[name] = FloatDistribution(float(dist[1][0]), float(dist[1][1]))
        direction = "maximize" if goal.lower() == "maximize" else "minimize"
        self.study = optuna.create_study(direction=direction, sampler=optuna.samplers.TPESampler(seed=seed))
        self._pending: dict[str, Any] = {}

    def propose(self) -> dict[str, Any]:
        trial = self.study.ask(self.distributions)
        params = {}
        for name, dist in self.space.items():
            value = trial.params[name]
            if _kind(dist) == "choice":
                value = _unhashable(value)
            elif _kind(dist) == "quniform":
                value = _quantize(value, dist[1][2])
            params[name] = value
        self._pending[json.dumps(params, sort_keys=True, default=str)] = trial
        return params

    def tell(self, params: dict[str, Any], value: Optional[float]) -> None:
        import optuna

        trial = self._pending.pop(json.dumps(params, sort_keys=True, default=str), None)
        if trial is None:
            return
        if value is None or not math.isfinite(value):
            self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
        else:
            self.study.tell(trial, value)


def _hashable(value):
    return json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else value


def _unhashable(value):
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def make_sampler(algorithm: dict, space: dict[str, list], goal: str) -> Sampler:
    """The sampler for a REST ``samplingAlgorithm`` (``{"samplingAlgorithmType": "Random", ...}``)."""
    kind = (algorithm.get("samplingAlgorithmType") or "Random").lower()
    if kind == "grid":
        return GridSampler(space)
    if kind == "bayesian":
        # The service's Bayesian sampling takes no seed; a fixed one (from the search space)
        # makes a lab's Bayesian sweep repeat its proposals run after run.
        seed = zlib.crc32(json.dumps(space, sort_keys=True, default=str).encode())
        return BayesianSampler(space, goal, seed=seed)
    return RandomSampler(space, seed=algorithm.get("seed"), rule=algorithm.get("rule"))


# =============================================================================================
# Early termination: the documented rules, on per-trial sequences of the primary metric
# =============================================================================================
# A trial's sequence is its primary metric in the order logged: the k-th value logged is
# interval k ("each time the training script logs the primary metric counts as one interval").
def _better(a: float, b: float, goal: str) -> bool:
    return a > b if goal.lower() == "maximize" else a < b


def _best(values: Iterable[float], goal: str) -> float:
    return max(values) if goal.lower() == "maximize" else min(values)


def _policy_type(policy) -> str:
    return type(policy).__name__


def is_evaluation_point(policy, n: int) -> bool:
    """Whether the policy is applied at interval ``n`` (1-based): every multiple of
    evaluation_interval that is at least delay_evaluation.

    The SDK's BanditPolicy and TruncationSelectionPolicy default evaluation_interval to 0;
    the service's documentation describes 1 as "every interval", and 0 has no multiples to
    apply at, so an interval below 1 counts as 1 here.
    """
    interval = max(int(policy.evaluation_interval or 0), 1)
    return n >= 1 and n % interval == 0 and n >= int(policy.delay_evaluation or 0)


def should_stop(policy, goal: str, trial: str, n: int, histories: dict[str, list[float]]) -> bool:
    """Whether ``policy`` stops ``trial`` at interval ``n``, given every trial's sequence so far
    (running, finished and stopped ones). Only values up to interval ``n`` of any trial count:
    a trial at interval n is compared with the others at interval n.

    - BanditPolicy: stop when the trial's best value up to n is outside the slack of the best
      value any trial reached up to n. Maximize: slack_factor stops it when best_n / (1 + f)
      is above it (the docs' example: factor 0.1 stops runs below 91% of the best);
      slack_amount when best_n - a is above it. Minimize mirrors this: above best_n * (1 + f),
      above best_n + a.
    - MedianStoppingPolicy: stop when the trial's best value up to n is worse than the median
      of the other trials' running averages over intervals 1..n (trials that reached n).
    - TruncationSelectionPolicy: stop when the trial's value at interval n is among the lowest
      truncation_percentage percent of the values at interval n of all trials that reached it
      (the trial is in that group when fewer than that percentage of them are worse than it).
    """
    mine = histories.get(trial) or []
    if len(mine) < n or not is_evaluation_point(policy, n):
        return False
    reached = {name: values[:n] for name, values in histories.items() if len(values) >= n}
    kind = _policy_type(policy)
    if kind == "BanditPolicy":
        best = _best((_best(values, goal) for values in reached.values()), goal)
        own = _best(mine[:n], goal)
        factor, amount = float(policy.slack_factor or 0), float(policy.slack_amount or 0)
        if goal.lower() == "maximize":
            limit = best / (1 + factor) if factor else best - amount
            return own < limit
        limit = best * (1 + factor) if factor else best + amount
        return own > limit
    if kind == "MedianStoppingPolicy":
        others = [statistics.fmean(values) for name, values in reached.items() if name != trial]
        if not others:
            return False
        return _better(statistics.median(others), _best(mine[:n], goal), goal)
    if kind == "TruncationSelectionPolicy":
        if len(reached) < 2:
            return False
        own = mine[n - 1]
        worse = sum(1 for name, values in reached.items() if name != trial and _better(own, values[n - 1], goal))
        return worse < len(reached) * float(policy.truncation_percentage or 0) / 100
    return False


def first_stop(policy, goal: str, trial: str, histories: dict[str, list[float]]) -> int:
    """The first interval at which the policy stops a running trial, given what every trial
    has logged so far (0: none). A trial is judged at each evaluation point it reached, against
    the others' values up to the same interval, as soon as they have logged them: trials run
    at different speeds, and a trial ahead of the others is judged when they catch up."""
    for n in range(1, len(histories.get(trial) or []) + 1):
        if should_stop(policy, goal, trial, n, histories):
            return n
    return 0


def replay(policy, goal: str, table: dict[str, list[float]]) -> dict[str, int]:
    """Run the policy over complete sequences as if the trials ran in step: at each interval,
    every trial still running that reached it is judged against what all trials had logged
    up to then (a stopped trial logs nothing after it is stopped). Returns {trial: interval}
    for the trials stopped."""
    stopped: dict[str, int] = {}
    longest = max((len(v) for v in table.values()), default=0)
    for n in range(1, longest + 1):
        visible = {name: values[:stopped.get(name, n)] for name, values in table.items()}
        judged = [name for name, values in table.items() if name not in stopped and len(values) >= n]
        decisions = [name for name in judged if should_stop(policy, goal, name, n, visible)]
        for name in decisions:
            stopped[name] = n
    return stopped


# =============================================================================================
# Submission (the notebook's process)
# =============================================================================================
def _check(sweep) -> None:
    """What the service refuses in a sweep job (HTTP 400)."""
    from azure.ai.ml.sweep import BayesianSamplingAlgorithm, GridSamplingAlgorithm

    if sweep.trial is None:
        raise bad_request("A sweep job needs a trial (the command each trial runs).")
    if not sweep.search_space:
        raise bad_request("A sweep job needs a search space with at least one hyperparameter.")
    objective = sweep.objective
    if objective is None or not objective.primary_metric or not objective.goal:
        raise bad_request("A sweep job needs an objective: primary_metric and goal (maximize or minimize).")
    if str(objective.goal).lower() not in ("maximize", "minimize"):
        raise bad_request(f"Objective goal '{objective.goal}' is not one of: maximize, minimize.")
    algorithm = sweep.sampling_algorithm
    if algorithm is None:
        raise bad_request("A sweep job needs a sampling algorithm: random, grid or bayesian.")
    name = algorithm.lower() if isinstance(algorithm, str) else type(algorithm).__name__.lower()
    space = rest_search_space(sweep.search_space)
    for key, dist in space.items():
        if _kind(dist) not in ALL_KINDS:
            raise bad_request(f"Hyperparameter '{key}': unknown distribution '{dist[0]}'.")
    if name.startswith("grid") or isinstance(algorithm, GridSamplingAlgorithm):
        wrong = [k for k, d in space.items() if _kind(d) != "choice"]
        if wrong:
            raise bad_request(f"Grid sampling supports only choice hyperparameters; {', '.join(wrong)} "
                              "use other distributions. Use random or Bayesian sampling for them.")
    if name.startswith("bayesian") or isinstance(algorithm, BayesianSamplingAlgorithm):
        if sweep.early_termination is not None:
            raise bad_request("Bayesian sampling does not support early termination policies; "
                              "leave early_termination out or use random sampling.")
        wrong = [k for k, d in space.items() if _kind(d) not in BAYESIAN_KINDS]
        if wrong:
            raise bad_request(f"Bayesian sampling supports only choice, uniform and quniform hyperparameters; "
                              f"{', '.join(wrong)} use other distributions.")
    rule = getattr(algorithm, "rule", None)
    if rule and str(rule).lower() not in ("random", "sobol"):
        raise bad_request(f"Random sampling rule '{rule}' is not one of: random, sobol.")
    limits = sweep.limits
    total = getattr(limits, "max_total_trials", None)
    concurrent = getattr(limits, "max_concurrent_trials", None)
    for label, value in (("max_total_trials", total), ("max_concurrent_trials", concurrent)):
        if value is not None and (not isinstance(value, int) or value < 1):
            raise bad_request(f"limits.{label} must be a positive integer, not {value!r}.")
    if total is not None and concurrent is not None and concurrent > total:
        raise bad_request(f"limits.max_concurrent_trials ({concurrent}) cannot exceed "
                          f"limits.max_total_trials ({total}).")
    policy = sweep.early_termination
    if policy is not None and type(policy).__name__ == "TruncationSelectionPolicy":
        pct = policy.truncation_percentage or 0
        if not 1 <= pct <= 99:
            raise bad_request(f"truncation_percentage must be between 1 and 99, not {pct}.")
    if policy is not None and type(policy).__name__ == "BanditPolicy":
        if not (policy.slack_factor or policy.slack_amount):
            raise bad_request("A bandit policy needs slack_factor or slack_amount.")


def _check_references(command: str, space: dict, inputs: dict, outputs: dict) -> None:
    """The trial's command may name only the sweep's search space, inputs and outputs."""
    required = OPTIONAL_BLOCK.sub("", command)
    for key in SEARCH_SPACE_REFERENCE.findall(command):
        if key not in space:
            raise bad_request(f"The trial command refers to search_space.{key}, which the search space does "
                              "not define.")
    for kind, key in IO_REFERENCE.findall(required):
        if key not in (inputs if kind == "inputs" else outputs):
            raise bad_request(f"The trial command refers to {kind}.{key}, which the sweep job does not define.")


def submit(job_operations, sweep_job) -> Job:
    """Check, serialize and store a sweep job, and start its worker."""
    import os

    _check(sweep_job)
    base_path = Path(getattr(sweep_job, "base_path", None) or os.getcwd())
    rest = to_rest_job_object(sweep_job)  # the SDK's own checks (input references, key names)
    payload = rest.as_dict()
    props = payload["properties"]
    name = payload["name"]
    trial = props["trial"]
    _check_references(trial.get("command", ""), props.get("searchSpace") or {}, props.get("inputs") or {},
                      props.get("outputs") or {})
    props["experimentName"] = props.get("experimentName") or job_state.DEFAULT_EXPERIMENT
    props["computeId"] = job_operations._resolve_compute(props.get("computeId"), sweep_job)
    trial["environmentId"] = job_operations._resolve_environment(sweep_job.trial.environment)
    if trial.get("codeId"):
        trial["codeId"] = job_operations._resolve_code(trial["codeId"], base_path)
    for input_name, value in (props.get("inputs") or {}).items():
        job_operations._resolve_input(input_name, value, base_path)
    outputs = props.get("outputs") or {}
    for output_name, value in outputs.items():
        if not value.get("uri"):
            value["uri"] = job_operations._workspace.long_uri(DEFAULT_DATASTORE, f"azureml/{name}/{output_name}/")
    props["outputs"] = outputs
    props["services"] = job_operations._services(name)
    props.setdefault("properties", {})
    props["properties"].update({
        # What the service records on a sweep's parent run.
        "runTemplate": "HyperDrive",
        "azureml.runsource": "hyperdrive",
        "primary_metric_config": json.dumps({"name": props["objective"]["primaryMetric"],
                                             "goal": props["objective"]["goal"].lower()}),
    })
    return job_operations._store_and_start(type(rest), payload)


# =============================================================================================
# Running (the parent's worker process)
# =============================================================================================
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
