"""What a lab reads of a monitor: the simulation's stand-in for the studio's monitoring page.

The SDK has no API for monitoring results (on Azure they are on the studio's monitoring page).
``results(ml_client, monitor_name)`` (every metric of the monitor's runs, from their
``outputs/monitoring_results.csv``), ``outbox(ml_client)`` (the alerts recorded for the
monitors' e-mail addresses), ``plot_metrics`` and ``plot_distribution`` stand in for that page;
they are not part of ``azure-ai-ml`` and do not work against Azure. ``labkit.sim.monitoring``
names them.

May import: as ``labkit.sim.monitoring``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import pandas as pd

from labkit.sim.core import references
from labkit.sim.monitoring.monitor_job import OUTBOX, RESULT_COLUMNS, RESULTS_CSV, RESULTS_JSON


# == what a lab reads (the simulation's stand-in for the studio's monitoring page) ======================
def _workspace_of(ml_client):
    workspace = getattr(ml_client.schedules, "_workspace", None)
    if workspace is None:
        raise TypeError("results(), outbox() and the plots read the simulated workspace: pass a client from "
                        "labkit.connect() or labkit.sim. On Azure, the monitor's results are on the studio's "
                        "Monitoring page.")
    return workspace


def _runs(ml_client, monitor_name: str) -> list[tuple[str, Path]]:
    """(job name, results folder) of every completed run of the monitor, oldest first."""
    workspace = _workspace_of(ml_client)
    ml_client.schedules.get(monitor_name)  # 404 for an unknown monitor
    state_file = workspace.folder / "schedules" / f"{monitor_name}.json"
    try:
        fired = json.loads(state_file.read_text()).get("fired", [])
    except (FileNotFoundError, json.JSONDecodeError):
        fired = []
    runs = []
    for firing in fired:
        try:
            folder = Path(references.local_output_path(workspace, firing["job"], "default")) / "outputs"
        except Exception:
            continue
        if (folder / RESULTS_CSV).is_file():
            runs.append((firing["job"], folder))
    return runs


def results(ml_client, monitor_name: str, *, latest: bool = False) -> pd.DataFrame:
    """The metrics every run of a monitor computed: one row per run, signal, feature and metric.

    Columns: ``monitor``, ``job``, ``trigger_time``, ``signal``, ``signal_type``, ``feature``,
    ``data_type``, ``metric``, ``value`` (a p-value for the two tests), ``statistic`` (the tests'
    statistic), ``threshold``, ``breached``, ``production_rows``, ``reference_rows``,
    ``window_start``, ``window_end``. ``latest=True`` keeps only the most recent run.

    This is the simulated workspace's stand-in for the monitoring page of Azure ML studio: the
    SDK has no API for monitoring results, so this function is not part of ``azure-ai-ml`` and
    does not work against Azure. Each run's file is also in its job's outputs
    (``ml_client.jobs.download(job)`` -> ``artifacts/outputs/monitoring_results.csv``).
    """
    runs = _runs(ml_client, monitor_name)
    if latest:
        runs = runs[-1:]
    frames = [pd.read_csv(folder / RESULTS_CSV) for _, folder in runs]
    if not frames:
        return pd.DataFrame(columns=RESULT_COLUMNS)
    frame = pd.concat(frames, ignore_index=True)
    frame["breached"] = frame["breached"].astype(bool)
    return frame


def outbox(ml_client) -> pd.DataFrame:
    """The alert notifications the simulated workspace recorded (nothing was sent), oldest first:
    ``time``, ``to``, ``subject``, ``body``, ``monitor``, ``signal``, ``job``, ``breaches``.
    Simulation only: on Azure the notifications arrive by email."""
    box = _workspace_of(ml_client).folder / OUTBOX
    messages = [json.loads(p.read_text()) for p in sorted(box.glob("*.json"))] if box.is_dir() else []
    columns = ["time", "to", "subject", "body", "monitor", "signal", "job", "breaches"]
    frame = pd.DataFrame(messages, columns=columns)
    return frame.sort_values(["time", "monitor", "signal"], ignore_index=True) if not frame.empty else frame


def plot_metrics(ml_client, monitor_name: str, signal: Optional[str] = None, job: Optional[str] = None):
    """A matplotlib figure of the latest run's (or ``job``'s) metrics: one panel per signal, a bar per
    feature and metric, the threshold as a line, breaching bars in red. Simulation only (the
    studio's monitoring page draws these on Azure)."""
    import matplotlib.pyplot as plt

    frame = results(ml_client, monitor_name)
    if job:
        frame = frame[frame["job"] == job]
    elif not frame.empty:
        frame = frame[frame["job"] == frame["job"].iloc[-1]]
    if signal:
        frame = frame[frame["signal"] == signal]
    signals = list(dict.fromkeys(frame["signal"])) or ["(no runs yet)"]
    figure, axes = plt.subplots(len(signals), 1, figsize=(8, 2.6 * len(signals)), squeeze=False)
    for axis, name in zip(axes[:, 0], signals):
        rows = frame[frame["signal"] == name]
        labels = [f"{r.feature}\n{r.metric}" for r in rows.itertuples()]
        colours = ["tab:red" if b else "tab:blue" for b in rows["breached"]]
        axis.bar(range(len(rows)), rows["value"].fillna(0), color=colours)
        for position, threshold in enumerate(rows["threshold"]):
            if not pd.isna(threshold):
                axis.hlines(threshold, position - 0.4, position + 0.4, colors="black", linestyles="dashed")
        axis.set_xticks(range(len(rows)), labels, fontsize=7)
        axis.set_title(f"{monitor_name} / {name}" + (f" ({rows['signal_type'].iloc[0]})" if len(rows) else ""))
        axis.set_ylabel("value")
    figure.tight_layout()
    return figure


def plot_distribution(ml_client, monitor_name: str, signal: str, feature: str, job: Optional[str] = None):
    """A matplotlib figure comparing a feature's reference and production distributions in the latest
    run (or ``job``): the shared histogram bins, or the categories. Simulation only."""
    import matplotlib.pyplot as plt

    runs = _runs(ml_client, monitor_name)
    if job:
        runs = [r for r in runs if r[0] == job]
    if not runs:
        raise ValueError(f"Monitor '{monitor_name}' has no completed run{' ' + job if job else ''} yet.")
    data = json.loads((runs[-1][1] / RESULTS_JSON).read_text())
    found = (data.get("distributions") or {}).get(signal, {}).get(feature)
    if not found or "reference" not in found:
        raise ValueError(f"No distribution of feature '{feature}' in signal '{signal}' of run {runs[-1][0]}.")
    ref = pd.Series(found["reference"], dtype=float)
    prod = pd.Series(found["production"], dtype=float)
    ref_share, prod_share = ref / max(ref.sum(), 1), prod / max(prod.sum(), 1)
    figure, axis = plt.subplots(figsize=(7, 3))
    if found["data_type"] == "Numerical":
        edges = found["edges"]
        centres = [(a + b) / 2 for a, b in zip(edges[:-1], edges[1:])]
        width = (edges[1] - edges[0]) * 0.4 if len(edges) > 1 else 0.4
        axis.bar([c - width / 2 for c in centres], ref_share, width=width, label="reference")
        axis.bar([c + width / 2 for c in centres], prod_share, width=width, label="production")
    else:
        positions = range(len(found["categories"]))
        axis.bar([p - 0.2 for p in positions], ref_share, width=0.4, label="reference")
        axis.bar([p + 0.2 for p in positions], prod_share, width=0.4, label="production")
        axis.set_xticks(list(positions), found["categories"])
    axis.set_title(f"{feature}: reference vs production ({signal})")
    axis.set_ylabel("share of rows")
    axis.legend()
    figure.tight_layout()
    return figure
