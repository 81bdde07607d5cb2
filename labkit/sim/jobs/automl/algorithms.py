"""The service's AutoML algorithm names and the estimators they become here.

Stands for the service's list of training algorithms per task (``allowed_training_algorithms``,
``blocked_training_algorithms``, spelled as the SDK's ``ClassificationModels``,
``RegressionModels`` and ``ForecastingModels`` spell them) and what the search tries by default.
``ALGORITHMS`` maps each name to real scikit-learn, LightGBM and XGBoost estimators, searched by
FLAML's own learners where FLAML has one and by the small learners of ``_flaml_learners`` where
it does not. Names with no honest counterpart here (the forecasting-only statistical and deep
models: AutoArima, Prophet, Naive, SeasonalNaive, Average, SeasonalAverage,
ExponentialSmoothing, Arimax, TCNForecaster; ``NOT_SIMULATED``) are accepted at submission, as
the service accepts them, and skipped by the search with a line in the job's log.

May import: as ``labkit.sim.jobs`` (it needs nothing of the simulator).
"""
from __future__ import annotations

from typing import Optional

# The seed of every estimator, data split and search here, so a job repeats its results.
SEED = 42


# -- the service's algorithm names -> estimators ----------------------------------------------------------
def _flaml_learners():
    """Learners for FLAML where it has none of its own (their estimators are plain scikit-learn)."""
    from flaml import tune
    from flaml.automl.model import SKLearnEstimator

    class _NoJobs(SKLearnEstimator):
        def config2params(self, config: dict) -> dict:
            params = super().config2params(config)
            params.pop("n_jobs", None)
            return params

    class DecisionTreeLearner(_NoJobs):
        def __init__(self, task="binary", **config):
            super().__init__(task, **config)
            from sklearn import tree

            self.estimator_class = (tree.DecisionTreeClassifier if self._task.is_classification()
                                    else tree.DecisionTreeRegressor)

        @classmethod
        def search_space(cls, data_size, task, **params):
            return {"max_depth": {"domain": tune.randint(2, 24), "init_value": 6, "low_cost_init_value": 2},
                    "min_samples_leaf": {"domain": tune.lograndint(1, 128), "init_value": 4},
                    "max_features": {"domain": tune.uniform(0.2, 1.0), "init_value": 1.0}}

    class GradientBoostingLearner(_NoJobs):
        def __init__(self, task="binary", **config):
            super().__init__(task, **config)
            from sklearn import ensemble

            self.estimator_class = (ensemble.GradientBoostingClassifier if self._task.is_classification()
                                    else ensemble.GradientBoostingRegressor)

        @classmethod
        def search_space(cls, data_size, task, **params):
            return {"n_estimators": {"domain": tune.lograndint(10, 400), "init_value": 50, "low_cost_init_value": 10},
                    "learning_rate": {"domain": tune.loguniform(0.01, 0.5), "init_value": 0.1},
                    "max_depth": {"domain": tune.randint(2, 8), "init_value": 3},
                    "subsample": {"domain": tune.uniform(0.5, 1.0), "init_value": 1.0}}

        @classmethod
        def cost_relative2lgbm(cls):
            return 5

    class NaiveBayesLearner(_NoJobs):
        kind = "bernoulli"

        def __init__(self, task="binary", **config):
            super().__init__(task, **config)
            from sklearn import naive_bayes

            self.estimator_class = (naive_bayes.MultinomialNB if self.kind == "multinomial"
                                    else naive_bayes.BernoulliNB)

        @classmethod
        def search_space(cls, data_size, task, **params):
            return {"alpha": {"domain": tune.loguniform(1e-3, 10.0), "init_value": 1.0}}

    class MultinomialNaiveBayesLearner(NaiveBayesLearner):
        kind = "multinomial"

    class SVMLearner(_NoJobs):
        def __init__(self, task="binary", **config):
            super().__init__(task, **config)
            from sklearn.svm import SVC

            self.estimator_class = lambda **params: SVC(probability=True, random_state=SEED, **params)

        @classmethod
        def search_space(cls, data_size, task, **params):
            return {"C": {"domain": tune.loguniform(0.01, 100.0), "init_value": 1.0},
                    "gamma": {"domain": tune.loguniform(1e-3, 10.0), "init_value": 0.1}}

        @classmethod
        def cost_relative2lgbm(cls):
            return 20

    class LinearSVMLearner(_NoJobs):
        def __init__(self, task="binary", **config):
            super().__init__(task, **config)
            from sklearn.calibration import CalibratedClassifierCV
            from sklearn.svm import LinearSVC

            # LinearSVC has no probabilities; calibrating it gives the scores AUC needs.
            self.estimator_class = lambda **params: CalibratedClassifierCV(LinearSVC(**params), cv=3)

        @classmethod
        def search_space(cls, data_size, task, **params):
            return {"C": {"domain": tune.loguniform(0.01, 100.0), "init_value": 1.0}}

    return {"sim_decision_tree": DecisionTreeLearner, "sim_gradient_boosting": GradientBoostingLearner,
            "sim_bernoulli_nb": NaiveBayesLearner, "sim_multinomial_nb": MultinomialNaiveBayesLearner,
            "sim_svm": SVMLearner, "sim_linear_svm": LinearSVMLearner}


