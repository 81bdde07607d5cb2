"""When a schedule fires: recurrence and cron triggers, in the schedule's time zone.

The service takes Windows time-zone names ("Pacific Standard Time", the values of the SDK's
``TimeZone`` enum); they are mapped here to IANA zones (Unicode CLDR's windowsZones mapping,
territory 001) so ``zoneinfo`` can apply each zone's daylight-saving rules.

Rules, as the schedule documentation gives them:
- ``start_time`` with an offset is that instant; without one it is a wall-clock time in the
  trigger's time zone; omitted, it is the schedule's creation time. Times before the start
  never fire ("if the start time is in the past, the first job runs at the next calculated
  run time"); times after ``end_time`` never fire.
- Recurrence without a pattern fires at the start time and every ``interval`` units after it
  (minutes and hours as elapsed time; days, weeks and months on the wall clock, so a daily
  9:00 stays 9:00 across a daylight-saving change).
- A pattern (``hours``, ``minutes``, ``week_days``; ``month_days`` for monthly) is allowed for
  day, week and month frequencies; a field left empty takes the start time's value. Every
  ``interval``-th day / week (Monday-based) / month counted from the start is eligible; a
  month without the given day (the 31st in April) does not fire.
- Cron: five fields ``MINUTES HOURS DAYS MONTHS DAYS-OF-WEEK`` (``*``, lists, ranges, steps,
  day and month names; days of week 0-6, 0 = Sunday). The documentation states that DAYS and
  MONTHS values are not supported and are treated as ``*``; the SDK's docstring calls the
  format NCronTab (which has them). The service's documented behaviour wins: they are parsed
  (an invalid value is refused) and then ignored.
- Not documented, chosen here: a wall-clock time that does not exist in the zone (skipped by a
  spring-forward change) does not fire; one that occurs twice (fall back) fires once, at its
  first occurrence.
"""
from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Iterator, Optional
from zoneinfo import ZoneInfo

