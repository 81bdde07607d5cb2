# SDK v2: a monitor schedule with signals replaces DataDriftDetector and dataset monitors.
from azure.ai.ml import Input
from azure.ai.ml.entities import (
    AlertNotification, DataDriftMetricThreshold, DataDriftSignal, MonitorDefinition,
    MonitoringTarget, MonitorSchedule, NumericalDriftMetrics, RecurrenceTrigger, ReferenceData,
    ServerlessSparkCompute)

baseline = ReferenceData(input_data=Input(type="mltable", path="azureml:diabetes-table:1"),
                         data_context="training")          # was the baseline dataset
drift = DataDriftSignal(
    reference_data=baseline,                                # production data: the deployment's collected inputs
    metric_thresholds=DataDriftMetricThreshold(
        numerical=NumericalDriftMetrics(jensen_shannon_distance=0.1)),  # was one drift_threshold
    alert_enabled=True,
)
monitor = MonitorSchedule(
    name="diabetes-drift",
    trigger=RecurrenceTrigger(frequency="day", interval=1),  # was frequency="Day"
    create_monitor=MonitorDefinition(
        compute=ServerlessSparkCompute(runtime_version="3.4", instance_type="standard_e4s_v3"),
        monitoring_target=MonitoringTarget(ml_task="classification",
                                           endpoint_deployment_id="azureml:diabetes-endpoint:blue"),
        monitoring_signals={"input-drift": drift},
        alert_notification=AlertNotification(emails=["ml-team@example.com"]),  # was AlertConfiguration
    ),
)
# On Azure: ml_client.schedules.begin_create_or_update(monitor).result()
