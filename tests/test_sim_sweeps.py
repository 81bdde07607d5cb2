"""Sweep jobs on the simulated workspace: sampling, early termination, limits, best trial.

The sampling and policy rules are checked as pure functions on crafted numbers (each
expected answer worked out by hand from the documented rule, arithmetic in the comments);
two small sweeps then run end to end with real child jobs.
"""
from __future__ import annotations

import json
import math
import statistics
import time

import pytest
from azure.ai.ml import Output, command
from azure.ai.ml.exceptions import ValidationException
from azure.ai.ml.sweep import (
    BanditPolicy,
    BayesianSamplingAlgorithm,
    Choice,
    LogNormal,
    LogUniform,
    MedianStoppingPolicy,
    Normal,
    QLogNormal,
    QLogUniform,
    QNormal,
    QUniform,
    Randint,
    RandomSamplingAlgorithm,
    TruncationSelectionPolicy,
    Uniform,
)
from azure.core.exceptions import HttpResponseError

from helpers import workspace_tracking, write_files
from labkit.sim.jobs import job_state, sweep

ENV = "AzureML-sklearn-1.5@latest"


# -- early termination --------------------------------------------------------------------------
def test_bandit_slack_factor_maximize():
    policy = BanditPolicy(slack_factor=0.1, evaluation_interval=1, delay_evaluation=2)
    table = {
        "a": [0.50, 0.60, 0.70, 0.80],
        "b": [0.40, 0.55, 0.66, 0.75],
        "c": [0.30, 0.40, 0.50, 0.60],
        "d": [0.50, 0.58, 0.62, 0.64],
    }
    # Interval 1: before delay_evaluation=2, nobody is judged (c's 0.30 would fail 0.50/1.1).
    # Interval 2: best up to 2 = a's 0.60; limit 0.60 / 1.1 = 0.5454. c's best 0.40 < limit: stop.
    #             b 0.55 and d 0.58 are within the slack.
    # Interval 3: best = 0.70; limit 0.70 / 1.1 = 0.6364. d's best 0.62 < limit: stop; b 0.66 stays.
    # Interval 4: best = 0.80; limit 0.7273. b's best 0.75 stays.
    assert sweep.replay(policy, "maximize", table) == {"c": 2, "d": 3}


def test_bandit_slack_amount_minimize_with_an_evaluation_interval():
    policy = BanditPolicy(slack_amount=0.2, evaluation_interval=2)
    table = {
        "a": [1.0, 0.8, 0.6, 0.5],
        "b": [1.2, 1.05, 0.9, 0.85],
        "c": [1.1, 0.95, 0.9, 0.65],
    }
    # Judged at intervals 2 and 4 only (multiples of 2; delay 0).
    # Interval 2: best (lowest) up to 2 = a's 0.8; limit 0.8 + 0.2 = 1.0. b's best 1.05 > 1.0: stop.
    #             c's best 0.95 <= 1.0 stays.
    # Interval 3: not judged (c's best 0.9 vs limit 0.6 + 0.2 = 0.8 would have stopped it).
    # Interval 4: best = 0.5; limit 0.7. c's best 0.65 stays.
    assert sweep.replay(policy, "minimize", table) == {"b": 2}


def test_median_stopping():
    policy = MedianStoppingPolicy(evaluation_interval=1, delay_evaluation=2)
    table = {
        "a": [0.2, 0.5, 0.6],
        "b": [0.3, 0.5, 0.7],
        "c": [0.1, 0.2, 0.3],
        "d": [0.4, 0.44, 0.45],
    }
    # Interval 2, running averages of intervals 1..2: a 0.35, b 0.40, c 0.15, d 0.42.
    #   a: median of others (0.40, 0.15, 0.42) = 0.40; a's best 0.5 is not worse.
    #   b: median (0.35, 0.15, 0.42) = 0.35; best 0.5 stays.
    #   c: median (0.35, 0.40, 0.42) = 0.40; best 0.2 is worse: stop.
    #   d: median (0.35, 0.40, 0.15) = 0.35; best 0.44 stays.
    # Interval 3 (c stopped at 2 has no interval 3), averages of 1..3: a 0.4333, b 0.5, d 0.43.
    #   a: median (0.5, 0.43) = 0.465; best 0.6 stays.   b: median (0.4333, 0.43) = 0.4317; best 0.7 stays.
    #   d: median (0.4333, 0.5) = 0.4667; best 0.45 is worse: stop.
    assert sweep.replay(policy, "maximize", table) == {"c": 2, "d": 3}


