"""Endpoints: ``ml_client.online_endpoints``, ``online_deployments``, ``batch_endpoints``,
``batch_deployments``.

Online: ``online_endpoints`` and ``online_deployments`` (the groups), ``online_runtime`` (the
processes: a front door per endpoint, servers per deployment), ``online_frontdoor`` (auth,
routing, mirroring), ``online_server`` (one instance: azureml-inference-server-http on
127.0.0.1), ``_mlflow_score`` (the no-code MLflow scoring script), ``data_collection`` (a
deployment's data collector). Batch: ``batch_endpoints``, ``batch_deployments``, ``batch_scoring``
(the scoring job's worker). ``deployments``: what both kinds resolve alike.

May import: ``labkit.sim.core``, ``labkit.sim.assets``, ``labkit.sim.compute``, ``labkit.sim.jobs``.
"""
