"""Schedules: EventBridge's expressions (rate, cron with its six fields and 1-7 weekdays,
at, time zones) and their refusals; the scheduler firing Event invocations of a real
function (its clock driven by the test, so that hours pass at once); and ``serve
--schedules`` from a SAM template, firing in real time."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from helpers import MakeFunction, MakeInvoker, function_resource, read_line, wait_until
from http_server import Server

from fastinvoke.sources.schedules import Schedule, ScheduleError, Scheduler, parse

ROOT = Path(__file__).resolve().parent.parent
START = datetime(2026, 3, 6, 12, 0, 30, tzinfo=UTC)  # a Friday


def fires(expression: str, count: int, zone: str = "UTC", start: datetime = START) -> list[str]:
    timing = parse(expression, zone)
    moments, moment = [], start
    for _ in range(count):
        moment = timing.next_after(moment)
        moments.append(moment.astimezone(UTC).strftime("%a %Y-%m-%d %H:%M"))
    return moments


def test_cron_reads_eventbridges_six_fields() -> None:
    assert fires("cron(0/15 * * * ? *)", 3) == [
        "Fri 2026-03-06 12:15", "Fri 2026-03-06 12:30", "Fri 2026-03-06 12:45"]
    # Day-of-week 1-7 is SUN-SAT: 2 is Monday, 6L the last Friday of the month.
    assert fires("cron(0 9 ? * 2 *)", 2) == ["Mon 2026-03-09 09:00", "Mon 2026-03-16 09:00"]
    assert fires("cron(0 9 ? * 2-6 *)", 2) == ["Mon 2026-03-09 09:00", "Tue 2026-03-10 09:00"]
    assert fires("cron(0 18 ? * 6L *)", 2) == ["Fri 2026-03-27 18:00", "Fri 2026-04-24 18:00"]
    assert fires("cron(0 10 ? * 3#2 *)", 1) == ["Tue 2026-03-10 10:00"]  # the 2nd Tuesday
    assert fires("cron(15 10 L * ? *)", 1) == ["Tue 2026-03-31 10:15"]  # the month's last day
    assert fires("cron(0 8 1 JAN,JUL ? 2027-2028)", 3) == [
        "Fri 2027-01-01 08:00", "Thu 2027-07-01 08:00", "Sat 2028-01-01 08:00"]


def test_a_time_zone_moves_a_cron_and_follows_daylight_saving() -> None:
    # 09:00 in Paris is 08:00 UTC in winter and 07:00 UTC after 29 March 2026.
    assert fires("cron(0 9 * * ? *)", 1, "Europe/Paris") == ["Sat 2026-03-07 08:00"]
    late = datetime(2026, 3, 28, 12, tzinfo=UTC)
    assert fires("cron(0 9 * * ? *)", 2, "Europe/Paris", late) == [
        "Sun 2026-03-29 07:00", "Mon 2026-03-30 07:00"]


def test_rate_and_at() -> None:
    timing = parse("rate(5 minutes)")
    timing.anchor = START
    assert timing.next_after(START).isoformat() == "2026-03-06T12:05:30+00:00"
    assert fires("rate(1 hour)", 1) == ["Fri 2026-03-06 13:00"]
    at = parse("at(2026-12-24T18:00:00)", "America/New_York")
    assert at.next_after(START) == datetime(2026, 12, 24, 18, tzinfo=ZoneInfo("America/New_York"))
    assert at.next_after(datetime(2027, 1, 1, tzinfo=UTC)) is None


@pytest.mark.parametrize(("expression", "zone", "why"), [
    ("rate(1 minutes)", "UTC", "write rate(1 minute)"),
    ("rate(5 minute)", "UTC", "write rate(5 minutes)"),
    ("cron(0 9 * * *)", "UTC", "six fields"),
    ("cron(0 9 * * MON *)", "UTC", "exactly one of day-of-month and day-of-week must be ?"),
    ("cron(0 9 ? * 8 *)", "UTC", "day-of-week 8 is not 1-7"),
    ("cron(0 25 * * ? *)", "UTC", "not a valid cron expression"),
    ("cron(0 9 * * ? 1900)", "UTC", "not years 1970-2199"),
    ("every day", "UTC", "not rate(...), cron(...) or at(...)"),
    ("rate(1 day)", "Mars/Olympus", "not an IANA time zone"),
])
def test_what_eventbridge_refuses_is_refused_saying_why(expression: str, zone: str,
                                                       why: str) -> None:
    with pytest.raises(ScheduleError, match=re.escape(why)):
        parse(expression, zone)


def test_the_scheduler_fires_event_invocations(make_invoker: MakeInvoker,
                                              make_function: MakeFunction,
                                              tmp_path: Path) -> None:
    """Three hours pass on the scheduler's clock: a rate(1 hour) schedule fires 3 times
    with EventBridge's scheduled event, a cron with an Input sends that input, and a
    disabled schedule never fires."""
    record = tmp_path / "record.jsonl"
    invoker = make_invoker()
    name = make_function("recorder.handler", invoker=invoker, env={"RECORD_TO": str(record)})
    clock = [START.timestamp()]
    sleeps = 0
    done = threading.Event()

    def sleep(seconds: float, stopped: threading.Event) -> bool:
        nonlocal sleeps
        sleeps += 1
        if clock[0] + seconds > START.timestamp() + 3 * 3600 + 1:
            done.set()
            return stopped.wait()  # three hours have passed: nothing more until stopped
        clock[0] += seconds
        return stopped.is_set()

    arn = "arn:aws:events:us-east-1:123456789012:rule/"
    scheduler = Scheduler(invoker.invoke, [
        Schedule("Fn.Hourly", name, "rate(1 hour)", arn + "hourly"),
        Schedule("Fn.Half", name, "cron(30 * * * ? *)", arn + "half", input='{"half": true}'),
        Schedule("Fn.Off", name, "rate(1 minute)", arn + "off", enabled=False),
    ], now=lambda: clock[0], sleep=sleep)
    scheduler.start()
    try:
        assert done.wait(30)
        lines = wait_until(lambda: record.exists() and len(
            record.read_text().splitlines()) >= 6 and record.read_text().splitlines())
    finally:
        scheduler.stop()
    events = [json.loads(line)["event"] for line in lines]
    scheduled = [event for event in events if "half" not in event]
    # Event invocations: they may run side by side on two workers, in any order.
    assert sorted(event["time"] for event in scheduled) == [
        "2026-03-06T13:00:30Z", "2026-03-06T14:00:30Z", "2026-03-06T15:00:30Z"]
    assert all(event["detail-type"] == "Scheduled Event" and event["source"] == "aws.events"
               and event["resources"] == [arn + "hourly"] for event in scheduled)
    assert events.count({"half": True}) == 3  # 12:30, 13:30, 14:30
    assert len(events) == 6
    assert invoker.meter(name)["invocations"] == 6


def template_with_schedules(directory: Path, expression: str) -> Path:
    template = directory / "template.yaml"
    template.write_text("Resources:\n" + function_resource(
        "Ticker", "ticker", "recorder.handler", record_to=directory / "record.jsonl",
        properties=f"""\
      Events:
        EveryMinute:
          Type: ScheduleV2
          Properties:
            ScheduleExpression: "{expression}"
            ScheduleExpressionTimezone: Europe/Paris
        Off:
          Type: Schedule
          Properties:
            Schedule: rate(1 minute)
            Enabled: false
