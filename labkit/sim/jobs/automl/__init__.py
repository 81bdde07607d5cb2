"""Automated ML (``automl.classification``, ``regression``, ``forecasting``) as the service runs it.

``search`` submits the job and runs the search in its worker; ``runtime/`` is what the best model
carries with it (its featurization, and the ``outputs/`` folder as Azure's AutoML writes it).

May import: as ``labkit.sim.jobs``.
"""
