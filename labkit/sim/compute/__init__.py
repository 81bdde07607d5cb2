"""Compute: ``ml_client.compute`` (clusters, instances, attached Kubernetes) and ``vm_sizes``,
the table of real VM sizes they are checked against.

May import: ``labkit.sim.core``.
"""
