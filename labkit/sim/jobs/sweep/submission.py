"""Submitting a sweep job: what the service checks and resolves before the sweep starts.

``submit`` runs in the notebook's process, as ``ml_client.jobs.create_or_update`` of a
``SweepJob`` (``jobs.operations`` names it by module path). It refuses with a 400 what the
service refuses and the SDK lets through (no objective or sampling algorithm, grid sampling
over anything but ``Choice``, Bayesian sampling with an early-termination policy or over
distributions it does not take, limits out of range, a trial command naming a hyperparameter,
input or output the sweep does not define), resolves what the trials need (code, environment,
compute, inputs, outputs), records what the service records on a sweep's parent run and
starts its worker, which runs ``running.run``.

May import: as ``labkit.sim.jobs``.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from azure.ai.ml.entities import Job
from azure.ai.ml.entities._job.to_rest_functions import to_rest_job_object

from labkit.sim.core.base import bad_request
from labkit.sim.jobs import job_state
from labkit.sim.jobs.sweep.sampling import ALL_KINDS, SEARCH_SPACE_REFERENCE, _kind, rest_search_space

IO_REFERENCE = re.compile(r"\$\{\{\s*(inputs|outputs)\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
OPTIONAL_BLOCK = re.compile(r"\$\[\[(.*?)\]\]", re.DOTALL)
# Bayesian sampling works on these distributions only (service docs: choice, uniform, quniform).
BAYESIAN_KINDS = ("choice", "uniform", "quniform")


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
    job_operations._resolve_inputs_and_outputs(props, name, base_path)
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
