"""Schedules: a function's ``Schedule`` and ``ScheduleV2`` events fire Event invocations
while ``fastinvoke serve --schedules`` runs, at the times EventBridge would fire them.

Expressions as EventBridge writes them ("Schedule types on EventBridge Scheduler"):
``rate(5 minutes)`` (the first firing one period after the server starts),
``cron(minutes hours day-of-month month day-of-week year)`` (six fields; day-of-week
1-7 is SUN-SAT; one of the two day fields is ``?``; ``L``, ``W`` and ``#`` as EventBridge
reads them) in the schedule's time zone (ScheduleV2's ``ScheduleExpressionTimezone``,
else UTC), and ScheduleV2's one-time ``at(2026-12-24T18:00:00)``.  The function gets the
schedule's ``Input`` when it has one, else EventBridge's scheduled event.
"""

from __future__ import annotations

import re
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
from croniter import croniter

from ..errors import ServiceError
from .shapes import scheduled_event

_RATE = re.compile(r"rate\((\d+) (minute|minutes|hour|hours|day|days)\)")
_UNITS = {"minute": 60, "hour": 3600, "day": 86400}
_AT = re.compile(r"at\((\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\)")


class ScheduleError(ValueError):
    """A schedule expression EventBridge would refuse: says which and why."""


class Timing(Protocol):
    def next_after(self, moment: datetime) -> datetime | None: ...


@dataclass
class Schedule:
    """One schedule of a template: ``source`` is ``Function.Event``."""

    source: str
    function: str
    expression: str
    arn: str
    timezone: str = "UTC"
    enabled: bool = True
    input: str | None = None  # the event to send (JSON text) instead of the scheduled event
    timing: Timing = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.timing = parse(self.expression, self.timezone)

    def event(self, fired_at: float) -> bytes:
        if self.input is not None:
            return self.input.encode()
        return msgspec.json.encode(scheduled_event(self.arn, fired_at))


def parse(expression: str, zone: str = "UTC") -> Timing:
    """The timing of ``expression`` in time zone ``zone``; ScheduleError if EventBridge
    would refuse it."""
    try:
        tz = ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(f"time zone {zone!r} is not an IANA time zone name (such as "
                            "Europe/Paris)") from None
    text = expression.strip()
    if match := _RATE.fullmatch(text):
        value, unit = int(match[1]), match[2]
        if value < 1:
            raise ScheduleError(f"{expression}: the rate must be a positive whole number")
        singular = unit.rstrip("s")
        if (value == 1) != (unit == singular):
            right = f"1 {singular}" if value == 1 else f"{value} {singular}s"
            raise ScheduleError(f"{expression}: write rate({right}) (the unit is singular for "
                                "1, plural otherwise)")
        return Rate(value * _UNITS[unit.rstrip("s")])
    if match := _AT.fullmatch(text):
        return At(datetime.fromisoformat(match[1]).replace(tzinfo=tz))
    if text.startswith("cron(") and text.endswith(")"):
        return Cron(text[5:-1], tz, expression)
    raise ScheduleError(f"{expression}: not rate(...), cron(...) or at(...)")