def test_truncation_selection():
    policy = TruncationSelectionPolicy(truncation_percentage=25, evaluation_interval=1, delay_evaluation=1)
    table = {
        "a": [0.5, 0.6, 0.7],
        "b": [0.4, 0.65, 0.75],
        "c": [0.3, 0.5, 0.6],
        "d": [0.6, 0.55, 0.8],
    }
    # A trial is in the lowest 25% at interval n when fewer than 25% of the trials that reached n
    # did worse than it there.
    # Interval 1: values a .5, b .4, c .3, d .6; 4 trials, 25% of 4 = 1. c has 0 worse (< 1): stop.
    #             b has 1 worse (c): stays.
    # Interval 2: a .6, b .65, d .55 (c stopped); 25% of 3 = 0.75. d has 0 worse: stop.
    # Interval 3: a .7, b .75; 25% of 2 = 0.5. a has 0 worse: stop.
    assert sweep.replay(policy, "maximize", table) == {"c": 1, "d": 2, "a": 3}


def test_evaluation_points_and_a_trial_judged_when_others_catch_up():
    policy = BanditPolicy(slack_factor=0.1, evaluation_interval=2, delay_evaluation=3)
    assert [n for n in range(1, 10) if sweep.is_evaluation_point(policy, n)] == [4, 6, 8]
    every = BanditPolicy(slack_amount=0.1)  # the SDK's default interval 0 counts as every interval
    assert [n for n in range(1, 4) if sweep.is_evaluation_point(every, n)] == [1, 2, 3]
    # "slow" has logged one value; "fast" three. fast at interval 1 (0.2) is compared with slow's
    # interval 1 (0.9): best 0.9, limit 0.8, so fast is stopped at interval 1.
    histories = {"fast": [0.2, 0.3, 0.95], "slow": [0.9]}
    assert sweep.first_stop(every, "maximize", "fast", histories) == 1
    assert sweep.first_stop(every, "maximize", "slow", histories) == 0


# -- sampling ------------------------------------------------------------------------------------
SPACE = sweep.rest_search_space({
    "choice": Choice([1, "two", 3.5]),
    "randint": Randint(upper=5),
    "uniform": Uniform(min_value=-1, max_value=2),
    "quniform": QUniform(min_value=0, max_value=10, q=2),
    "loguniform": LogUniform(min_value=-3, max_value=0),
    "qloguniform": QLogUniform(min_value=0, max_value=4, q=5),
    "normal": Normal(mu=10, sigma=2),
    "qnormal": QNormal(mu=10, sigma=2, q=3),
    "lognormal": LogNormal(mu=0, sigma=0.5),
    "qlognormal": QLogNormal(mu=2, sigma=0.5, q=1),
})


@pytest.mark.parametrize("rule", ["random", "sobol"])
def test_every_distribution_draws_in_range(rule):
    sampler = sweep.RandomSampler(SPACE, seed=7, rule=rule)
    draws = [sampler.propose() for _ in range(1024)]
    column = {name: [d[name] for d in draws] for name in SPACE}
    assert set(column["choice"]) == {1, "two", 3.5}
    assert set(column["randint"]) == {0, 1, 2, 3, 4}  # [0, upper)
    assert all(-1 <= v <= 2 for v in column["uniform"])
    assert abs(statistics.fmean(column["uniform"]) - 0.5) < 0.1
    assert set(column["quniform"]) <= {0, 2, 4, 6, 8, 10}  # round(uniform(0, 10) / 2) * 2
    assert all(math.exp(-3) <= v <= 1 for v in column["loguniform"])  # exp(uniform(-3, 0))
    assert abs(statistics.fmean(math.log(v) for v in column["loguniform"]) + 1.5) < 0.1
    # round(exp(uniform(0, 4)) / 5) * 5: multiples of 5 from 0 to round(54.6 / 5) * 5 = 55
    assert all(v % 5 == 0 and 0 <= v <= 55 for v in column["qloguniform"])
    assert abs(statistics.fmean(column["normal"]) - 10) < 0.2
    assert abs(statistics.stdev(column["normal"]) - 2) < 0.2
    assert all(v % 3 == 0 for v in column["qnormal"])  # round(normal(10, 2) / 3) * 3
    assert all(v > 0 for v in column["lognormal"])  # exp(normal(0, 0.5))
    assert abs(statistics.fmean(math.log(v) for v in column["lognormal"])) < 0.05
    assert all(isinstance(v, int) and v >= 0 for v in column["qlognormal"])  # round(exp(normal) / 1) * 1


