"""Sweep early termination: the service's Bandit, median-stopping and truncation-selection rules.

Stands for the service's early-termination policies (``BanditPolicy``, ``MedianStoppingPolicy``,
``TruncationSelectionPolicy`` with ``evaluation_interval`` and ``delay_evaluation``), applied to
each trial's primary metric in the order it was logged. Pure functions on per-trial sequences:
``should_stop`` decides for one trial at one interval, ``first_stop`` and ``replay`` say when a
policy would have stopped each trial of a table, so the rules can be checked on crafted numbers.
The sweep's worker (``running``) applies them to the live trials.

May import: as ``labkit.sim.jobs`` (it needs nothing of the simulator).
"""
from __future__ import annotations

import statistics
from typing import Iterable


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
