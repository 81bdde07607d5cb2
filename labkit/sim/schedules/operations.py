"""``ml_client.schedules``: job schedules that fire pipeline jobs on the simulated clock.

What the service does, and the simulation with it:
- a ``JobSchedule`` runs a pipeline job, given inline (its components, inputs and computes
  are resolved when the schedule is created, as the SDK does) or as an existing job's name.
  The SDK refuses a command job (``Unsupported job type 'CommandJob' in schedule``) unless
  private-preview features are on; the schedule reference says only pipeline jobs are
  supported, so the simulation refuses any other job type in both cases (400);
- triggers: ``RecurrenceTrigger`` and ``CronTrigger``, checked and evaluated by
  ``labkit.sim.schedules.triggers`` (time zones, patterns, start and end times);
- a new schedule is enabled; with no ``start_time`` its first job runs at once (the SDK and the
  schedule reference both say so), the next ones when the trigger falls due;
- jobs it triggers get the display name ``<schedule>-YYYYMMDDThhmmssZ`` (the trigger time, UTC)
  and the schedule's name as experiment when the job names none, as documented; they also carry
  the tag ``azureml.scheduleTrigger.scheduleName`` (seen on Azure in public scripts, not in the
  reference documentation);
- a schedule must be disabled before it is deleted (400 otherwise), as documented.

Time moves only on the simulated clock (``labkit.sim.clock.advance``), which fires what falls
due; ``trigger(name)`` fires an enabled schedule once, now.
"""
from __future__ import annotations

import json
import os
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Optional

from azure.ai.ml._restclient.arm_ml_service.models import ScheduleListViewType
from azure.ai.ml.entities import Job, JobSchedule, MonitorSchedule, PipelineJob, Schedule
from azure.ai.ml.entities._builders import BaseNode
from azure.ai.ml.entities._schedule.schedule import ScheduleTriggerResult
from azure.ai.ml.operations import ScheduleOperations as _SdkScheduleOperations
from azure.core.polling import LROPoller

from labkit.sim.core.base import SimOperations, bad_request, done, not_found, pages, readable, with_service_fields
from labkit.sim.core import clock
from labkit.sim.core.store import load_rest_class
from labkit.sim.jobs.job_state import SCHEDULE_TAG
from labkit.sim.schedules.triggers import Trigger, TriggerError
from labkit.sim.core.workspace import SimWorkspace

KIND = "schedule"
TRIGGER_TIME = re.compile(r"\$\{\{\s*creation_context\.trigger_time\s*\}\}")


