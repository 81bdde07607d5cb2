"""Schedules on the simulated workspace: when triggers fire, and schedules firing on the clock."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from azure.ai.ml import command, dsl
from azure.ai.ml.constants import TimeZone
from azure.ai.ml.entities import CronTrigger, JobSchedule, RecurrencePattern, RecurrenceTrigger
from azure.ai.ml.exceptions import ValidationException
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from helpers import write_files
from labkit.sim import clock
from labkit.sim.schedules.triggers import Trigger, TriggerError, zone

UTC = timezone.utc
ENV = "azureml:AzureML-sklearn-1.5@latest"


def utc(*parts) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def fires(trigger, after: datetime, until: datetime, created: datetime | None = None) -> list[datetime]:
    return Trigger.from_rest(trigger._to_rest_object().as_dict(), created or after).fire_times(after, until)


# -- when triggers fire (pure computations, hand-checked times) ---------------------------------
def test_daily_recurrence_without_pattern_repeats_the_start_time():
    trigger = RecurrenceTrigger(frequency="day", interval=1, start_time="2024-01-10T09:15:00")
    assert fires(trigger, utc(2024, 1, 9), utc(2024, 1, 12)) == [utc(2024, 1, 10, 9, 15), utc(2024, 1, 11, 9, 15)]


def test_minute_and_hour_recurrences_count_elapsed_time_from_the_start():
    hourly = RecurrenceTrigger(frequency="hour", interval=5, start_time="2024-01-01T00:10:00")
    assert fires(hourly, utc(2024, 1, 1, 1), utc(2024, 1, 1, 16)) == [utc(2024, 1, 1, 5, 10), utc(2024, 1, 1, 10, 10),
                                                                      utc(2024, 1, 1, 15, 10)]
    every_15 = RecurrenceTrigger(frequency="minute", interval=15, start_time="2024-01-01T00:00:00")
    assert fires(every_15, utc(2024, 1, 1, 0, 20), utc(2024, 1, 1, 1)) == [utc(2024, 1, 1, 0, 30),
                                                                           utc(2024, 1, 1, 0, 45), utc(2024, 1, 1, 1)]


def test_daily_pattern_every_other_day_from_the_start():
    trigger = RecurrenceTrigger(frequency="day", interval=2, start_time="2024-03-01T12:00:00",
                                schedule=RecurrencePattern(hours=[9, 17], minutes=[0, 30]))
    assert fires(trigger, utc(2024, 2, 28), utc(2024, 3, 4)) == [
        utc(2024, 3, 1, 17), utc(2024, 3, 1, 17, 30),  # 9:00 and 9:30 on the 1st are before the start
        utc(2024, 3, 3, 9), utc(2024, 3, 3, 9, 30), utc(2024, 3, 3, 17), utc(2024, 3, 3, 17, 30)]


def test_weekly_pattern_on_week_days_every_second_week():
    weekly = RecurrenceTrigger(frequency="week", interval=1, start_time="2024-01-03T00:00:00",  # a Wednesday
                               schedule=RecurrencePattern(hours=8, minutes=0, week_days=["monday", "friday"]))
    assert fires(weekly, utc(2024, 1, 1), utc(2024, 1, 13)) == [utc(2024, 1, 5, 8), utc(2024, 1, 8, 8),
                                                                utc(2024, 1, 12, 8)]
    fortnightly = RecurrenceTrigger(frequency="week", interval=2, start_time="2024-01-03T00:00:00",
                                    schedule=RecurrencePattern(hours=8, minutes=0, week_days=["monday", "friday"]))
    assert fires(fortnightly, utc(2024, 1, 1), utc(2024, 1, 20)) == [utc(2024, 1, 5, 8), utc(2024, 1, 15, 8),
                                                                     utc(2024, 1, 19, 8)]


def test_monthly_on_the_31st_skips_shorter_months():
    trigger = RecurrenceTrigger(frequency="month", interval=1, start_time="2024-01-01T00:00:00",
                                schedule=RecurrencePattern(hours=6, minutes=0, month_days=31))
    assert fires(trigger, utc(2024, 1, 1), utc(2024, 6, 30)) == [utc(2024, 1, 31, 6), utc(2024, 3, 31, 6),
                                                                 utc(2024, 5, 31, 6)]


def test_time_zones_follow_daylight_saving_time():
    pacific = RecurrenceTrigger(frequency="day", interval=1, start_time="2024-01-01T00:00:00",
                                schedule=RecurrencePattern(hours=9, minutes=0), time_zone=TimeZone.PACIFIC_STANDARD_TIME)
    assert fires(pacific, utc(2024, 1, 15), utc(2024, 1, 16)) == [utc(2024, 1, 15, 17)]  # 9:00 PST
    assert fires(pacific, utc(2024, 7, 15), utc(2024, 7, 16)) == [utc(2024, 7, 15, 16)]  # 9:00 PDT
    eastern = RecurrenceTrigger(frequency="day", interval=1, start_time="2024-03-01T09:00:00",
                                time_zone="Eastern Standard Time")
    assert fires(eastern, utc(2024, 3, 9), utc(2024, 3, 12)) == [utc(2024, 3, 9, 14), utc(2024, 3, 10, 13),
                                                                 utc(2024, 3, 11, 13)]


def test_wall_clock_times_that_do_not_exist_are_skipped_and_repeated_ones_fire_once():
    spring = RecurrenceTrigger(frequency="day", interval=1, start_time="2024-03-01T00:00:00",
                               schedule=RecurrencePattern(hours=2, minutes=30), time_zone="Eastern Standard Time")
    # 2024-03-10 02:30 does not exist in New York (clocks jump from 2:00 to 3:00).
    assert fires(spring, utc(2024, 3, 9), utc(2024, 3, 12)) == [utc(2024, 3, 9, 7, 30), utc(2024, 3, 11, 6, 30)]
    autumn = RecurrenceTrigger(frequency="day", interval=1, start_time="2024-10-01T00:00:00",
                               schedule=RecurrencePattern(hours=1, minutes=30), time_zone="Eastern Standard Time")
    # 2024-11-03 01:30 happens twice (EDT, then EST): it fires at the first.
    assert fires(autumn, utc(2024, 11, 2), utc(2024, 11, 5)) == [utc(2024, 11, 2, 5, 30), utc(2024, 11, 3, 5, 30),
                                                                 utc(2024, 11, 4, 6, 30)]


def test_start_time_with_an_offset_and_end_time():
    trigger = RecurrenceTrigger(frequency="day", interval=1, start_time="2024-05-10T10:15:00-04:00",
                                end_time="2024-05-12T10:00:00-04:00")
    assert fires(trigger, utc(2024, 5, 1), utc(2024, 6, 1)) == [utc(2024, 5, 10, 14, 15), utc(2024, 5, 11, 14, 15)]
    rest = trigger._to_rest_object().as_dict()
    assert Trigger.from_rest(rest, utc(2024, 5, 1)).next_fire_time(utc(2024, 5, 11, 15)) is None


def test_cron_expressions():
    weekdays = CronTrigger(expression="*/20 9-10 * * 1-5", start_time="2024-01-01T00:00:00")
    assert fires(weekdays, utc(2024, 1, 8), utc(2024, 1, 8, 23)) == [
        utc(2024, 1, 8, 9), utc(2024, 1, 8, 9, 20), utc(2024, 1, 8, 9, 40),
        utc(2024, 1, 8, 10), utc(2024, 1, 8, 10, 20), utc(2024, 1, 8, 10, 40)]
    assert fires(weekdays, utc(2024, 1, 13), utc(2024, 1, 15)) == []  # a weekend
    sundays = CronTrigger(expression="0 9 * * SUN", start_time="2024-01-01T00:00:00")
    assert Trigger.from_rest(sundays._to_rest_object().as_dict(), utc(2024, 1, 1)).next_fire_time(
        utc(2024, 1, 10)) == utc(2024, 1, 14, 9)
    tokyo = CronTrigger(expression="0 9 * * *", start_time="2024-01-01T00:00:00", time_zone="Tokyo Standard Time")
    assert fires(tokyo, utc(2024, 1, 4, 12), utc(2024, 1, 5, 12)) == [utc(2024, 1, 5, 0)]


def test_cron_days_and_months_are_treated_as_any_as_the_service_documents():
    yearly_looking = CronTrigger(expression="0 12 1 JAN *", start_time="2024-03-01T00:00:00")
    assert fires(yearly_looking, utc(2024, 3, 5), utc(2024, 3, 7)) == [utc(2024, 3, 5, 12), utc(2024, 3, 6, 12)]


@pytest.mark.parametrize("expression", ["61 * * * *", "* * * *", "0 9 * * 7", "0 25 * * *", "0 9 32 * *",
                                        "*/0 * * * *", "5-1 * * * *", "0 9 * * FUNDAY"])
def test_invalid_cron_expressions_are_refused(expression):
    with pytest.raises(TriggerError):
        Trigger.from_rest(CronTrigger(expression=expression)._to_rest_object().as_dict(), utc(2024, 1, 1))


def test_patterns_only_where_the_service_takes_them():
    hourly = RecurrenceTrigger(frequency="hour", interval=1, schedule=RecurrencePattern(hours=3, minutes=0))
    with pytest.raises(TriggerError, match="day, week and month"):
        Trigger.from_rest(hourly._to_rest_object().as_dict(), utc(2024, 1, 1))
    daily = RecurrenceTrigger(frequency="day", interval=1,
                              schedule=RecurrencePattern(hours=3, minutes=0, week_days="monday"))
    with pytest.raises(TriggerError, match="hours and minutes only"):
        Trigger.from_rest(daily._to_rest_object().as_dict(), utc(2024, 1, 1))


def test_every_sdk_time_zone_is_known():
    for value in TimeZone:
        assert zone(value.value) is not None
    with pytest.raises(TriggerError):
        zone("Europe/Paris")  # the service takes Windows names


# -- schedules of a workspace -------------------------------------------------------------------
@pytest.fixture
def pipeline_job(tmp_path):
    src = write_files(tmp_path / "src", {"hello.py": "print('hello from a scheduled pipeline')\n"})
    hello = command(name="hello", code=str(src), command="python hello.py", environment=ENV)

    @dsl.pipeline(default_compute="serverless", experiment_name="nightly")
    def nightly():
        hello()

    return nightly


def cancel_all(ml_client):
    """The fired jobs are real processes; the tests check what was submitted, not the runs."""
    for job in ml_client.jobs.list():
        if job.status not in ("Completed", "Failed", "Canceled"):
            try:
                ml_client.jobs.begin_cancel(job.name)
            except HttpResponseError:
                pass


def test_create_get_list_disable_enable_delete(ml_client, pipeline_job):
    start = (clock.now() + timedelta(days=1)).replace(tzinfo=None, microsecond=0)
    schedule = JobSchedule(name="nightly_retrain", create_job=pipeline_job(),
                           trigger=CronTrigger(expression="0 2 * * *", start_time=start, time_zone="UTC"))
    created = ml_client.schedules.begin_create_or_update(schedule).result()
    assert created.name == "nightly_retrain" and created.is_enabled
    assert created.provisioning_state == "Succeeded"
    got = ml_client.schedules.get("nightly_retrain")
    assert got.trigger.expression == "0 2 * * *" and got.create_job.type == "pipeline"
    assert [s.name for s in ml_client.schedules.list()] == ["nightly_retrain"]
    assert list(ml_client.jobs.list()) == []  # a start time in the future: nothing runs yet

    with pytest.raises(HttpResponseError, match="disable it"):
        ml_client.schedules.begin_delete("nightly_retrain").result()
    assert ml_client.schedules.begin_disable("nightly_retrain").result().is_enabled is False
    assert list(ml_client.schedules.list()) == []
    from azure.ai.ml._restclient.arm_ml_service.models import ScheduleListViewType

    assert [s.name for s in ml_client.schedules.list(list_view_type=ScheduleListViewType.DISABLED_ONLY)] == [
        "nightly_retrain"]
    assert ml_client.schedules.begin_enable("nightly_retrain").result().is_enabled is True
    ml_client.schedules.begin_disable("nightly_retrain").result()
    ml_client.schedules.begin_delete("nightly_retrain").result()
    with pytest.raises(ResourceNotFoundError):
        ml_client.schedules.get("nightly_retrain")


def test_the_clock_fires_due_schedules_in_order(ml_client, pipeline_job):
    now = clock.now()
    start = (now + timedelta(hours=1)).replace(microsecond=0)
    daily = JobSchedule(name="daily", create_job=pipeline_job(),
                        trigger=RecurrenceTrigger(frequency="day", interval=1, start_time=start.replace(tzinfo=None)))
    paused = JobSchedule(name="paused", create_job=pipeline_job(),
                         trigger=RecurrenceTrigger(frequency="hour", interval=6, start_time=start.replace(tzinfo=None)))
    ending = JobSchedule(name="ending", create_job=pipeline_job(),
                         trigger=RecurrenceTrigger(frequency="day", interval=1, start_time=start.replace(tzinfo=None),
                                                   end_time=(start + timedelta(hours=12)).replace(tzinfo=None)))
    for schedule in (daily, paused, ending):
        ml_client.schedules.begin_create_or_update(schedule).result()
    ml_client.schedules.begin_disable("paused").result()
    try:
        fired = clock.advance(days=2)
        assert clock.now() >= now + timedelta(days=2)
        jobs = {job.name: job for job in ml_client.jobs.list()}
        assert sorted(fired) == sorted(jobs)
        stamps = [start, start, start + timedelta(days=1)]  # daily twice, ending once, paused never
        names = ["daily", "ending", "daily"]
        assert [jobs[name].display_name for name in fired] == [
            f"{schedule}-{moment.astimezone(timezone.utc):%Y%m%dT%H%M%SZ}" for schedule, moment in zip(names, stamps)]
        for name, schedule in zip(fired, names):
            job = jobs[name]
            assert job.type == "pipeline" and job.experiment_name == "nightly"
            assert job.tags["azureml.scheduleTrigger.scheduleName"] == schedule
        assert clock.advance(minutes=30) == []  # the next daily run is an hour after the window
    finally:
        cancel_all(ml_client)


def test_without_start_time_the_first_job_runs_at_once_and_existing_jobs_can_be_scheduled(ml_client, pipeline_job):
    try:
        first = ml_client.jobs.create_or_update(pipeline_job())
        schedule = JobSchedule(name="again", create_job=first.name,
                               trigger=RecurrenceTrigger(frequency="week", interval=1))
        ml_client.schedules.begin_create_or_update(schedule).result()
        triggered = [j for j in ml_client.jobs.list() if j.name != first.name]
        assert len(triggered) == 1 and triggered[0].display_name.startswith("again-")
        assert [c.name for c in triggered[0].jobs.values()] == [c.name for c in first.jobs.values()]
        assert len(clock.advance(weeks=1)) == 1
        result = ml_client.schedules.trigger("again")
        assert ml_client.jobs.get(result.job_name).tags["azureml.scheduleTrigger.scheduleName"] == "again"
    finally:
        cancel_all(ml_client)


def test_refusals(ml_client, pipeline_job, tmp_path):
    src = tmp_path / "src"
    job = command(code=str(src), command="python hello.py", environment=ENV)
    with pytest.raises(ValidationException, match="Unsupported job type"):
        ml_client.schedules.begin_create_or_update(
            JobSchedule(name="cmd", create_job=job, trigger=CronTrigger(expression="0 9 * * *")))
    with pytest.raises(HttpResponseError, match="Cron minutes"):
        ml_client.schedules.begin_create_or_update(
            JobSchedule(name="bad", create_job=pipeline_job(), trigger=CronTrigger(expression="75 9 * * *")))
    with pytest.raises(HttpResponseError, match="not found"):
        ml_client.schedules.begin_create_or_update(
            JobSchedule(name="ghost", create_job="no_such_job", trigger=CronTrigger(expression="0 9 * * *")))
    with pytest.raises(HttpResponseError, match="in the past"):
        ml_client.schedules.begin_create_or_update(JobSchedule(
            name="over", create_job=pipeline_job(),
            trigger=CronTrigger(expression="0 9 * * *", start_time="2020-01-01T00:00:00", end_time="2020-02-01T00:00:00")))
    with pytest.raises(ResourceNotFoundError):
        ml_client.schedules.get("cmd")
    assert list(ml_client.schedules.list(list_view_type="All")) == []
    assert list(ml_client.jobs.list()) == []
