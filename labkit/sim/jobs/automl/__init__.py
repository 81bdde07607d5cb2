"""Automated ML (``automl.classification``, ``regression``, ``forecasting``) as the service runs it.

``submission`` accepts the job (the notebook's process); ``search`` is the parent's worker: it
reads and prepares the data (``data``: the plan, featurization settings, validation), searches
over the service's algorithms (``algorithms``) scoring each trial with the service's metrics
(``metrics``), adds the ensembles (``ensembles``) and leaves the best model and the parent's
record of it (``best_model``). ``runtime/`` is what the best model carries with it (its
featurization, and the ``outputs/`` folder as Azure's AutoML writes it).

May import: as ``labkit.sim.jobs``.
"""