def test_seeds_repeat_and_differ():
    def sequence(seed, rule="random"):
        sampler = sweep.RandomSampler(SPACE, seed=seed, rule=rule)
        return [sampler.propose() for _ in range(5)]

    assert sequence(3) == sequence(3) and sequence(3) != sequence(4)
    assert sequence(3, "sobol") == sequence(3, "sobol") and sequence(3, "sobol") != sequence(4, "sobol")


def test_grid_enumerates_the_cartesian_product_in_order():
    space = sweep.rest_search_space({"a": Choice([1, 2, 3]), "b": Choice(["x", "y"])})
    sampler = sweep.make_sampler({"samplingAlgorithmType": "Grid"}, space, "maximize")
    proposals = []
    while (params := sampler.propose()) is not None:
        proposals.append((params["a"], params["b"]))
    assert proposals == [(1, "x"), (1, "y"), (2, "x"), (2, "y"), (3, "x"), (3, "y")]


def test_bayesian_sampling_uses_optuna_and_beats_random_on_a_quadratic():
    space = sweep.rest_search_space({"x": Uniform(min_value=0, max_value=1), "y": Uniform(min_value=0, max_value=1),
                                     "step": QUniform(min_value=0, max_value=1, q=0.5)})

    def objective(p):
        return -((p["x"] - 0.3) ** 2) - (p["y"] - 0.7) ** 2

    def best_after(sampler, trials=40):
        found = []
        for _ in range(trials):
            params = sampler.propose()
            assert params["step"] in (0, 0.5, 1.0)
            value = objective(params)
            sampler.tell(params, value)
            found.append(value)
        return max(found)

    import optuna

    bayesian = [best_after(sweep.BayesianSampler(space, "maximize", seed=s)) for s in range(5)]
    random_ = [best_after(sweep.RandomSampler(space, seed=s)) for s in range(5)]
    assert isinstance(sweep.BayesianSampler(space, "maximize", seed=0).study, optuna.Study)
    assert statistics.fmean(bayesian) > statistics.fmean(random_)


def test_best_trial_follows_the_goal_and_final_values():
    results = {"t0": [0.1, 0.9, 0.5], "t1": [0.6], "t2": []}
    assert sweep.best_trial(results, "maximize") == ("t1", 0.6)  # final values: 0.5, 0.6
    assert sweep.best_trial(results, "minimize") == ("t0", 0.5)


# -- refusals ------------------------------------------------------------------------------------
@pytest.fixture
def src(tmp_path):
    return write_files(tmp_path / "src", {
        "train.py": """
            import argparse, os, time
            import mlflow

            parser = argparse.ArgumentParser()
            parser.add_argument("--lr", type=float)
            parser.add_argument("--out")
            args = parser.parse_args()
            with mlflow.start_run():
                for step in range(1, 4):
                    mlflow.log_metric("accuracy", args.lr * step / 3)
                    # A weak trial is slow, so the policy has it running when it judges it.
                    time.sleep(0.2 if args.lr > 0.5 else 4)
            os.makedirs("outputs", exist_ok=True)
            with open("outputs/trained.txt", "w") as handle:
                handle.write(os.environ["AZUREML_SWEEP_lr"])
            with open(os.path.join(args.out, "model.txt"), "w") as handle:
                handle.write(f"lr={args.lr}")
        """,
        "grid.py": """
            import sys
            import mlflow

            a, b = int(sys.argv[1]), sys.argv[2]
            with mlflow.start_run():
                mlflow.log_metric("score", a * 10 + (1 if b == "y" else 0))
        """,
    })


def trial(src, **inputs):
    return command(code=str(src), command="python train.py --lr ${{inputs.lr}} --out ${{outputs.model}}",
                   inputs={"lr": 0.5, **inputs}, outputs={"model": Output(type="uri_folder")}, environment=ENV,
                   experiment_name="sweeps-test")


