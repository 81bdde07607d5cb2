"""AutoML's last iterations: VotingEnsemble and StackEnsemble of the best models found.

Stands for the service's ensemble children (``enable_vote_ensemble``, ``enable_stack_ensemble``):
the best model of up to five algorithms, combined by soft vote or mean (VotingEnsemble) or by a
logistic regression / elastic net over their out-of-fold predictions (StackEnsemble), each
scored as a trial is and recorded as one more child job; one skipped when its training would pass
the job's timeout. ``search`` calls ``_ensembles`` after FLAML's search; the ``search`` these
functions take is that module's ``_Search``, the job's search.

May import: as ``labkit.sim.jobs``.
"""
from __future__ import annotations

import time

import numpy as np

ENSEMBLE_SIZE = 5


def _estimator_of(automl, learner: str):
    model = automl.best_model_for_estimator(learner)
    return None if model is None else model.estimator


def _ensembles(search, automl, kinds, X_fit, y_fit, fit_args, max_trials, learner_names, deadline):
    """VotingEnsemble (soft vote / mean of the best model of up to five learners) and
    StackEnsemble (their out-of-fold predictions into a logistic regression / elastic net)."""
    from sklearn.base import clone
    from sklearn.ensemble import StackingClassifier, StackingRegressor, VotingClassifier, VotingRegressor
    from sklearn.linear_model import ElasticNetCV, LogisticRegression

    plan = search.plan
    ranked = sorted((e for e in automl.best_loss_per_estimator.items() if np.isfinite(e[1])), key=lambda e: e[1])
    members = [(learner, _estimator_of(automl, learner)) for learner, _ in ranked[:ENSEMBLE_SIZE]]
    members = [(learner, est) for learner, est in members if est is not None]
    if len(members) < 2:
        search.log("Ensembles skipped: fewer than two algorithms produced a model.")
        return
    names = [learner_names.get(learner, learner) for learner, _ in members]
    # What one fit of every member costs, from FLAML's record of their best trials.
    member_cost = sum(getattr(automl._search_states[learner], "best_config_train_time", 0) or 0
                      for learner, _ in members)
    n_fits = 1 if fit_args["eval_method"] == "holdout" else len(fit_args["split_type"].folds)
    for kind in kinds:
        if len(search.children) >= max_trials:
            break
        # Stacking fits every member once more per inner fold (3) to get out-of-fold predictions.
        estimate = member_cost * n_fits * (4 if kind == "StackEnsemble" else 1)
        if time.time() + estimate > deadline:
            search.log(f"{kind} skipped: about {estimate:.0f}s of training would pass the job's timeout.")
            continue
        estimators = [(f"{i}_{name}", clone(est)) for i, (name, (_, est)) in enumerate(zip(names, members))]
        if kind == "VotingEnsemble":
            ensemble = (VotingClassifier(estimators, voting="soft") if plan.is_classification
                        else VotingRegressor(estimators))
        else:
            ensemble = (StackingClassifier(estimators, final_estimator=LogisticRegression(max_iter=1000), cv=3)
                        if plan.is_classification else StackingRegressor(estimators, final_estimator=ElasticNetCV(),
                                                                         cv=3))
        try:
            scores = _evaluate(search, ensemble, X_fit, y_fit, fit_args)
            search.record_child(kind, {"ensembled_algorithms": names}, scores)
            search.ensemble_models = getattr(search, "ensemble_models", {})
            search.ensemble_models[search.children[-1]["name"]] = ensemble
        except Exception as error:  # an ensemble that cannot be built fails as a child, not the job
            search.record_child(kind, {"ensembled_algorithms": names}, {}, failed=str(error)[:300])


def _evaluate(search, estimator, X_fit, y_fit, fit_args) -> dict:
    from sklearn.base import clone

    if fit_args["eval_method"] == "holdout":
        model = clone(estimator).fit(X_fit, y_fit)
        return search.metrics_of(model, fit_args["X_val"], fit_args["y_val"])
    fold_scores = []
    for train_rows, valid_rows in fit_args["split_type"].folds:
        model = clone(estimator).fit(X_fit[train_rows], y_fit[train_rows])
        fold_scores.append(search.metrics_of(model, X_fit[valid_rows], y_fit[valid_rows]))
    keys = set.intersection(*(set(s) for s in fold_scores))
    return {key: float(np.mean([s[key] for s in fold_scores])) for key in keys}
