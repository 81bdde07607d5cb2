"""Schedules: ``ml_client.schedules`` (job schedules of pipeline jobs, and monitors), their
``triggers`` (recurrence and cron, in the service's time zones), and ``clock.advance``, which
moves the simulated time and fires what falls due.

May import: every folder below it (``core``, ``assets``, ``compute``, ``jobs``, ``endpoints``,
``monitoring``): a schedule submits pipeline jobs and monitor jobs.
"""
