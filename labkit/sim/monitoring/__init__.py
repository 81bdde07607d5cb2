"""Model monitoring: ``MonitorSchedule`` signals computed by monitor jobs, and their results.

``monitors`` (creating a monitor through ``schedules``, firing it), ``monitor_job`` (the monitor
job: windows, features, thresholds, alerts), ``drift_metrics`` (the service's metrics),
``studio`` (what a lab reads). This package is also the public ``labkit.sim.monitoring`` the
labs use: ``results``, ``outbox``, ``plot_metrics`` and ``plot_distribution`` stand in for the
studio's monitoring page.

May import: ``labkit.sim.core``, ``labkit.sim.assets``, ``labkit.sim.jobs``, ``labkit.sim.endpoints``
(a monitor reads a deployment's collected data).
"""
from labkit.sim.monitoring.studio import outbox, plot_distribution, plot_metrics, results

__all__ = ["outbox", "plot_distribution", "plot_metrics", "results"]
