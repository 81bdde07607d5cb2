"""Jobs: ``ml_client.jobs`` and what runs them.

``operations`` (the group: submit, get, list, stream, download, cancel), ``job_state`` (a job's
record, status and folder, shared by the front end and the worker), ``job_runner`` (the worker
process of one job), ``warm_worker`` and ``warm_server`` (workers forked from a shared process that
has done the imports), ``sweep/`` (submission, sampling, early termination, running the trials),
``pipeline`` and ``automl/`` (submission, data preparation, the search, its metrics and
ensembles, the best model and what it writes).

May import: ``labkit.sim.core``, ``labkit.sim.assets``, ``labkit.sim.compute``. The job runner
names the runners of other kinds of parent job (batch scoring, monitors) by module path, in
``job_runner.JOB_TYPE_RUNNERS``, without importing them.
"""
