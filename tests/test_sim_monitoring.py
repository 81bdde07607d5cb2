"""Model monitoring on the simulated workspace: the metrics, the verdicts, the alerts, the jobs.

The metrics are checked against SciPy or against numbers worked out by hand; the monitor is
checked the way a learner sees it: a ``MonitorSchedule`` created with the real SDK entities, its
runs in ``ml_client.jobs``, its results and its outbox.
"""
from __future__ import annotations

import json
import math
import os
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import assert_no_processes_under, wait_for_job, write_files
import requests
from azure.ai.ml import Input
from azure.ai.ml.entities import (
    AlertNotification,
    CategoricalDriftMetrics,
    CodeConfiguration,
    Data,
    DataCollector,
    DataDriftMetricThreshold,
    DataDriftSignal,
    DataQualityMetricsCategorical,
    DataQualityMetricsNumerical,
    DataQualityMetricThreshold,
    DataQualitySignal,
    DeploymentCollection,
    FADProductionData,
    FeatureAttributionDriftMetricThreshold,
    FeatureAttributionDriftSignal,
    ManagedOnlineDeployment,
    ManagedOnlineEndpoint,
    Model,
    MonitorDefinition,
    MonitoringTarget,
    MonitorSchedule,
    NumericalDriftMetrics,
    ProductionData,
    RecurrenceTrigger,
    ReferenceData,
    ServerlessSparkCompute,
)
from azure.core.exceptions import HttpResponseError
from scipy import stats
from scipy.spatial import distance

from labkit.sim import clock, monitoring
from labkit.sim.core import references
from labkit.sim.monitoring import drift_metrics as dm

DATA = Path(__file__).resolve().parent.parent / "data"
SPARK = ServerlessSparkCompute(runtime_version="3.4", instance_type="standard_e4s_v3")
EMAILS = ["ml-ops@example.com"]


# == the metrics ==================================================================================
def test_bins_follow_sturges_on_the_smaller_sample_over_both_ranges():
    ref, prod = np.arange(100.0), np.arange(50.0, 170.0)
    edges = dm.histogram_edges(ref, prod)
    assert len(edges) - 1 == math.ceil(math.log2(100) + 1) == 8
    assert edges[0] == 0 and edges[-1] == 169


def test_numerical_jensen_shannon_matches_scipy_and_tolerates_empty_bins():
    rng = np.random.default_rng(0)
    ref, prod = rng.normal(0, 1, 400), rng.normal(3, 1, 300)  # far apart: many bins empty on one side
    edges = dm.histogram_edges(ref, prod)
    p, _ = np.histogram(ref, edges)
    q, _ = np.histogram(prod, edges)
    assert (p == 0).any() and (q == 0).any()
    expected = distance.jensenshannon(p / p.sum(), q / q.sum(), base=2)
    assert dm.numerical_jensen_shannon(ref, prod) == pytest.approx(expected)
    assert dm.numerical_jensen_shannon(ref, ref) == pytest.approx(0.0, abs=1e-12)
    # Disjoint samples are as far apart as the base-2 distance goes.
    assert dm.numerical_jensen_shannon([0, 1, 2, 3], [10, 11, 12, 13]) == pytest.approx(1.0)


def test_population_stability_index_by_hand_with_add_one_smoothing():
    # Reference counts [2, 0], production [0, 2] over two bins: p = (3/2, 1/2), q = (1/2, 3/2).
    value = dm.psi_from_counts([2, 0], [0, 2])
    assert value == pytest.approx(2 * (1.5 - 0.5) * math.log(3))
    assert math.isfinite(dm.numerical_psi([0, 0, 0, 10], [10, 10, 10, 10]))
    assert dm.numerical_psi(range(50), range(50)) == pytest.approx(0.0)


def test_normalized_wasserstein_matches_scipy_and_survives_a_constant_reference():
    rng = np.random.default_rng(1)
    ref, prod = rng.normal(10, 2, 300), rng.normal(11, 2, 200)
    expected = stats.wasserstein_distance(ref, prod) / np.std(ref, ddof=1)
    assert dm.normalized_wasserstein(ref, prod) == pytest.approx(expected)
    # A constant reference has no spread: the service divides by 0.001 instead of 0.
    assert dm.normalized_wasserstein([5.0] * 10, [6.0] * 10) == pytest.approx(1.0 / 0.001)


