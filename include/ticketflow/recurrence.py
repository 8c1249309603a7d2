"""RFC 5545 recurrence rules, evaluated in a template's own time zone.

Interval schedules (daily / weekly / monthly, every N) are computed in SQL
(`ticketflow_interval_occurrences`, sql/functions/recurring_tickets.sql);
RRULEs are computed here with python-dateutil. What to do with the
occurrences (missed ones, the cap, the pointer) is decided in SQL for both
(sql/queries/recurring/plan_batch.sql). Both follow the same reading of wall
times (tests/integration/test_recurrence_sql.py holds them to it):

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
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dateutil.rrule import rrule, rrulestr

SUPPORTED_FREQUENCIES = {"DAILY", "WEEKLY", "MONTHLY", "YEARLY"}
#: The rule parts a template may use (RFC 5545 section 3.3.10, without the time-of-day ones).
RULE_PARTS = {"FREQ", "INTERVAL", "COUNT", "UNTIL", "BYDAY", "BYMONTHDAY", "BYYEARDAY", "BYWEEKNO", "BYMONTH",
              "BYSETPOS", "WKST"}
#: A rule with no occurrence this far after its anchor is refused as one that never occurs.
NEVER_HORIZON = timedelta(days=366 * 10)
#: A window with more occurrences than this is refused rather than computed.
MAX_OCCURRENCES_PER_WINDOW = 10_000
TOO_MANY_OCCURRENCES = (f"more than {MAX_OCCURRENCES_PER_WINDOW} occurrences due at once;"
                        " set recurrence_start to the series' real first occurrence")
_POSITIVE = re.compile(r"0*[1-9][0-9]*")  # RFC 5545's 1*DIGIT, at least 1; no sign
_UNTIL = re.compile(r"(\d{8})(?:T(\d{6})(Z?))?", re.IGNORECASE)


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
    return wall.replace(tzinfo=tz, fold=0).astimezone(UTC)


def _rule_parts(text: str) -> dict[str, str]:
    """The rule's NAME=VALUE parts, each named once (RFC 5545: dateutil would silently keep the last)."""
    body = text.strip()
    body = body[len("RRULE:"):] if body.upper().startswith("RRULE:") else body
    if not body or any(c in body for c in "\r\n") or ":" in body:
        raise RecurrenceError(f"RRULE must be a single rule such as FREQ=WEEKLY;BYDAY=MO, got {text!r}")
    parts: dict[str, str] = {}
    for part in body.split(";"):
        name, equals, value = part.partition("=")
        name = name.strip().upper()
        if name == "DTSTART":
            raise RecurrenceError("RRULE must not carry DTSTART: the anchor is recurrence_start")
        if name in {"BYHOUR", "BYMINUTE", "BYSECOND"}:
            raise RecurrenceError("RRULE must not set BYHOUR, BYMINUTE or BYSECOND: the time of day is the anchor's")
        if not equals or not value.strip():
            raise RecurrenceError(f"unparseable RRULE {text!r}: {part!r} is not NAME=VALUE")
        if name not in RULE_PARTS:
            raise RecurrenceError(f"unparseable RRULE {text!r}: unknown rule part {name}")
        if name in parts:
            raise RecurrenceError(f"RRULE names {name} twice: {text!r}")
        parts[name] = value.strip()
    if "FREQ" not in parts:
        raise RecurrenceError(f"RRULE must name its FREQ, got {text!r}")
    if parts["FREQ"].upper() not in SUPPORTED_FREQUENCIES:
        raise RecurrenceError(
            f"RRULE frequency {parts['FREQ']} is not supported: use DAILY, WEEKLY, MONTHLY or YEARLY")
    for name in ("INTERVAL", "COUNT"):
        if name in parts and not _POSITIVE.fullmatch(parts[name]):
            raise RecurrenceError(f"RRULE {name} must be 1 or more, got {parts[name]}")
    if "COUNT" in parts and "UNTIL" in parts:
        raise RecurrenceError("RRULE must not set both COUNT and UNTIL (RFC 5545)")
    return parts


def _until_instant(value: str, tz: ZoneInfo) -> datetime:
    """UNTIL as an instant: a UTC time as given, a local time read as any wall time, a date as its whole day."""
    match = _UNTIL.fullmatch(value)
    if match is None:
        raise RecurrenceError(f"RRULE UNTIL must be a date or a date-time such as 20261231T235959Z, got {value!r}")
    day, clock, utc = match.groups()
    try:
        if clock is None:
            return local_to_instant(datetime.combine(datetime.strptime(day, "%Y%m%d").date(), time.max), tz)
        wall = datetime.strptime(day + clock, "%Y%m%d%H%M%S")
    except ValueError as exc:
        raise RecurrenceError(f"RRULE UNTIL {value!r} is not a valid date: {exc}") from exc
    return wall.replace(tzinfo=UTC) if utc else local_to_instant(wall, tz)


@dataclass(frozen=True)
class RuleSchedule:
    """An RRULE anchored at `anchor` (its DTSTART) in time zone `tz`, ending at `until` if it says so."""

    anchor: datetime
    tz: ZoneInfo
    rule: rrule
    until: datetime | None = None

    @classmethod
    def parse(cls, text: str, anchor: datetime, tz_name: str) -> RuleSchedule:
        tz = zone(tz_name)
        parts = _rule_parts(text)
        until = _until_instant(parts.pop("UNTIL"), tz) if "UNTIL" in parts else None
        # dateutil drops fractions of a second from DTSTART; occurrences get the anchor's back (_wall).
        anchor_wall = anchor.astimezone(tz).replace(tzinfo=None, microsecond=0)
        try:
            rule = rrulestr(";".join(f"{name}={value}" for name, value in parts.items()), dtstart=anchor_wall)
        except (ValueError, TypeError, KeyError, IndexError, OverflowError) as exc:
            raise RecurrenceError(f"unparseable RRULE {text!r}: {exc}") from exc
        if not isinstance(rule, rrule):
            raise RecurrenceError(f"RRULE must be a single rule, got {text!r}")
        capped = rule.replace(count=None, until=anchor_wall + NEVER_HORIZON)
        if capped.after(anchor_wall, inc=True) is None:
            raise RecurrenceError(f"RRULE {text!r} has no occurrence within ten years of its start")
        return cls(anchor=anchor, tz=tz, rule=rule, until=until)

    def _instant(self, wall: datetime) -> datetime:
        wall = wall.replace(microsecond=self.anchor.microsecond)
        if wall == self.anchor.astimezone(self.tz).replace(tzinfo=None):
            return self.anchor.astimezone(UTC)
        return local_to_instant(wall, self.tz)

    def occurrences_from(self, start: datetime) -> Iterator[datetime]:
        """Occurrences at or after `start` (and not after UNTIL), as UTC instants, strictly increasing."""
        start_wall = (start.astimezone(self.tz) - timedelta(days=1)).replace(tzinfo=None)
        previous = None
        for wall in self.rule.xafter(start_wall, inc=True):
            instant = self._instant(wall)
            if self.until is not None and instant > self.until:
                return
            if instant < start or (previous is not None and instant <= previous):
                continue  # before the window, or a wall time that a gap folded onto the previous one
            previous = instant
            yield instant
