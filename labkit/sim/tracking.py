"""The MLflow store plugins' entry module: ``labkit.sim.tracking:tracking_store`` and
``:registry_store``, as pyproject.toml registers them for the ``labkit-sim://`` scheme.

MLflow loads its plugins while it imports itself, so this module imports no MLflow at import
time: the tracking store is ``labkit.sim.core.tracking``'s (MLflow-free until called), and the
model registry (``labkit.sim.assets.mlflow_registry``, which needs MLflow's classes) is imported
on the first call.
"""
from labkit.sim.core.tracking import tracking_store, tracking_uri

__all__ = ["registry_store", "tracking_store", "tracking_uri"]


def registry_store(store_uri: str, tracking_uri: str | None = None):
    """The workspace's model registry, which MLflow and ``ml_client.models`` share."""
    from labkit.sim.assets.mlflow_registry import registry_store as workspace_registry_store

    return workspace_registry_store(store_uri, tracking_uri)