UTC = timezone.utc
WEEK_DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
FREQUENCIES = ("minute", "hour", "day", "week", "month")
# Windows time-zone name (what the service takes) -> IANA zone.
WINDOWS_ZONES = {
    "Dateline Standard Time": "Etc/GMT+12", "UTC-11": "Etc/GMT+11", "Aleutian Standard Time": "America/Adak",
    "Hawaiian Standard Time": "Pacific/Honolulu", "Marquesas Standard Time": "Pacific/Marquesas",
    "Alaskan Standard Time": "America/Anchorage", "UTC-09": "Etc/GMT+9",
    "Pacific Standard Time (Mexico)": "America/Tijuana", "UTC-08": "Etc/GMT+8",
    "Pacific Standard Time": "America/Los_Angeles", "US Mountain Standard Time": "America/Phoenix",
    "Mountain Standard Time (Mexico)": "America/Mazatlan", "Mountain Standard Time": "America/Denver",
    "Central America Standard Time": "America/Guatemala", "Central Standard Time": "America/Chicago",
    "Easter Island Standard Time": "Pacific/Easter", "Central Standard Time (Mexico)": "America/Mexico_City",
    "Canada Central Standard Time": "America/Regina", "SA Pacific Standard Time": "America/Bogota",
    "Eastern Standard Time (Mexico)": "America/Cancun", "Eastern Standard Time": "America/New_York",
    "Haiti Standard Time": "America/Port-au-Prince", "Cuba Standard Time": "America/Havana",
    "US Eastern Standard Time": "America/Indianapolis", "Paraguay Standard Time": "America/Asuncion",
    "Atlantic Standard Time": "America/Halifax", "Venezuela Standard Time": "America/Caracas",
    "Central Brazilian Standard Time": "America/Cuiaba", "SA Western Standard Time": "America/La_Paz",
    "Pacific SA Standard Time": "America/Santiago", "Turks And Caicos Standard Time": "America/Grand_Turk",
    "Newfoundland Standard Time": "America/St_Johns", "Tocantins Standard Time": "America/Araguaina",
    "E. South America Standard Time": "America/Sao_Paulo", "SA Eastern Standard Time": "America/Cayenne",
    "Argentina Standard Time": "America/Buenos_Aires", "Greenland Standard Time": "America/Godthab",
    "Montevideo Standard Time": "America/Montevideo", "Saint Pierre Standard Time": "America/Miquelon",
    "Bahia Standard Time": "America/Bahia", "UTC-02": "Etc/GMT+2", "Mid-Atlantic Standard Time": "Etc/GMT+2",
    "Azores Standard Time": "Atlantic/Azores", "Cape Verde Standard Time": "Atlantic/Cape_Verde",
    "UTC": "Etc/UTC", "Morocco Standard Time": "Africa/Casablanca", "GMT Standard Time": "Europe/London",
    "Greenwich Standard Time": "Atlantic/Reykjavik", "W. Europe Standard Time": "Europe/Berlin",
    "Central Europe Standard Time": "Europe/Budapest", "Romance Standard Time": "Europe/Paris",
    "Central European Standard Time": "Europe/Warsaw", "W. Central Africa Standard Time": "Africa/Lagos",
    "Namibia Standard Time": "Africa/Windhoek", "Jordan Standard Time": "Asia/Amman",
    "GTB Standard Time": "Europe/Bucharest", "Middle East Standard Time": "Asia/Beirut",
    "Egypt Standard Time": "Africa/Cairo", "E. Europe Standard Time": "Europe/Chisinau",
    "Syria Standard Time": "Asia/Damascus", "West Bank Standard Time": "Asia/Hebron",
    "South Africa Standard Time": "Africa/Johannesburg", "FLE Standard Time": "Europe/Kiev",
    "Turkey Standard Time": "Europe/Istanbul", "Israel Standard Time": "Asia/Jerusalem",
    "Kaliningrad Standard Time": "Europe/Kaliningrad", "Libya Standard Time": "Africa/Tripoli",
    "Arabic Standard Time": "Asia/Baghdad", "Arab Standard Time": "Asia/Riyadh",
    "Belarus Standard Time": "Europe/Minsk", "Russian Standard Time": "Europe/Moscow",
    "E. Africa Standard Time": "Africa/Nairobi", "Iran Standard Time": "Asia/Tehran",
    "Arabian Standard Time": "Asia/Dubai", "Astrakhan Standard Time": "Europe/Astrakhan",
    "Azerbaijan Standard Time": "Asia/Baku", "Russia Time Zone 3": "Europe/Samara",
    "Mauritius Standard Time": "Indian/Mauritius", "Georgian Standard Time": "Asia/Tbilisi",
    "Caucasus Standard Time": "Asia/Yerevan", "Afghanistan Standard Time": "Asia/Kabul",
    "West Asia Standard Time": "Asia/Tashkent", "Ekaterinburg Standard Time": "Asia/Yekaterinburg",
    "Pakistan Standard Time": "Asia/Karachi", "India Standard Time": "Asia/Calcutta",
    "Sri Lanka Standard Time": "Asia/Colombo", "Nepal Standard Time": "Asia/Katmandu",
    "Central Asia Standard Time": "Asia/Bishkek", "Bangladesh Standard Time": "Asia/Dhaka",
    "N. Central Asia Standard Time": "Asia/Novosibirsk", "Myanmar Standard Time": "Asia/Rangoon",
    "SE Asia Standard Time": "Asia/Bangkok", "Altai Standard Time": "Asia/Barnaul",
    "W. Mongolia Standard Time": "Asia/Hovd", "North Asia Standard Time": "Asia/Krasnoyarsk",
    "Tomsk Standard Time": "Asia/Tomsk", "China Standard Time": "Asia/Shanghai",
    "North Asia East Standard Time": "Asia/Irkutsk", "Singapore Standard Time": "Asia/Singapore",
    "W. Australia Standard Time": "Australia/Perth", "Taipei Standard Time": "Asia/Taipei",
    "Ulaanbaatar Standard Time": "Asia/Ulaanbaatar", "North Korea Standard Time": "Asia/Pyongyang",
    "Aus Central W. Standard Time": "Australia/Eucla", "Transbaikal Standard Time": "Asia/Chita",
    "Tokyo Standard Time": "Asia/Tokyo", "Korea Standard Time": "Asia/Seoul",
    "Yakutsk Standard Time": "Asia/Yakutsk", "Cen. Australia Standard Time": "Australia/Adelaide",
    "AUS Central Standard Time": "Australia/Darwin", "E. Australia Standard Time": "Australia/Brisbane",
    "AUS Eastern Standard Time": "Australia/Sydney", "West Pacific Standard Time": "Pacific/Port_Moresby",
    "Tasmania Standard Time": "Australia/Hobart", "Vladivostok Standard Time": "Asia/Vladivostok",
    "Lord Howe Standard Time": "Australia/Lord_Howe", "Bougainville Standard Time": "Pacific/Bougainville",
    "Russia Time Zone 10": "Asia/Srednekolymsk", "Magadan Standard Time": "Asia/Magadan",
    "Norfolk Standard Time": "Pacific/Norfolk", "Sakhalin Standard Time": "Asia/Sakhalin",
    "Central Pacific Standard Time": "Pacific/Guadalcanal", "Russia Time Zone 11": "Asia/Kamchatka",
    "New Zealand Standard Time": "Pacific/Auckland", "UTC+12": "Etc/GMT-12",
    "Fiji Standard Time": "Pacific/Fiji", "Kamchatka Standard Time": "Asia/Kamchatka",
    "Chatham Islands Standard Time": "Pacific/Chatham", "Tonga Standard Time": "Pacific/Tongatapu",
    "Samoa Standard Time": "Pacific/Apia", "Line Islands Standard Time": "Pacific/Kiritimati",
}
CRON_DAY_NAMES = {"SUN": 0, "MON": 1, "TUE": 2, "WED": 3, "THU": 4, "FRI": 5, "SAT": 6}
CRON_MONTH_NAMES = {name.upper(): number for number, name in enumerate(calendar.month_abbr) if name}


