"""RFC 5545 recurrence rules, evaluated in a template's own time zone.

Interval schedules (daily / weekly / monthly, every N) are computed in SQL
(`ticketflow_interval_occurrences`, sql/functions/recurring_tickets.sql);
RRULEs are expanded here into local wall times with python-dateutil, and
those are read as instants by the same SQL function the interval arithmetic
uses, `ticketflow_local_to_instant` (`sql_wall_reader`): one reading of wall
times for both. What to do with the occurrences (missed ones, the cap, the
pointer) is decided in SQL for both (sql/queries/recurring/plan_batch.sql).
The reading:

* every occurrence is computed from the series' anchor in local wall time,
  never by adding to the previous result;
* a wall time that does not exist (spring forward) takes the UTC offset in
  effect before the gap: 02:30 America/Toronto on that day is 03:30 EDT;
* a wall time that occurs twice (fall back) means its first occurrence, once.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from itertools import islice
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import psycopg
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


#: Reads naive local wall times in a zone (its IANA name) as UTC instants, in order, as RFC 5545 section 3.3.5
#: says; the product's one reader is `sql_wall_reader`.
WallReader = Callable[[list[datetime], str], list[datetime]]

_READ_WALLS = """
SELECT i.instant
FROM unnest(%s::timestamp[]) WITH ORDINALITY AS w (wall, n)
CROSS JOIN LATERAL ticketflow_local_to_instant(w.wall, %s) AS i (instant)
ORDER BY w.n
"""


def sql_wall_reader(conn: psycopg.Connection) -> WallReader:
    """Wall times read by PostgreSQL's `ticketflow_local_to_instant`, the reading the interval arithmetic uses,
    many at once; what it has read it remembers (`read` also fetches ahead: a batch reads once)."""
    known: dict[tuple[str, datetime], datetime] = {}

    def read(walls: list[datetime], tz_name: str) -> list[datetime]:
        missing = sorted({wall for wall in walls if (tz_name, wall) not in known})
        if missing:
            instants = [row[0] for row in conn.execute(_READ_WALLS, (missing, tz_name)).fetchall()]
            known.update(((tz_name, wall), instant) for wall, instant in zip(missing, instants, strict=True))
        return [known[(tz_name, wall)] for wall in walls]
    return read


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


def _until(value: str) -> tuple[datetime | None, datetime | None]:
    """UNTIL as (a UTC instant, a local wall time): a UTC time as given, a local time as a wall time read like
    any other, a date as the last moment of its local day."""
    match = _UNTIL.fullmatch(value)
    if match is None:
        raise RecurrenceError(f"RRULE UNTIL must be a date or a date-time such as 20261231T235959Z, got {value!r}")
    day, clock, utc = match.groups()
    try:
        if clock is None:
            return None, datetime.combine(datetime.strptime(day, "%Y%m%d").date(), time.max)
        wall = datetime.strptime(day + clock, "%Y%m%d%H%M%S")
    except ValueError as exc:
        raise RecurrenceError(f"RRULE UNTIL {value!r} is not a valid date: {exc}") from exc
    return (wall.replace(tzinfo=UTC), None) if utc else (None, wall)


@dataclass(frozen=True)
class RuleSchedule:
    """An RRULE anchored at `anchor` (its DTSTART) in time zone `tz_name`, ending at its UNTIL if it has one."""

    anchor: datetime
    tz: ZoneInfo
    tz_name: str
    rule: rrule
    until_utc: datetime | None = None
    until_wall: datetime | None = None
    #: Wall times fetch_ahead expanded, kept for the occurrences_from that follows (dateutil is the cost).
    _ahead: dict = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def parse(cls, text: str, anchor: datetime, tz_name: str) -> RuleSchedule:
        tz = zone(tz_name)
        parts = _rule_parts(text)
        until_utc, until_wall = _until(parts.pop("UNTIL")) if "UNTIL" in parts else (None, None)
        # dateutil drops fractions of a second from DTSTART; occurrences get the anchor's back (walls_from).
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
        return cls(anchor=anchor, tz=tz, tz_name=tz_name, rule=rule, until_utc=until_utc, until_wall=until_wall)

    def walls_from(self, start: datetime) -> Iterator[list[datetime]]:
        """The rule's local wall times from a day before `start` on (a day covers any UTC offset change), in
        chunks growing from 8: what one read of the wall times takes."""
        expanded, rest = self._ahead.pop(start, ([], None))
        yield from expanded
        yield from rest if rest is not None else self._expand(start)

    def _walls(self, start: datetime) -> Iterator[datetime]:
        start_wall = (start.astimezone(self.tz) - timedelta(days=1)).replace(tzinfo=None)
        for wall in self.rule.xafter(start_wall, inc=True):
            yield wall.replace(microsecond=self.anchor.microsecond)

    @staticmethod
    def _chunks(walls: Iterator[datetime], size: int = 8) -> Iterator[list[datetime]]:
        while chunk := list(islice(walls, size)):
            yield chunk
            size = min(size * 4, 4096)

    def _expand(self, start: datetime) -> Iterator[list[datetime]]:
        return self._chunks(self._walls(start))

    def walls_ahead(self, start: datetime, horizon: datetime, limit: int) -> list[datetime]:
        """The wall times `occurrences_from(start)` will read up to the first occurrence after `horizon` (at
        most `limit` of them), expanded now and kept for it: a batch of templates reads them in one query."""
        last = (horizon.astimezone(self.tz) + timedelta(days=1)).replace(tzinfo=None)
        walls = self._walls(start)
        ahead: list[datetime] = []
        for wall in walls:
            ahead.append(wall)
            if wall > last or len(ahead) > limit:
                break
        self._ahead[start] = ([ahead] if ahead else [], self._chunks(walls))
        return ahead if self.until_wall is None else [self.until_wall, *ahead]

    def occurrences_from(self, start: datetime, read: WallReader) -> Iterator[datetime]:
        """Occurrences at or after `start` (and not after UNTIL), as UTC instants, strictly increasing."""
        anchor_wall = self.anchor.astimezone(self.tz).replace(tzinfo=None)
        until = self.until_utc if self.until_wall is None else read([self.until_wall], self.tz_name)[0]
        previous = None
        for chunk in self.walls_from(start):
            instants = iter(read([wall for wall in chunk if wall != anchor_wall], self.tz_name))
            for wall in chunk:
                # the anchor is its own instant, even as the second reading of a repeated wall time
                instant = self.anchor.astimezone(UTC) if wall == anchor_wall else next(instants)
                if until is not None and instant > until:
                    return
                if instant < start or (previous is not None and instant <= previous):
                    continue  # before the window, or a wall time that a gap folded onto the previous one
                previous = instant
                yield instant