class ScheduleOperations(SimOperations, _SdkScheduleOperations):
    """Create, read, enable, disable, delete and trigger schedules of the simulated workspace."""

    # -- helpers ------------------------------------------------------------------------------
    def _jobs(self):
        return self._group("_jobs")

    def _row(self, name: str):
        row = self._store.get(KIND, name)
        if row is None:
            raise not_found(f"Schedule '{name}' was not found in workspace '{self._workspace.name}'.")
        return row

    def _entity(self, row) -> Schedule:
        return Schedule._from_rest_object(with_service_fields(row, self._workspace.child_id("schedules", row.name),
                                                              row.name))

    def _state_path(self, name: str) -> Path:
        return self._workspace.folder / "schedules" / f"{name}.json"

    def _state(self, name: str) -> dict:
        try:
            return json.loads(self._state_path(name).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    def _write_state(self, name: str, state: dict) -> None:
        path = self._state_path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        os.replace(tmp, path)

    def _trigger(self, name: str, payload: dict) -> Trigger:
        created = datetime.fromisoformat(self._state(name)["created"])
        return Trigger.from_rest(payload["properties"]["trigger"], created)

    # -- reading ------------------------------------------------------------------------------
    def get(self, name: str, **kwargs: Any) -> Schedule:
        return self._entity(self._row(name))

    def list(self, *, list_view_type: ScheduleListViewType = ScheduleListViewType.ENABLED_ONLY,
             **kwargs: Any) -> Iterable[Schedule]:
        view = str(getattr(list_view_type, "value", list_view_type) or "EnabledOnly").lower()
        keep = {"enabledonly": lambda enabled: enabled, "disabledonly": lambda enabled: not enabled,
                "all": lambda enabled: True}.get(view)
        if keep is None:
            raise bad_request(f"list_view_type {list_view_type!r} is not one of EnabledOnly, DisabledOnly, All.")
        rows = [r for r in self._store.list(KIND) if keep(bool(r.payload["properties"].get("isEnabled")))]
        return pages(readable(rows, self._entity))

    # -- writing ------------------------------------------------------------------------------
    def begin_create_or_update(self, schedule: Schedule, **kwargs: Any) -> LROPoller[Schedule]:
        if isinstance(schedule, MonitorSchedule):
            from labkit.sim.monitoring.monitors import monitor_payload  # model monitoring (labkit/sim/monitoring/)

            return self._save(schedule.name, monitor_payload(self, schedule))
        if not isinstance(schedule, JobSchedule):
            raise NotImplementedError(
                f"{type(schedule).__name__} is not part of the simulated workspace yet; it schedules job "
                "schedules (JobSchedule) of pipeline jobs and monitors (MonitorSchedule).")
        schedule._validate(raise_error=True)
        if isinstance(schedule.create_job, BaseNode):
            schedule.create_job = schedule.create_job._to_job()
        job = schedule.create_job
        resolved = None
        if isinstance(job, PipelineJob):
            from labkit.sim.jobs.pipeline import resolve

            resolved, _ = resolve(self._jobs(), job)
        payload = schedule._to_rest_object().as_dict()  # the SDK refuses command jobs here
        action = payload["properties"]["action"]
        definition = action["jobDefinition"]
        if str(definition.get("jobType", "")).lower() != "pipeline":
            raise bad_request(f"Schedule '{schedule.name}': only pipeline jobs can be scheduled, not "
                              f"{definition.get('jobType')} jobs.")
        if resolved is not None:
            action["jobDefinition"] = {**resolved["properties"], "sourceJobId": job.id}
        elif isinstance(job, str):
            self._source_job(job)  # it must exist and be a pipeline job
        return self._save(schedule.name, payload)

    def _save(self, name: str, payload: dict) -> LROPoller[Schedule]:
        """Store a schedule's payload as the service does; a new enabled schedule without a start
        time fires at once."""
        now = _now()
        existing = self._store.get(KIND, name)
        props = payload["properties"]
        if props.get("isEnabled") is None:
            props["isEnabled"] = existing.payload["properties"].get("isEnabled", True) if existing else True
        props["provisioningState"] = "Succeeded"
        state = self._state(name) if existing else {}
        state.setdefault("created", now.isoformat())
        try:
            trigger = Trigger.from_rest(props["trigger"] or {}, datetime.fromisoformat(state["created"]))
        except TriggerError as error:
            raise bad_request(f"Schedule '{name}': {error}") from error
        if trigger.end is not None and trigger.end <= now:
            raise bad_request(f"Schedule '{name}': end_time {trigger.end.isoformat()} is in the past.")

        from azure.ai.ml._restclient.arm_ml_service.models import Schedule as RestSchedule

        with self._store.transaction() as db:
            self._store.put(db, KIND, name, "", RestSchedule(payload))
        self._write_state(name, state)
        if existing is None and props["isEnabled"] and not props["trigger"].get("startTime"):
            # No start time: the first job runs at once, the next ones as the trigger falls due.
            self._fire(name, now)
        return done(self.get(name))

    def _set_enabled(self, name: str, enabled: bool) -> LROPoller[Schedule]:
        row = self._row(name)
        payload = row.payload
        payload["properties"]["isEnabled"] = enabled
        with self._store.transaction() as db:
            self._store.put(db, KIND, name, "", load_rest_class(row.rest_class)(payload))
        return done(self.get(name))

    def begin_enable(self, name: str, **kwargs: Any) -> LROPoller[Schedule]:
        return self._set_enabled(name, True)

    def begin_disable(self, name: str, **kwargs: Any) -> LROPoller[Schedule]:
        return self._set_enabled(name, False)

    def begin_delete(self, name: str, **kwargs: Any) -> LROPoller[None]:
        row = self._row(name)
        if row.payload["properties"].get("isEnabled"):
            raise bad_request(f"Schedule '{name}' is enabled; disable it before deleting it.")
        self._store.delete(KIND, name)
        self._state_path(name).unlink(missing_ok=True)
        return done(None)

    def trigger(self, name: str, **kwargs: Any) -> ScheduleTriggerResult:
        row = self._row(name)
        if not row.payload["properties"].get("isEnabled"):
            raise bad_request(f"Schedule '{name}' is disabled; only an enabled schedule can be triggered.")
        schedule_time = kwargs.get("schedule_time")
        moment = datetime.fromisoformat(schedule_time) if schedule_time else _now()
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        job_name = self._fire(name, moment)
        return ScheduleTriggerResult(job_name=job_name, schedule_action_type="CreateJob")

    # -- firing -------------------------------------------------------------------------------
    def _source_job(self, reference: str) -> Job:
        name = reference.removeprefix("azureml:").rstrip("/").rsplit("/jobs/", 1)[-1]
        row = self._store.get("job", name)
        if row is None:
            raise bad_request(f"The schedule's job '{name}' was not found in workspace '{self._workspace.name}'.")
        if row.payload["properties"].get("jobType") != "Pipeline":
            raise bad_request(f"Job '{name}' is a {row.payload['properties'].get('jobType')} job; only pipeline "
                              "jobs can be scheduled.")
        return self._jobs().get(name)

    def _fire(self, name: str, moment: datetime) -> str:
        """Submit the schedule's job as triggered at ``moment``; return the new job's name."""
        schedule = self.get(name)
        if isinstance(schedule, MonitorSchedule):
            from labkit.sim.monitoring.monitors import submit  # a monitor runs as a monitor job

            return self._record_firing(name, moment, submit(self, name, moment))
        job = schedule.create_job
        if isinstance(job, str) or not getattr(job, "jobs", None):
            source = job if isinstance(job, str) else job.id
            job = self._source_job(source)
        job.name = None
        stamp = moment.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        job.display_name = f"{name}-{stamp}"
        job.experiment_name = job.experiment_name or name
        job.tags = {**(job.tags or {}), SCHEDULE_TAG: name}
        for value in (job.inputs or {}).values():
            data = getattr(value, "_data", None)
            if isinstance(data, str) and TRIGGER_TIME.search(data):
                value._data = TRIGGER_TIME.sub(moment.astimezone(timezone.utc).isoformat(), data)
        submitted = self._jobs().create_or_update(job, skip_validation=True)
        return self._record_firing(name, moment, submitted.name)

    def _record_firing(self, name: str, moment: datetime, job_name: str) -> str:
        state = self._state(name)
        state.setdefault("fired", []).append({"time": moment.isoformat(), "job": job_name})
        self._write_state(name, state)
        return job_name


def _now() -> datetime:
    return clock.now()


# -- what the simulated clock asks --------------------------------------------------------------
def due_firings(root: Path, after: datetime, until: datetime) -> list[tuple[datetime, SimWorkspace, str]]:
    """Every (time, workspace, schedule) of the enabled schedules under ``root`` falling due in
    ``(after, until]``, in time order (ties: by workspace, then schedule name)."""
    firings = []
    for folder in sorted(Path(root).iterdir()) if Path(root).is_dir() else []:
        if not (folder / "workspace.db").is_file() or not (folder / "workspace.json").is_file():
            continue
        workspace = SimWorkspace.from_folder(folder)
        ops = ScheduleOperations(workspace, root=root, scope=(workspace.subscription_id, workspace.resource_group))
        for row in workspace.store.list(KIND):
            if not row.payload["properties"].get("isEnabled"):
                continue
            try:
                trigger = ops._trigger(row.name, row.payload)
            except (KeyError, ValueError):
                continue  # a schedule without its creation record cannot be placed in time
            firings.extend((moment, workspace, row.name) for moment in trigger.fire_times(after, until))
    return sorted(firings, key=lambda item: (item[0], item[1].name, item[2]))


def fire(workspace: SimWorkspace, name: str, moment: datetime) -> str:
    ops = ScheduleOperations(workspace, root=workspace.folder.parent,
                             scope=(workspace.subscription_id, workspace.resource_group))
    return ops._fire(name, moment)


def next_fire_time(trigger: Any, after: datetime, created: Optional[datetime] = None) -> Optional[datetime]:
    """When an SDK trigger (``RecurrenceTrigger`` / ``CronTrigger``) next fires after ``after``
    (``created``: the schedule's creation time, its start when it has none)."""
    rest = trigger._to_rest_object().as_dict()
    return Trigger.from_rest(rest, created or after).next_fire_time(after)