class TriggerError(ValueError):
    """A trigger the service would refuse (the message says why)."""


def zone(name: Optional[str]) -> ZoneInfo:
    name = str(getattr(name, "value", name) or "UTC")
    if name not in WINDOWS_ZONES:
        raise TriggerError(f"Time zone {name!r} is not supported; use a value of azure.ai.ml.constants.TimeZone "
                           "(Windows time-zone names such as 'Pacific Standard Time').")
    return ZoneInfo(WINDOWS_ZONES[name])


def _instant(value: Any, tz: ZoneInfo) -> Optional[datetime]:
    """A start or end time: an offset makes it an instant; without one it is wall-clock in ``tz``."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value).strip())
        except ValueError as error:
            raise TriggerError(f"{value!r} is not a date and time (use ISO 8601, e.g. 2024-05-10T10:15:00).") from error
    if moment.tzinfo is None:
        moment = _localize(moment, tz) or moment.replace(tzinfo=tz)
    return moment.astimezone(UTC)


def _localize(wall: datetime, tz: ZoneInfo) -> Optional[datetime]:
    """``wall`` in ``tz`` as an instant; None when that wall-clock time does not exist there."""
    first = wall.replace(tzinfo=tz, fold=0)
    back = first.astimezone(UTC).astimezone(tz).replace(tzinfo=None)
    return first if back == wall.replace(tzinfo=None) else None


@dataclass
class Trigger:
    """A trigger as stored (the REST payload's ``trigger``), ready to compute fire times."""

    kind: str  # "recurrence" or "cron"
    tz: ZoneInfo
    start: datetime  # UTC
    end: Optional[datetime]
    frequency: str = ""
    interval: int = 1
    hours: tuple = ()
    minutes: tuple = ()
    week_days: tuple = ()
    month_days: tuple = ()
    cron: Optional[tuple] = None  # (minutes, hours, days of week) as sets

    @classmethod
    def from_rest(cls, rest: dict, created: datetime) -> "Trigger":
        """``rest``: the stored trigger (camelCase, as the SDK serialises it); ``created``: the
        schedule's creation time, the start when none is given."""
        tz = zone(rest.get("timeZone"))
        start = _instant(rest.get("startTime"), tz) or created.astimezone(UTC)
        end = _instant(rest.get("endTime"), tz)
        kind = str(rest.get("triggerType", "")).lower()
        if kind == "cron":
            return cls("cron", tz, start, end, cron=parse_cron(rest.get("expression") or ""))
        if kind != "recurrence":
            raise TriggerError(f"Trigger type {rest.get('triggerType')!r} is not supported; use recurrence or cron.")
        frequency = str(rest.get("frequency", "")).lower()
        if frequency not in FREQUENCIES:
            raise TriggerError(f"Recurrence frequency {rest.get('frequency')!r} is not supported; use one of "
                               f"{', '.join(FREQUENCIES)}.")
        interval = rest.get("interval")
        if not isinstance(interval, int) or isinstance(interval, bool) or interval < 1:
            raise TriggerError(f"Recurrence interval must be a positive integer, not {interval!r}.")
        pattern = rest.get("schedule") or {}
        hours = tuple(sorted(set(pattern.get("hours") or ())))
        minutes = tuple(sorted(set(pattern.get("minutes") or ())))
        week_days = tuple(str(d).lower() for d in (pattern.get("weekDays") or ()))
        month_days = tuple(sorted(set(pattern.get("monthDays") or ())))
        if any(not isinstance(h, int) or not 0 <= h <= 23 for h in hours):
            raise TriggerError(f"Pattern hours must be integers from 0 to 23, not {list(hours)}.")
        if any(not isinstance(m, int) or not 0 <= m <= 59 for m in minutes):
            raise TriggerError(f"Pattern minutes must be integers from 0 to 59, not {list(minutes)}.")
        if any(d not in WEEK_DAYS for d in week_days):
            raise TriggerError(f"Pattern week days must be among {', '.join(WEEK_DAYS)}, not {list(week_days)}.")
        if any(not isinstance(d, int) or not 1 <= d <= 31 for d in month_days):
            raise TriggerError(f"Pattern month days must be integers from 1 to 31, not {list(month_days)}.")
        if frequency in ("minute", "hour") and (hours or minutes or week_days or month_days):
            raise TriggerError("A recurrence pattern applies to day, week and month frequencies only.")
        if frequency == "day" and (week_days or month_days):
            raise TriggerError("A daily recurrence pattern takes hours and minutes only.")
        if frequency == "week" and month_days:
            raise TriggerError("A weekly recurrence pattern takes hours, minutes and week days only.")
        return cls("recurrence", tz, start, end, frequency, interval, hours, minutes,
                   tuple(sorted(set(week_days), key=WEEK_DAYS.index)), month_days)

    # -- fire times ---------------------------------------------------------------------------
    def fire_times(self, after: datetime, until: datetime) -> list[datetime]:
        """Every fire time t with ``after < t <= until`` (UTC, in order)."""
        low = max(after, self.start - timedelta(microseconds=1))
        high = min(until, self.end) if self.end else until
        if high <= low:
            return []
        if self.kind == "recurrence" and self.frequency in ("minute", "hour"):
            times = self._elapsed_times(low, high)
        else:
            times = (t for t in self._wall_clock_times(low, high))
        return sorted(t for t in times if low < t <= high)

    def next_fire_time(self, after: datetime, horizon_days: int = 3 * 366) -> Optional[datetime]:
        window = timedelta(days=8)
        cursor = after
        while cursor < after + timedelta(days=horizon_days):
            found = self.fire_times(cursor, cursor + window)
            if found:
                return found[0]
            if self.end and cursor + window >= self.end:
                return None
            cursor += window
        return None

    def _elapsed_times(self, low: datetime, high: datetime) -> Iterator[datetime]:
        step = timedelta(minutes=self.interval) if self.frequency == "minute" else timedelta(hours=self.interval)
        skip = max(0, int((low - self.start) / step))
        moment = self.start + skip * step
        while moment <= high:
            yield moment
            moment += step

    def _wall_clock_times(self, low: datetime, high: datetime) -> Iterator[datetime]:
        start_local = self.start.astimezone(self.tz)
        day = low.astimezone(self.tz).date() - timedelta(days=1)
        last = high.astimezone(self.tz).date() + timedelta(days=1)
        while day <= last:
            for wall in self._walls_on(day, start_local):
                moment = _localize(wall, self.tz)
                if moment is not None:
                    yield moment.astimezone(UTC)
            day += timedelta(days=1)

    def _walls_on(self, day: date, start_local: datetime) -> list[datetime]:
        if self.kind == "cron":
            minutes, hours, days_of_week = self.cron
            if (day.isoweekday() % 7) not in days_of_week:
                return []
            return [datetime.combine(day, time(h, m)) for h in sorted(hours) for m in sorted(minutes)]
        start_day = start_local.date()
        if day < start_day:
            return []
        if not self._eligible(day, start_day, start_local):
            return []
        if not (self.hours or self.minutes or self.week_days or self.month_days):
            # No pattern: the start's wall-clock time, every interval-th day / week / month.
            hours, minutes, second = (start_local.hour,), (start_local.minute,), start_local.second
        else:
            hours = self.hours or (start_local.hour,)
            minutes = self.minutes or (start_local.minute,)
            second = 0
        return [datetime.combine(day, time(h, m, second)) for h in hours for m in minutes]

    def _eligible(self, day: date, start_day: date, start_local: datetime) -> bool:
        if self.frequency == "day":
            return (day - start_day).days % self.interval == 0
        if self.frequency == "week":
            weeks = ((day - timedelta(days=day.weekday())) - (start_day - timedelta(days=start_day.weekday()))).days // 7
            days = self.week_days or (WEEK_DAYS[start_day.weekday()],)
            return weeks % self.interval == 0 and WEEK_DAYS[day.weekday()] in days
        months = (day.year * 12 + day.month) - (start_day.year * 12 + start_day.month)
        if months % self.interval:
            return False
        if self.week_days:
            return WEEK_DAYS[day.weekday()] in self.week_days and (
                not self.month_days or day.day in self.month_days)
        # A month without that day (the 31st in April) does not fire.
        return day.day in (self.month_days or (start_day.day,))


# -- cron ---------------------------------------------------------------------------------------
def parse_cron(expression: str) -> tuple[set, set, set]:
    """(minutes, hours, days of week) of a five-field cron expression; DAYS and MONTHS are
    checked and then treated as ``*``, as the service documents."""
    fields = expression.split()
    if len(fields) != 5:
        raise TriggerError(f"Cron expression {expression!r} must have five fields: "
                           "MINUTES HOURS DAYS MONTHS DAYS-OF-WEEK.")
    minutes = _cron_field(fields[0], 0, 59, {}, "minutes")
    hours = _cron_field(fields[1], 0, 23, {}, "hours")
    _cron_field(fields[2], 1, 31, {}, "days")
    _cron_field(fields[3], 1, 12, CRON_MONTH_NAMES, "months")
    days_of_week = _cron_field(fields[4], 0, 6, CRON_DAY_NAMES, "days of week")
    return minutes, hours, days_of_week


def _cron_field(text: str, low: int, high: int, names: dict, what: str) -> set[int]:
    def number(token: str) -> int:
        value = names.get(token.upper()) if names else None
        if value is None:
            if not token.isdigit():
                raise TriggerError(f"Cron {what}: {token!r} is not a number{' or a name' if names else ''}.")
            value = int(token)
        if not low <= value <= high:
            raise TriggerError(f"Cron {what}: {value} is outside {low}-{high}.")
        return value

    values: set[int] = set()
    for part in text.split(","):
        if not part:
            raise TriggerError(f"Cron {what}: empty list item in {text!r}.")
        body, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise TriggerError(f"Cron {what}: step {step_text!r} must be a positive number.")
            step = int(step_text)
        if body == "*":
            first, last = low, high
        elif "-" in body:
            first_text, _, last_text = body.partition("-")
            first, last = number(first_text), number(last_text)
            if first > last:
                raise TriggerError(f"Cron {what}: range {body!r} runs backwards.")
        else:
            first = number(body)
            last = high if step_text else first
        values.update(range(first, last + 1, step))
    return values