def test_kolmogorov_smirnov_reports_scipys_p_value_and_refuses_large_samples():
    rng = np.random.default_rng(2)
    ref, prod = rng.normal(0, 1, 200), rng.normal(0.5, 1, 150)
    expected = stats.ks_2samp(ref, prod)
    statistic, p_value = dm.two_sample_ks_test(ref, prod)
    assert (statistic, p_value) == (pytest.approx(expected.statistic), pytest.approx(expected.pvalue))
    assert dm.drift_metric("TwoSampleKolmogorovSmirnovTest", "Numerical", ref, prod)[0] == pytest.approx(p_value)
    with pytest.raises(ValueError, match="more than 10000"):
        dm.two_sample_ks_test(np.zeros(10_000), np.zeros(10))


def test_categorical_metrics_with_an_unseen_category():
    ref = ["a"] * 60 + ["b"] * 40
    prod = ["a"] * 30 + ["b"] * 20 + ["c"] * 50  # "c" is new
    # Jensen-Shannon over the union of categories: p = (.6, .4, 0), q = (.3, .2, .5).
    expected = distance.jensenshannon([0.6, 0.4, 0.0], [0.3, 0.2, 0.5], base=2)
    assert dm.categorical_jensen_shannon(ref, prod) == pytest.approx(expected)
    # PSI with add-one smoothing: p = (61, 41, 1) / 100, q = (31, 21, 51) / 100.
    p, q = np.array([61, 41, 1]) / 100, np.array([31, 21, 51]) / 100
    assert dm.categorical_psi(ref, prod) == pytest.approx(float(np.sum((q - p) * np.log(q / p))))
    # The reference cannot produce "c": chi-squared is infinite, its p-value 0, and nothing divides by zero.
    with np.errstate(all="raise"):
        assert dm.pearsons_chi_squared_test(ref, prod) == (math.inf, 0.0)


def test_chi_squared_matches_scipy_when_every_category_is_known():
    ref = ["x"] * 50 + ["y"] * 30 + ["z"] * 20
    prod = ["x"] * 20 + ["y"] * 20 + ["z"] * 10
    expected = stats.chisquare([20, 20, 10], [25, 15, 10])
    assert dm.pearsons_chi_squared_test(ref, prod) == (pytest.approx(expected.statistic), pytest.approx(expected.pvalue))


def test_constant_columns_do_not_crash():
    assert dm.numerical_jensen_shannon([3, 3, 3], [3, 3]) == pytest.approx(0.0)
    assert dm.numerical_psi([0, 0], [0, 0]) == pytest.approx(0.0)
    # The service smooths without renormalising: equal shares of unequal samples differ a little,
    # p = (2 + 1) / 2, q = (3 + 1) / 3.
    assert dm.numerical_psi([0, 0], [0, 0, 0]) == pytest.approx((4 / 3 - 3 / 2) * math.log((4 / 3) / (3 / 2)))
    assert dm.categorical_jensen_shannon(["k"] * 5, ["k"] * 3) == pytest.approx(0.0)
    statistic, p_value = dm.pearsons_chi_squared_test(["k"] * 5, ["k"] * 3)
    assert statistic == 0.0 and math.isnan(p_value)  # one category: nothing to test, no breach
    assert not dm.breaches("PearsonsChiSquaredTest", p_value, 0.05)


def test_data_quality_rates_by_hand():
    reference = pd.Series([1.0, 2.0, 3.0, 4.0])
    production = pd.Series([0.5, 2.0, None, 9.0, "abc", 3.0, None, 4.0], dtype=object)
    assert dm.null_value_rate(production) == 0.25
    assert dm.data_type_error_rate(production, "numeric") == 0.125  # "abc"
    assert dm.out_of_bounds_rate(production, reference, categorical=False) == 0.25  # 0.5 and 9.0
    assert dm.out_of_bounds_rate(["a", "b", "z", None], ["a", "b"], categorical=True) == 0.25
    assert dm.data_type_error_rate(["a", 1, None], "string") == 0.0
    assert dm.null_value_rate([1, 2, 3]) == 0.0


