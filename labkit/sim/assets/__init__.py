"""Assets: ``ml_client.data``, ``models``, ``environments``, ``components``, ``datastores``.

``shared`` holds what versioned assets share (versions, labels, archiving, uploads);
``mlflow_registry`` is MLflow's model registry over the workspace's models; ``curated`` and
``conda`` are the curated environments and what an environment's conda file asks for.

May import: ``labkit.sim.core``.
"""
