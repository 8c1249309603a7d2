"""RFC 5545 recurrence rules, evaluated in a template's own time zone.

Interval schedules (daily / weekly / monthly, every N) are computed in SQL
(`ticketflow_interval_occurrences`, migration 0002); RRULEs are computed here
with python-dateutil. Both follow the same reading of wall times:

* every occurrence is computed from the series' anchor in local wall time,
  never by adding to the previous result;
* a wall time that does not exist (spring forward) takes the UTC offset in
  effect before the gap: 02:30 America/Toronto on that day is 03:30 EDT;
* a wall time that occurs twice (fall back) means its first occurrence, once.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dateutil.rrule import rrule, rrulestr

SUPPORTED_FREQUENCIES = {"DAILY", "WEEKLY", "MONTHLY", "YEARLY"}
#: A rule with no occurrence this far after its anchor is refused as one that never occurs.
NEVER_HORIZON = timedelta(days=366 * 10)
_FREQ = re.compile(r"(?:^|;)FREQ=([A-Z]+)", re.IGNORECASE)
_INTERVAL = re.compile(r"(?:^|;)INTERVAL=(-?\d+)", re.IGNORECASE)
_TIME_OF_DAY = re.compile(r"(?:^|;)BY(HOUR|MINUTE|SECOND)=", re.IGNORECASE)
#: A window with more occurrences than this is refused rather than computed.
MAX_OCCURRENCES_PER_WINDOW = 10_000
TOO_MANY_OCCURRENCES = f"more than {MAX_OCCURRENCES_PER_WINDOW} occurrences due at once; move next_occurrence forward"
_UNTIL = re.compile(r"UNTIL=(\d{8})(?:T(\d{6})(Z?))?", re.IGNORECASE)


class RecurrenceError(ValueError):
    """A schedule that cannot be evaluated; the message says why, for the operator."""


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise RecurrenceError(f"unknown time zone {name!r}") from exc


def local_to_instant(wall: datetime, tz: ZoneInfo) -> datetime:
    """A naive local wall time as a UTC instant, read as RFC 5545 section 3.3.5 says.

    With fold=0, zoneinfo gives a time in a gap the offset before the
    transition and a repeated time its first reading: exactly the RFC.
    """
    return wall.replace(tzinfo=tz, fold=0).astimezone(timezone.utc)


def _local_until(match: re.Match, tz: ZoneInfo) -> str:
    """UNTIL as a naive local wall time, matching the naive local DTSTART dateutil is given."""
    day, clock, utc = match.group(1), match.group(2), match.group(3)
    if clock is None:  # a date: the whole day counts
        wall = datetime.combine(datetime.strptime(day, "%Y%m%d").date(), time(23, 59, 59))
    elif utc:
        wall = datetime.strptime(day + clock, "%Y%m%d%H%M%S").replace(tzinfo=timezone.utc)
        wall = wall.astimezone(tz).replace(tzinfo=None)
    else:
        wall = datetime.strptime(day + clock, "%Y%m%d%H%M%S")
    return f"UNTIL={wall:%Y%m%dT%H%M%S}"


@dataclass(frozen=True)
class RuleSchedule:
    """An RRULE anchored at `anchor` (its DTSTART) in time zone `tz`."""

    anchor: datetime
    tz: ZoneInfo
    rule: rrule

    @classmethod
    def parse(cls, text: str, anchor: datetime, tz_name: str) -> "RuleSchedule":
        tz = zone(tz_name)
        body = text.strip()
        body = body[len("RRULE:"):] if body.upper().startswith("RRULE:") else body
        if not body or any(c in body for c in "\r\n") or ":" in body:
            raise RecurrenceError(f"RRULE must be a single rule such as FREQ=WEEKLY;BYDAY=MO, got {text!r}")
        if "DTSTART" in body.upper():
            raise RecurrenceError("RRULE must not carry DTSTART: the anchor is recurrence_start")
        frequency = _FREQ.search(body)
        if frequency and frequency.group(1).upper() not in SUPPORTED_FREQUENCIES:
            raise RecurrenceError(
                f"RRULE frequency {frequency.group(1)} is not supported: use DAILY, WEEKLY, MONTHLY or YEARLY")
        interval = _INTERVAL.search(body)
        if interval and int(interval.group(1)) < 1:
            raise RecurrenceError(f"RRULE INTERVAL must be 1 or more, got {interval.group(1)}")
        if _TIME_OF_DAY.search(body):
            raise RecurrenceError("RRULE must not set BYHOUR, BYMINUTE or BYSECOND: the time of day is the anchor's")
        anchor_wall = anchor.astimezone(tz).replace(tzinfo=None)
        try:
            rule = rrulestr(_UNTIL.sub(lambda m: _local_until(m, tz), body), dtstart=anchor_wall)
        except (ValueError, TypeError, KeyError, IndexError, OverflowError) as exc:
            raise RecurrenceError(f"unparseable RRULE {text!r}: {exc}") from exc
        if not isinstance(rule, rrule):
            raise RecurrenceError(f"RRULE must be a single rule, got {text!r}")
        capped = rule.replace(count=None, until=anchor_wall + NEVER_HORIZON)
        if capped.after(anchor_wall, inc=True) is None:
            raise RecurrenceError(f"RRULE {text!r} has no occurrence within ten years of its start")
        return cls(anchor=anchor, tz=tz, rule=rule)

    def _instant(self, wall: datetime) -> datetime:
        if wall == self.anchor.astimezone(self.tz).replace(tzinfo=None):
            return self.anchor.astimezone(timezone.utc)
        return local_to_instant(wall, self.tz)

    def occurrences_from(self, start: datetime) -> Iterator[datetime]:
        """Occurrences at or after `start`, as UTC instants, strictly increasing."""
        start_wall = (start.astimezone(self.tz) - timedelta(days=1)).replace(tzinfo=None)
        previous = None
        for wall in self.rule.xafter(start_wall, inc=True):
            instant = self._instant(wall)
            if instant < start or (previous is not None and instant <= previous):
                continue  # before the window, or a wall time that a gap folded onto the previous one
            previous = instant
            yield instant


@dataclass(frozen=True)
class Window:
    """What one run does with one template: occurrences due, and where the pointer moves."""

    due: list[datetime]
    next_occurrence: datetime | None


def window(schedule: RuleSchedule, pointer: datetime, horizon: datetime, end: datetime | None) -> Window:
    """Occurrences in [pointer, horizon] (and not after `end`), and the first one after `horizon`."""
    due: list[datetime] = []
    for instant in schedule.occurrences_from(pointer):
        if instant > horizon:
            return Window(due, instant)
        if end is None or instant <= end:
            due.append(instant)
        if len(due) > MAX_OCCURRENCES_PER_WINDOW:
            raise RecurrenceError(TOO_MANY_OCCURRENCES)
    return Window(due, None)
