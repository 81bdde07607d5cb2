"""The core: one simulated workspace and what every operation group stands on.

``client`` (``SimMLClient``: the real ``MLClient`` with its groups swapped, by the table in
``groups``), ``store`` (the workspace's SQLite records), ``workspace`` and ``config`` (names, folder,
root), ``provisioning`` (a workspace's first use), ``workspaces`` (``ml_client.workspaces``),
``base`` (the service's errors, pollers, pages, ``SimOperations``), ``credentials`` (fake tokens),
``storage`` and ``fs`` (datastores' folders, ``azureml://`` URIs), ``references`` (asset and job
output references to URIs), ``tracking`` (the ``labkit-sim://`` MLflow store), ``clock`` (the
simulated time).

May import: nothing else of labkit.sim (``labkit.workspace_config`` only). Everything else
imports it.
"""
