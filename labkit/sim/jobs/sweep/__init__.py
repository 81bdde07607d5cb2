"""Sweep jobs: hyperparameter tuning as the service runs it, with local trials.

``submission`` runs in the notebook: it checks the sweep as the service would (the SDK itself
checks little of it client side), resolves what the trials need (code, environment, compute,
inputs), stores the parent job and starts its worker. ``running`` runs in that worker
(``labkit.sim.jobs.job_runner``): it samples hyperparameter values (``sampling``), submits one
child command job per trial (``<sweep>_<n>``, as the service names them), follows the primary
metric each trial logs to MLflow, applies the early-termination policy (``termination``),
enforces the limits and, at the end, records the best trial on the parent.

The sampling and the policies are pure functions (no processes, no store), so their rules can
be checked on crafted numbers: ``draw``/``make_sampler`` for sampling, ``should_stop`` and
``replay`` for early termination. Where the SDK docstrings, the service's documentation and the
service disagree, the comments say which one this follows. The package keeps the public names
of these modules under ``labkit.sim.jobs.sweep`` as well.

May import: as ``labkit.sim.jobs``.
"""
from labkit.sim.jobs.sweep.running import (
    DEFAULT_MAX_TOTAL_TRIALS,
    DEFAULT_TIMEOUT_S,
    POLL_S,
    best_trial,
    metric_history,
    run,
)
from labkit.sim.jobs.sweep.sampling import (
    ALL_KINDS,
    SEARCH_SPACE_REFERENCE,
    BayesianSampler,
    GridSampler,
    RandomSampler,
    Sampler,
    draw,
    make_sampler,
    rest_search_space,
)
from labkit.sim.jobs.sweep.submission import BAYESIAN_KINDS, IO_REFERENCE, OPTIONAL_BLOCK, submit
from labkit.sim.jobs.sweep.termination import first_stop, is_evaluation_point, replay, should_stop

__all__ = [
    "ALL_KINDS", "BAYESIAN_KINDS", "DEFAULT_MAX_TOTAL_TRIALS", "DEFAULT_TIMEOUT_S", "IO_REFERENCE", "OPTIONAL_BLOCK",
    "POLL_S", "SEARCH_SPACE_REFERENCE", "BayesianSampler", "GridSampler", "RandomSampler", "Sampler", "best_trial",
    "draw", "first_stop", "is_evaluation_point", "make_sampler", "metric_history", "replay", "rest_search_space",
    "run", "should_stop", "submit",
]