def test_feature_types_and_breach_directions():
    assert dm.feature_type(pd.Series([0.5, 1.5])) == "Numerical"
    assert dm.feature_type(pd.Series(["a", "b"])) == "Categorical"
    assert dm.feature_type(pd.Series([0, 1] * 50)) == "Categorical"  # few distinct integers
    assert dm.feature_type(pd.Series(range(100))) == "Numerical"
    assert dm.feature_type(pd.Series(range(100)), override="categorical") == "Categorical"
    assert dm.breaches("JensenShannonDistance", 0.2, 0.1) and not dm.breaches("JensenShannonDistance", 0.05, 0.1)
    assert dm.breaches("TwoSampleKolmogorovSmirnovTest", 0.01, 0.05)
    assert not dm.breaches("TwoSampleKolmogorovSmirnovTest", 0.5, 0.05)


# == monitors over data assets ======================================================================
def _asset(ml_client, name: str, file: str) -> str:
    return f"azureml:{name}:{ml_client.data.create_or_update(Data(name=name, path=str(DATA / file), type='uri_file')).version}"


def _drift_signal(reference: str, production: str, alert: bool = True) -> DataDriftSignal:
    return DataDriftSignal(
        reference_data=ReferenceData(input_data=Input(path=reference, type="uri_file"), data_context="training"),
        production_data=ProductionData(input_data=Input(path=production, type="uri_file"),
                                       data_context="model_inputs"),
        features=["plasma_glucose_mg_dl", "bmi", "age_years", "clinic"],
        metric_thresholds=DataDriftMetricThreshold(
            numerical=NumericalDriftMetrics(normalized_wasserstein_distance=0.3),
            categorical=CategoricalDriftMetrics(pearsons_chi_squared_test=0.001)),
        alert_enabled=alert)


def _monitor(ml_client, name: str, signals: dict, emails=EMAILS, **definition) -> MonitorSchedule:
    schedule = MonitorSchedule(
        name=name, trigger=RecurrenceTrigger(frequency="day", interval=1),
        create_monitor=MonitorDefinition(compute=SPARK, monitoring_signals=signals,
                                         alert_notification=AlertNotification(emails=emails) if emails else None,
                                         **definition))
    return ml_client.schedules.begin_create_or_update(schedule).result()


def _wait(ml_client, job_name: str):
    return wait_for_job(ml_client, job_name, timeout=90, interval=0.3)


def _runs(ml_client, monitor: str) -> list[str]:
    return [j.name for j in ml_client.jobs.list() if (j.tags or {}).get("azureml.scheduleTrigger.scheduleName") == monitor]