"""))
    return template


def test_a_malformed_schedule_stops_serve_saying_what_is_wrong(tmp_path: Path) -> None:
    template = template_with_schedules(tmp_path, "cron(0 9 * * *)")
    done = subprocess.run([sys.executable, "-m", "fastinvoke", "serve", "--port", "0",
                           "--schedules", "--template", str(template), "--state-dir",
                           str(tmp_path / "state")], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2
    assert "fastinvoke serve: schedule Ticker.EveryMinute: cron(0 9 * * *): a cron " \
        "expression has six fields" in done.stderr
    assert not (tmp_path / "state").exists()


@pytest.mark.slow
def test_serve_fires_a_templates_schedule(tmp_path: Path) -> None:
    """A cron of every minute fires within the next minute, in real time."""
    template = template_with_schedules(tmp_path, "cron(* * * * ? *)")
    server = Server(tmp_path / "state", "--schedules", template=template)
    try:
        assert read_line(server.process).decode().strip() == "fastinvoke: firing 1 schedules"
        line = read_line(server.process).decode().strip()
        assert line.startswith("Ticker.EveryMinute cron(* * * * ? *) (Europe/Paris) -> ticker, "
                               "next "), line
        record = tmp_path / "record.jsonl"
        # The destination creates the file, then appends its line: wait for a whole one.
        wait_until(lambda: record.exists() and record.read_text().endswith("\n"), timeout=75)
        event = json.loads(record.read_text().splitlines()[0])["event"]
        assert event["resources"] == [
            "arn:aws:scheduler:us-east-1:123456789012:schedule/default/TickerEveryMinute"]
    finally:
        code, err = server.stop()
    assert code == 0, err
