"""Sweep sampling: the search space and the values each trial gets, as the service samples them.

Stands for the service's sampling algorithms over a sweep's search space: random sampling
(seeded, with the ``random`` or ``sobol`` rule), grid sampling (every combination of ``Choice``
values) and Bayesian sampling (here Optuna's TPE, told each finished trial's primary metric),
over every kind of distribution the SDK has (``Choice``, ``Randint``, ``Uniform``, ``QUniform``,
``LogUniform``, ``QLogUniform``, ``Normal``, ``QNormal``, ``LogNormal``, ``QLogNormal``) in the REST
form the SDK produces, ``{"lr": ["uniform", [0.01, 0.1]], ...}``. Pure functions: no process, no
store, so the rules can be checked on crafted numbers (``draw``, ``make_sampler``).

May import: as ``labkit.sim.jobs``.
"""
from __future__ import annotations

import itertools
import json
import math
import random
import re
import statistics
import warnings
import zlib
from typing import Any, Optional

from labkit.sim.core.base import bad_request

# A trial command's reference to a hyperparameter: ``${{search_space.lr}}``.
SEARCH_SPACE_REFERENCE = re.compile(r"\$\{\{\s*search_space\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
# Every distribution of the SDK's search spaces, by its REST name.
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