def test_refusals(ml_client, src):
    def submit(space, **options):
        options.setdefault("primary_metric", "accuracy")
        options.setdefault("goal", "maximize")
        limits = options.pop("limits", {})
        job = trial(src)(**space).sweep(**options)
        if limits:
            job.set_limits(**limits)
        return ml_client.jobs.create_or_update(job)

    with pytest.raises(HttpResponseError, match="Grid sampling supports only choice") as refused:
        submit({"lr": Uniform(min_value=0.1, max_value=1)}, sampling_algorithm="grid")
    assert refused.value.status_code == 400
    with pytest.raises(HttpResponseError, match="does not support early termination"):
        submit({"lr": Uniform(min_value=0.1, max_value=1)}, sampling_algorithm="bayesian",
               early_termination_policy=BanditPolicy(slack_factor=0.1))
    with pytest.raises(HttpResponseError, match="choice, uniform and quniform"):
        submit({"lr": LogUniform(min_value=-3, max_value=0)}, sampling_algorithm=BayesianSamplingAlgorithm())
    with pytest.raises(HttpResponseError, match="cannot exceed"):
        submit({"lr": Choice([0.1, 0.9])}, sampling_algorithm="random",
               limits={"max_total_trials": 2, "max_concurrent_trials": 3})
    with pytest.raises(HttpResponseError, match="primary_metric and goal"):
        submit({"lr": Choice([0.1, 0.9])}, sampling_algorithm="random", primary_metric=None)
    with pytest.raises(HttpResponseError, match="rule 'halton'"):
        submit({"lr": Choice([0.1, 0.9])}, sampling_algorithm=RandomSamplingAlgorithm(rule="halton"))
    with pytest.raises(HttpResponseError, match="search_space.momentum"):
        job = trial(src)(lr=Choice([0.1, 0.9])).sweep(sampling_algorithm="random", primary_metric="accuracy",
                                                      goal="maximize")
        job.trial.command += " --momentum ${{search_space.momentum}}"
        ml_client.jobs.create_or_update(job)
    with pytest.raises(ValidationException):  # the SDK's own check, before anything is sent
        job = trial(src)(lr=Choice([0.1, 0.9])).sweep(sampling_algorithm="random", primary_metric="accuracy",
                                                      goal="maximize")
        job.trial.command += " --epochs ${{inputs.epochs}}"
        ml_client.jobs.create_or_update(job)
    with pytest.raises(ValidationException):
        submit({"lr": Choice([0.1, 0.9])}, sampling_algorithm="annealing")
    assert list(ml_client.jobs.list()) == []


# -- end to end ------------------------------------------------------------------------------------


def test_random_sweep_with_a_bandit_policy(ml_client, src, tmp_path, finished_job):
    import mlflow

    space = {"lr": Choice([0.1, 0.8, 0.9, 1.0])}
    # Seed 9 draws lr = 0.8, 0.8, 0.1, 1.0 (the sampler is a pure function of the seed).
    expected = sweep.RandomSampler(sweep.rest_search_space(space), seed=9)
    expected = [expected.propose()["lr"] for _ in range(4)]
    assert expected == [0.8, 0.8, 0.1, 1.0]
    job = trial(src)(**space).sweep(
        sampling_algorithm=RandomSamplingAlgorithm(seed=9), primary_metric="accuracy", goal="maximize",
        early_termination_policy=BanditPolicy(slack_factor=0.5, evaluation_interval=1))
    job.set_limits(max_total_trials=4, max_concurrent_trials=2)
    submitted = ml_client.jobs.create_or_update(job)
    assert submitted.type == "sweep" and submitted.status == "NotStarted"
    finished = finished_job(ml_client, submitted.name)
    assert finished.status == "Completed"

    children = {child.name: child for child in ml_client.jobs.list(parent_job_name=submitted.name)}
    assert sorted(children) == [f"{submitted.name}_{i}" for i in range(4)]
    assert submitted.name in [j.name for j in ml_client.jobs.list()]
    assert not set(children) & {j.name for j in ml_client.jobs.list()}  # trials are listed under their sweep
    lrs = {name: json.loads(child.tags["hyperparameters"])["lr"] for name, child in children.items()}
    assert [lrs[f"{submitted.name}_{i}"] for i in range(4)] == expected
    # The weak trial (lr 0.1: accuracy 0.033 at interval 1) is far below the best at interval 1
    # (0.8 / 3 = 0.267 or better; limit 0.267 / 1.5 = 0.178): canceled. The others are within
    # the slack of lr 1.0 (0.8 / 3 >= (1.0 / 3) / 1.5), and complete.
    statuses = {lrs[name]: child.status for name, child in children.items()}
    assert children[f"{submitted.name}_2"].status == "Canceled"
    assert [children[f"{submitted.name}_{i}"].status for i in (0, 1, 3)] == ["Completed"] * 3, statuses

    best = f"{submitted.name}_3"  # lr 1.0: final accuracy 1.0
    assert finished.properties["best_child_run_id"] == best
    assert float(finished.properties["score"]) == pytest.approx(1.0)
    with workspace_tracking(ml_client):
        assert mlflow.get_run(submitted.name).data.metrics["accuracy"] == pytest.approx(1.0)

    ml_client.jobs.download(submitted.name, download_path=tmp_path / "dl", all=True)
    assert (tmp_path / "dl" / "named-outputs" / "model" / "model.txt").read_text() == "lr=1.0"
    assert (tmp_path / "dl" / "artifacts" / "outputs" / "trained.txt").read_text() == "1.0"
    assert "best trial" in (tmp_path / "dl" / "hd-artifacts" / "user_logs" / "std_log.txt").read_text()