def test_drifted_and_undrifted_windows_get_the_right_verdicts_and_alerts_only_on_breach(ml_client):
    reference = _asset(ml_client, "diabetes-reference", "diabetes_reference.csv")
    stable = _asset(ml_client, "batch-stable", "diabetes_batch1_stable.csv")
    shifted = _asset(ml_client, "batch-glucose", "diabetes_batch2_glucose_shift.csv")
    new_clinic = _asset(ml_client, "batch-clinic", "diabetes_batch3_new_clinic.csv")
    _monitor(ml_client, "stable", {"drift": _drift_signal(reference, stable)})
    _monitor(ml_client, "shifted", {"drift": _drift_signal(reference, shifted)})
    _monitor(ml_client, "clinic", {"drift": _drift_signal(reference, new_clinic)})
    # No start time: each monitor ran once, at once, as a job of the workspace.
    for monitor in ("stable", "shifted", "clinic"):
        (job_name,) = _runs(ml_client, monitor)
        job = _wait(ml_client, job_name)
        assert job.status == "Completed", monitor
        assert job.display_name.startswith(f"{monitor}-")

    stable_results = monitoring.results(ml_client, "stable")
    assert len(stable_results) == 4 and not stable_results["breached"].any()
    assert "azureml_modelmonitor_threshold_breached" not in ml_client.jobs.get(_runs(ml_client, "stable")[0]).tags

    # What the documented Event Grid filter matches ("String contains"), naming the signal.
    shifted_tag = ml_client.jobs.get(_runs(ml_client, "shifted")[0]).tags["azureml_modelmonitor_threshold_breached"]
    assert "'drift' has failed due to one or more features violating metric thresholds" in shifted_tag
    shifted_results = monitoring.results(ml_client, "shifted").set_index("feature")
    assert shifted_results.loc["plasma_glucose_mg_dl", "breached"]
    assert shifted_results.loc["plasma_glucose_mg_dl", "metric"] == "NormalizedWassersteinDistance"
    assert not shifted_results.drop(index="plasma_glucose_mg_dl")["breached"].any()

    clinic_results = monitoring.results(ml_client, "clinic").set_index("feature")
    assert clinic_results.loc["clinic", "metric"] == "PearsonsChiSquaredTest"
    assert clinic_results.loc["clinic", "value"] == 0.0 and clinic_results.loc["clinic", "breached"]

    sent = monitoring.outbox(ml_client)
    assert sorted(sent["monitor"]) == ["clinic", "shifted"]  # nothing for the stable batch
    assert all(to == EMAILS for to in sent["to"])
    assert "plasma_glucose_mg_dl" in sent.set_index("monitor").loc["shifted", "body"]

    # The results file is in the run's outputs, as a job's outputs are.
    from labkit.sim.jobs import job_state

    job_name = _runs(ml_client, "shifted")[0]
    outputs = Path(references.local_output_path(ml_client.schedules._workspace, job_name, "default")) / "outputs"
    assert pd.read_csv(outputs / "monitoring_results.csv")["breached"].any()
    figure = monitoring.plot_metrics(ml_client, "shifted")
    assert len(figure.axes) == 1
    assert monitoring.plot_distribution(ml_client, "shifted", "drift", "plasma_glucose_mg_dl").axes


def test_no_alert_when_the_signal_has_alerts_off_and_data_quality_sees_rising_nulls(ml_client):
    reference = _asset(ml_client, "diabetes-reference", "diabetes_reference.csv")
    nulls = _asset(ml_client, "batch-nulls", "diabetes_batch4_rising_nulls.csv")
    quality = DataQualitySignal(
        reference_data=ReferenceData(input_data=Input(path=reference, type="uri_file")),
        production_data=ProductionData(input_data=Input(path=nulls, type="uri_file")),
        features=["bmi", "plasma_glucose_mg_dl"],
        metric_thresholds=DataQualityMetricThreshold(
            numerical=DataQualityMetricsNumerical(null_value_rate=0.05, out_of_bounds_rate=0.05),
            categorical=DataQualityMetricsCategorical(null_value_rate=0.05)),
        alert_enabled=False)
    _monitor(ml_client, "quality", {"quality": quality})
    (job_name,) = _runs(ml_client, "quality")
    assert _wait(ml_client, job_name).status == "Completed"
    frame = monitoring.results(ml_client, "quality").set_index(["feature", "metric"])
    assert frame.loc[("bmi", "NullValueRate"), "breached"]
    assert 0.15 <= frame.loc[("bmi", "NullValueRate"), "value"] <= 0.25
    assert not frame.loc[("plasma_glucose_mg_dl", "NullValueRate"), "breached"]
    assert monitoring.outbox(ml_client).empty  # breached, but the signal's alerts are off