@dataclass
class Rate:
    seconds: int
    anchor: datetime | None = None  # when the server started: the first firing is after

    def next_after(self, moment: datetime) -> datetime:
        anchor = self.anchor or moment
        periods = int((moment - anchor).total_seconds() // self.seconds) + 1
        return anchor + timedelta(seconds=periods * self.seconds)


@dataclass
class At:
    moment: datetime

    def next_after(self, moment: datetime) -> datetime | None:
        return self.moment if self.moment > moment else None


class Cron:
    """An EventBridge cron expression, read by croniter (five fields, Sunday 0) with the
    year checked here."""

    def __init__(self, fields_text: str, tz: ZoneInfo, expression: str) -> None:
        fields = fields_text.split()
        if len(fields) != 6:
            raise ScheduleError(f"{expression}: a cron expression has six fields (minutes "
                                "hours day-of-month month day-of-week year), not "
                                f"{len(fields)}")
        minutes, hours, dom, month, dow, year = fields
        if (dom == "?") == (dow == "?"):
            raise ScheduleError(f"{expression}: exactly one of day-of-month and day-of-week "
                                "must be ?")
        self.tz = tz
        self.years = _years(year, expression)
        self.cron = " ".join((minutes, hours, "*" if dom == "?" else dom, month,
                              "*" if dow == "?" else _weekdays(dow, expression)))
        if not croniter.is_valid(self.cron):
            raise ScheduleError(f"{expression}: not a valid cron expression")

    def next_after(self, moment: datetime) -> datetime | None:
        iterator = croniter(self.cron, moment.astimezone(self.tz))
        for _ in range(10_000):
            fire = iterator.get_next(datetime)
            if fire.year > 2199:
                return None
            if fire.year in self.years:
                return fire
        return None


def _weekdays(text: str, expression: str) -> str:
    """EventBridge's day-of-week (1-7 = SUN-SAT; ``6L`` the last Friday) as croniter's
    (0-6; ``L5``)."""
    def day(value: str) -> str:
        if value.isdigit():
            if not 1 <= int(value) <= 7:
                raise ScheduleError(f"{expression}: day-of-week {value} is not 1-7 (SUN-SAT)")
            return str(int(value) - 1)
        return value

    parts = []
    for part in text.split(","):
        if part.endswith("L") and len(part) > 1:
            parts.append("L" + day(part[:-1]))
        elif "#" in part:
            weekday, _, nth = part.partition("#")
            parts.append(f"{day(weekday)}#{nth}")
        elif "/" in part:
            start, _, step = part.partition("/")
            parts.append(f"{_range(start, day)}/{step}")
        else:
            parts.append(_range(part, day))
    return ",".join(parts)


def _range(text: str, day: Callable[[str], str]) -> str:
    if text == "*":
        return text
    low, dash, high = text.partition("-")
    return f"{day(low)}-{day(high)}" if dash else day(low)


def _years(text: str, expression: str) -> set[int]:
    """The years the year field allows (1970-2199)."""
    every = range(1970, 2200)
    if text == "*":
        return set(every)
    years: set[int] = set()
    for part in text.split(","):
        span, _, step = part.partition("/")
        try:
            if span == "*":
                low, high = 1970, 2199
            else:
                low_text, _, high_text = span.partition("-")
                low = int(low_text)
                high = int(high_text) if high_text else (2199 if step else low)
            years.update(range(low, high + 1, int(step) if step else 1))
        except ValueError:
            raise ScheduleError(f"{expression}: year field {text!r} is not years 1970-2199") \
                from None
    if not years or not years <= set(every):
        raise ScheduleError(f"{expression}: year field {text!r} is not years 1970-2199")
    return years


class Invoke(Protocol):
    def __call__(self, function_name: str, event: bytes, *, invocation_type: str) -> object: ...


class Scheduler:
    """Fires the enabled schedules, in a thread, until ``stop``.  ``now`` and ``sleep``
    are its clock (``sleep(seconds, stopped)`` returns True once ``stopped`` is set)."""

    def __init__(self, invoke: Invoke, schedules: list[Schedule],
                 now: Callable[[], float] = time.time,
                 sleep: Callable[[float, threading.Event], bool] | None = None) -> None:
        self._invoke = invoke
        self.schedules = [schedule for schedule in schedules if schedule.enabled]
        self._now = now
        self._sleep = sleep or (lambda seconds, stopped: stopped.wait(seconds))
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fastinvoke-schedules",
                                        daemon=True)

    def start(self) -> None:
        started = datetime.fromtimestamp(self._now(), UTC)
        for schedule in self.schedules:
            if isinstance(schedule.timing, Rate):
                schedule.timing.anchor = started
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join()

    def next_fires(self) -> list[tuple[Schedule, datetime | None]]:
        moment = datetime.fromtimestamp(self._now(), UTC)
        return [(schedule, schedule.timing.next_after(moment)) for schedule in self.schedules]

    def _run(self) -> None:
        upcoming = [list(pair) for pair in self.next_fires()]
        while True:
            due_times = [fire for _, fire in upcoming if fire is not None]
            if not due_times:
                return  # nothing will ever fire again (one-time schedules, past years)
            first = min(due_times)
            if self._sleep(max(0.0, first.timestamp() - self._now()), self._stopped):
                return
            for pair in upcoming:
                schedule, due = pair
                if due is not None and due <= first:
                    self._fire(schedule, due.timestamp())
                    pair[1] = schedule.timing.next_after(due)

    def _fire(self, schedule: Schedule, at: float) -> None:
        try:
            self._invoke(schedule.function, schedule.event(at), invocation_type="Event")
        except ServiceError as error:
            print(f"fastinvoke: schedule {schedule.source} could not invoke "
                  f"{schedule.function}: {error}", file=sys.stderr, flush=True)