# Service name -> FLAML learner names, per task. FLAML's "lrl1"/"lrl2" are scikit-learn's
# LogisticRegression with L1 / L2 penalties; "sgd" SGDClassifier/SGDRegressor; "kneighbor"
# KNeighbors*; "rf" RandomForest*; "extra_tree" ExtraTrees*; "lgbm" LightGBM; "xgboost"
# XGBoost; "enet" ElasticNet; "lassolars" LassoLars. The "sim_*" learners are defined above.
_TREES_AND_LINEAR = {"SGD": ["sgd"], "KNN": ["kneighbor"], "DecisionTree": ["sim_decision_tree"],
                     "RandomForest": ["rf"], "ExtremeRandomTrees": ["extra_tree"], "LightGBM": ["lgbm"],
                     "GradientBoosting": ["sim_gradient_boosting"]}
ALGORITHMS: dict[str, dict[str, list[str]]] = {
    "Classification": {"LogisticRegression": ["lrl2", "lrl1"], "MultinomialNaiveBayes": ["sim_multinomial_nb"],
                       "BernoulliNaiveBayes": ["sim_bernoulli_nb"], "SVM": ["sim_svm"],
                       "LinearSVM": ["sim_linear_svm"], "XGBoostClassifier": ["xgboost"], **_TREES_AND_LINEAR},
    "Regression": {"ElasticNet": ["enet"], "LassoLars": ["lassolars"], "XGBoostRegressor": ["xgboost"],
                   **_TREES_AND_LINEAR},
}
ALGORITHMS["Forecasting"] = dict(ALGORITHMS["Regression"])
# Accepted by the service, not available here (statistical / deep forecasting models).
NOT_SIMULATED = {"AutoArima", "Prophet", "Naive", "SeasonalNaive", "Average", "SeasonalAverage",
                 "ExponentialSmoothing", "Arimax", "TCNForecaster"}
# The service tries every algorithm by default; SVM (kernel, with probabilities) scales with the
# square of the rows, so here it is tried only when asked for by name.
NOT_BY_DEFAULT = {"SVM"}


def service_names(task: str) -> list[str]:
    from azure.ai.ml.automl import ClassificationModels, ForecastingModels, RegressionModels

    enum = {"Classification": ClassificationModels, "Regression": RegressionModels,
            "Forecasting": ForecastingModels}[task]
    return [member.value for member in enum]


def _canonical(task: str, name: str) -> Optional[str]:
    """A service algorithm name as the user spelled it -> its canonical spelling (None: unknown)."""
    wanted = name.replace("_", "").lower()
    return next((known for known in service_names(task) if known.lower() == wanted), None)


def algorithms_to_try(task: str, training: dict) -> tuple[list[str], list[str]]:
    """(the service names the search will try, the names asked for that the simulation skips)."""
    allowed = training.get("allowedTrainingAlgorithms")
    blocked = {_canonical(task, name) or name for name in training.get("blockedTrainingAlgorithms") or []}
    if allowed:
        wanted = [_canonical(task, name) or name for name in allowed]
    else:
        wanted = [name for name in service_names(task) if name not in NOT_BY_DEFAULT]
    wanted = [name for name in wanted if name not in blocked]
    skipped = [name for name in wanted if name in NOT_SIMULATED or name not in ALGORITHMS[task]]
    return [name for name in wanted if name not in skipped], skipped