def test_grid_sweep_runs_every_combination(ml_client, src, finished_job):
    base = command(code=str(src), command="python grid.py ${{inputs.a}} ${{inputs.b}}", inputs={"a": 0, "b": "x"},
                   environment=ENV)
    job = base(a=Choice([1, 2]), b=Choice(["x", "y"])).sweep(
        sampling_algorithm="grid", primary_metric="score", goal="maximize", max_concurrent_trials=2)
    submitted = ml_client.jobs.create_or_update(job)
    finished = finished_job(ml_client, submitted.name)
    assert finished.status == "Completed"
    children = sorted(ml_client.jobs.list(parent_job_name=submitted.name), key=lambda c: c.name)
    combos = [json.loads(c.tags["hyperparameters"]) for c in children]
    assert combos == [{"a": 1, "b": "x"}, {"a": 1, "b": "y"}, {"a": 2, "b": "x"}, {"a": 2, "b": "y"}]
    assert all(c.status == "Completed" for c in children)
    assert finished.properties["best_child_run_id"] == children[3].name  # a=2, b=y: score 21
    assert float(finished.properties["score"]) == 21


def test_a_sweeps_own_job_takes_no_node_so_its_trials_use_them_all(ml_client, src, finished_job):
    from azure.ai.ml.entities import AmlCompute

    ml_client.begin_create_or_update(AmlCompute(name="two-nodes", size="Standard_DS3_v2", max_instances=2)).result()
    (src / "nap.py").write_text("import time, mlflow\nwith mlflow.start_run():\n    time.sleep(3)\n"
                                "    mlflow.log_metric('score', 1)\n")
    base = command(code=str(src), command="python nap.py ${{inputs.x}}", inputs={"x": 0}, environment=ENV,
                   compute="two-nodes")
    job = base(x=Choice([1, 2])).sweep(sampling_algorithm="grid", primary_metric="score", goal="maximize",
                                       max_concurrent_trials=2)
    finished = finished_job(ml_client, ml_client.jobs.create_or_update(job).name)
    assert finished.status == "Completed"
    first, second = (job_state.runtime(ml_client._sim_workspace, c.name)
                     for c in ml_client.jobs.list(parent_job_name=finished.name))
    # Both trials held a node at once (ISO times compare in order).
    assert first["start_time"] < second["end_time"] and second["start_time"] < first["end_time"]


def test_canceling_a_sweep_cancels_its_running_trials(ml_client, src, finished_job):
    (src / "slow.py").write_text("import time\ntime.sleep(60)\n")
    base = command(code=str(src), command="python slow.py ${{inputs.a}}", inputs={"a": 0}, environment=ENV)
    job = base(a=Choice([1, 2, 3])).sweep(sampling_algorithm="grid", primary_metric="score", goal="maximize",
                                          max_concurrent_trials=2)
    submitted = ml_client.jobs.create_or_update(job)
    deadline = time.time() + 60
    # As soon as the sweep has started its trials (running or about to: canceling either is the same
    # for the sweep; command jobs' own cancel is tested in test_sim_jobs).
    while time.time() < deadline and len(list(ml_client.jobs.list(parent_job_name=submitted.name))) < 2:
        time.sleep(0.2)
    ml_client.jobs.begin_cancel(submitted.name).result()
    assert finished_job(ml_client, submitted.name).status == "Canceled"
    children = list(ml_client.jobs.list(parent_job_name=submitted.name))
    assert len(children) == 2  # the third was never started
    for child in children:
        assert finished_job(ml_client, child.name).status == "Canceled"