def test_monitor_job_fails_cleanly_when_its_data_is_missing(ml_client, tmp_path):
    reference = _asset(ml_client, "diabetes-reference", "diabetes_reference.csv")
    gone = tmp_path / "gone.csv"
    gone.write_text("plasma_glucose_mg_dl\n100\n")
    production = _asset(ml_client, "soon-gone", str(gone))
    # Remove the registered file, as if the data had been deleted from the datastore.
    from labkit.sim.jobs import job_state
    from labkit.sim.core.fs import local_path

    Path(local_path(references.data_asset_uri(ml_client.schedules._workspace, production))).unlink()
    _monitor(ml_client, "broken", {"drift": _drift_signal(reference, production)})
    (job_name,) = _runs(ml_client, "broken")
    job = _wait(ml_client, job_name)
    assert job.status == "Failed"
    error = json.loads((job_state.job_folder(ml_client.schedules._workspace, job_name) / "error.json").read_text())
    assert "production data was not found" in error["message"]
    assert "Traceback" not in error["message"]
    assert monitoring.results(ml_client, "broken").empty and monitoring.outbox(ml_client).empty


def test_schedule_create_get_list_disable_delete_and_refusals(ml_client):
    reference = _asset(ml_client, "diabetes-reference", "diabetes_reference.csv")
    stable = _asset(ml_client, "batch-stable", "diabetes_batch1_stable.csv")
    start = (clock.now() + pd.Timedelta(days=2)).replace(tzinfo=None, microsecond=0)
    schedule = MonitorSchedule(
        name="later", trigger=RecurrenceTrigger(frequency="day", interval=1, start_time=start),
        create_monitor=MonitorDefinition(compute=SPARK, monitoring_signals={"drift": _drift_signal(reference, stable)},
                                         alert_notification=AlertNotification(emails=EMAILS)))
    created = ml_client.schedules.begin_create_or_update(schedule).result()
    assert isinstance(created, MonitorSchedule) and created.is_enabled
    got = ml_client.schedules.get("later")
    signal = got.create_monitor.monitoring_signals["drift"]
    assert signal.features == ["plasma_glucose_mg_dl", "bmi", "age_years", "clinic"]
    assert signal.metric_thresholds.numerical.normalized_wasserstein_distance == 0.3
    assert signal.production_data.data_window.lookback_window_size == "P1D"  # from the daily trigger
    assert got.create_monitor.alert_notification.emails == EMAILS
    assert "later" in [s.name for s in ml_client.schedules.list()]
    assert _runs(ml_client, "later") == []  # its start time is in the future

    with pytest.raises(HttpResponseError, match="disable it"):
        ml_client.schedules.begin_delete("later")
    ml_client.schedules.begin_disable("later").result()
    assert "later" not in [s.name for s in ml_client.schedules.list()]
    assert clock.advance(days=3) == []  # disabled: nothing fires
    ml_client.schedules.begin_delete("later").result()

    attribution = FeatureAttributionDriftSignal(
        production_data=[FADProductionData(input_data=Input(path=stable, type="uri_file"))],
        reference_data=ReferenceData(input_data=Input(path=reference, type="uri_file")),
        metric_thresholds=FeatureAttributionDriftMetricThreshold(normalized_discounted_cumulative_gain=0.9))
    with pytest.raises(NotImplementedError, match="feature attribution drift"):
        _monitor(ml_client, "attribution", {"fad": attribution})
    from azure.ai.ml.exceptions import ScheduleException

    with pytest.raises(ScheduleException, match="target and baseline dataset must be provided"):
        _monitor(ml_client, "incomplete", {"drift": DataDriftSignal(
            production_data=ProductionData(input_data=Input(path=stable, type="uri_file")))})


# == a monitor over a deployment's collected data, end to end ===========================================
SCORE = textwrap.dedent("""
    import json
    def init():
        pass
    def run(raw_data):
        rows = json.loads(raw_data)["input_data"]["data"]
        return [1 if row[1] > 140 else 0 for row in rows]
""")


@pytest.fixture
def no_orphans(sim_root):
    yield
    assert_no_processes_under(sim_root, timeout=15, interval=0.2, message="processes were left running")


def test_monitor_over_a_deployments_collected_data(no_orphans, ml_client, tmp_path):
    code = write_files(tmp_path / "code", {"score.py": SCORE})
    (tmp_path / "model.txt").write_text("a threshold model\n")
    ml_client.online_endpoints.begin_create_or_update(ManagedOnlineEndpoint(name="screening", auth_mode="key")).result()
    ml_client.online_deployments.begin_create_or_update(ManagedOnlineDeployment(
        name="blue", endpoint_name="screening", model=Model(path=str(tmp_path / "model.txt")),
        environment="AzureML-sklearn-1.5@latest",
        code_configuration=CodeConfiguration(code=str(code), scoring_script="score.py"),
        instance_type="Standard_DS3_v2", instance_count=1,
        data_collector=DataCollector(collections={"model_inputs": DeploymentCollection(enabled="true"),
                                                  "model_outputs": DeploymentCollection(enabled="true")}))).result()
    deployment = ml_client.online_deployments.get("blue", "screening")
    assert deployment.data_collector.collections["model_inputs"].enabled == "true"
    inputs_asset = ml_client.data.get("screening-blue-model_inputs", version="1")
    assert inputs_asset.type == "uri_folder" and "modelDataCollector/screening/blue/model_inputs" in inputs_asset.path

    reference = _asset(ml_client, "diabetes-reference", "diabetes_reference.csv")
    signal = DataDriftSignal(  # production data: what the deployment collects (filled in as the SDK does)
        reference_data=ReferenceData(input_data=Input(path=reference, type="uri_file"), data_context="training"),
        features=["plasma_glucose_mg_dl", "bmi"],
        metric_thresholds=DataDriftMetricThreshold(numerical=NumericalDriftMetrics(normalized_wasserstein_distance=0.3)),
        alert_enabled=True)
    _monitor(ml_client, "screening-monitor", {"drift": signal},
             monitoring_target=MonitoringTarget(ml_task="classification", endpoint_deployment_id="screening:blue"))
    # Created without a start time, it ran at once, before any request: no data, a clean failure.
    (first,) = _runs(ml_client, "screening-monitor")
    assert _wait(ml_client, first).status == "Failed"

    shifted = pd.read_csv(DATA / "diabetes_batch2_glucose_shift.csv")
    columns = ["plasma_glucose_mg_dl", "bmi", "age_years"]
    endpoint = ml_client.online_endpoints.get("screening")
    endpoint.traffic = {"blue": 100}
    endpoint = ml_client.online_endpoints.begin_create_or_update(endpoint).result()
    key = ml_client.online_endpoints.get_keys("screening").primary_key
    for start in range(0, 200, 50):
        body = {"input_data": {"columns": columns, "data": shifted[columns].iloc[start:start + 50].values.tolist()}}
        answer = requests.post(endpoint.scoring_uri, json=body, headers={"Authorization": f"Bearer {key}"}, timeout=60)
        assert answer.status_code == 200

    from labkit.sim.endpoints import data_collection
    from labkit.sim.jobs import job_state
    from labkit.sim.core.fs import local_path

    collected = Path(local_path(references.data_asset_uri(ml_client.schedules._workspace, inputs_asset.id)))
    files = list(collected.rglob("*.jsonl"))
    assert files and all(len(f.relative_to(collected).parts) == 5 for f in files)  # yyyy/MM/dd/HH/<id>.jsonl
    event = json.loads(files[0].read_text().splitlines()[0])
    assert event["type"] == "azureml.inference.model_inputs" and set(event["data"][0]) == set(columns)
    outputs = data_collection.events_to_frame(data_collection.read_events(collected.parent / "model_outputs"))
    assert len(outputs) == 200 and set(outputs["prediction"]) <= {0, 1}

    fired = clock.advance(days=1)
    assert len(fired) == 1
    assert _wait(ml_client, fired[0]).status == "Completed"
    latest = monitoring.results(ml_client, "screening-monitor", latest=True).set_index("feature")
    assert latest.loc["plasma_glucose_mg_dl", "production_rows"] == 200
    assert latest.loc["plasma_glucose_mg_dl", "breached"] and not latest.loc["bmi", "breached"]
    (alert,) = monitoring.outbox(ml_client).itertuples()
    assert alert.monitor == "screening-monitor" and alert.to == EMAILS and alert.job == fired[0]
    ml_client.schedules.begin_disable("screening-monitor").result()
    ml_client.online_endpoints.begin_delete("screening").result()
