"""Recurring templates as people manage them: create, edit, pause, resume, skip, move, reschedule, preview.

Every action is explicit and recorded where the recurring job reads it; none
writes the job's pointer (`next_occurrence`) itself:

* pause sets `paused_at` (who, why): the job claims no paused template;
* resume clears it; occurrences that fell due while paused are skipped
  (recorded as skips, by the resuming user) or, when asked, left to the
  template's missed policy;
* skip records one occurrence in `recurring_occurrence_skips` (kind
  'skipped'), move records it as kind 'moved' with the instant its ticket is
  created at instead;
* reschedule writes `reschedule_at`, which the job's own statement
  (`recurring/apply_reschedules`) turns into the series' new start.

Schedules are checked and previewed with the job's own arithmetic
(`schedule_occurrences`): interval schedules by the SQL function the job
runs, RRULEs by `ticketflow.recurrence`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import psycopg

from ticketflow import queries
from ticketflow.recurrence import MAX_OCCURRENCES_PER_WINDOW, RecurrenceError, RuleSchedule, sql_wall_reader
from ticketflow.recurring import as_the_job

STATES = ("active", "paused", "parked", "ended")
INTERVALS = ("daily", "weekly", "monthly")
MISSED_POLICIES = ("latest_only", "create_all")
#: What a resume does with occurrences that fell due while the template was paused, by default: skip them,
#: as GLPI does when a recurrent ticket is made active again (it computes the next creation from the present).
RESUME_DEFAULT: Literal["policy", "skip"] = "skip"
PREVIEW_MAX = 100
#: No instant before this or after it: the database's bounds on every schedule instant.
EARLIEST, LATEST = datetime(1900, 1, 1, tzinfo=UTC), datetime(9000, 1, 1, tzinfo=UTC)
_STEP_DAYS = {"daily": 1, "weekly": 7, "monthly": 31}


class TemplateNotFound(LookupError):
    """No live (not archived) recurring template with that id."""


class TemplateConflict(RuntimeError):
    """The template's state does not allow the action (resume an active one, skip a created occurrence)."""


class InvalidTemplate(ValueError):
    """Bad input: `problems` are (field path, message) pairs, the field path as the request body names it."""

    def __init__(self, problems: list[tuple[tuple[str, ...], str]]):
        super().__init__("; ".join(f"{'.'.join(loc)}: {msg}" for loc, msg in problems))
        self.problems = problems


@dataclass(frozen=True)
class Schedule:
    """When a template's occurrences are: every `every` `interval`s or an RRULE, from `start`, in `timezone`."""

    interval: str | None
    every: int | None
    rrule: str | None
    timezone: str
    start: datetime
    end: datetime | None = None


def schedule_occurrences(conn: psycopg.Connection, schedule: Schedule, after: datetime,
                         count: int | None = None, until: datetime | None = None) -> list[datetime]:
    """Occurrences at or after `after`, not after `until` nor the schedule's end, at most `count` of them, by
    the job's own arithmetic. More than the job's cap in one call is refused, as the job refuses it."""
    limit = MAX_OCCURRENCES_PER_WINDOW if count is None else count
    stop = min(x for x in (until, schedule.end, LATEST) if x is not None)
    if schedule.rrule is not None:
        found: list[datetime] = []
        rule = RuleSchedule.parse(schedule.rrule, schedule.start, schedule.timezone)
        for instant in rule.occurrences_from(after, sql_wall_reader(conn)):
            if instant > stop:
                break
            if len(found) == limit:
                if count is None:
                    raise RecurrenceError(f"more than {MAX_OCCURRENCES_PER_WINDOW} occurrences in that span")
                break
            found.append(instant)
        return found
    assert schedule.interval is not None
    every = schedule.every or 1
    span = timedelta(days=_STEP_DAYS[schedule.interval] * every * (limit + 1) + 2)
    base = max(after, schedule.start)
    window_end = stop if count is None or LATEST - base < span else min(stop, base + span)
    rows = conn.execute(
        "SELECT occurrence_at FROM ticketflow_interval_occurrences(%s, %s, %s, %s, %s, %s)"
        " WHERE occurrence_at >= %s AND occurrence_at <= %s ORDER BY 1 LIMIT %s",
        (schedule.start, schedule.timezone, schedule.interval, every, after, window_end, after, stop,
         limit + 1)).fetchall()
    found = [row[0] for row in rows]
    if count is None and len(found) > limit:
        raise RecurrenceError(f"more than {MAX_OCCURRENCES_PER_WINDOW} occurrences in that span")
    return found[:limit]


def _known_zone(conn: psycopg.Connection, name: str) -> bool:
    return conn.execute("SELECT 1 FROM time_zones WHERE name = %s", (name,)).fetchone() is not None


def _unknown_zone(name: str) -> tuple[tuple[str, ...], str]:
    return (("timezone",), f"unknown time zone {name!r}: use an IANA name such as America/Toronto (not an"
                           " abbreviation such as CEST)")


def read_when(conn: psycopg.Connection, value: datetime | None, timezone: str, field: str) -> datetime | None:
    """An instant as given, or a local date-time (no offset) read in `timezone` as the job reads every wall time
    (`ticketflow_local_to_instant`: RFC 5545 section 3.3.5), so a form need not know the zone's rules."""
    if value is None:
        return None
    instant = value
    if value.tzinfo is None:
        if not _known_zone(conn, timezone):
            raise InvalidTemplate([(("body", *_unknown_zone(timezone)[0]), _unknown_zone(timezone)[1])])
        row = conn.execute("SELECT ticketflow_local_to_instant(%s::timestamp, %s)", (value, timezone)).fetchone()
        assert row is not None
        instant = row[0]
    # The year as typed is bounded by the schema; its offset can still carry the instant past what the columns hold.
    if not EARLIEST <= instant < LATEST:
        raise InvalidTemplate([(("body", field), "must fall between 1900-01-01 and 9000-01-01 UTC")])
    return instant


def check_schedule(conn: psycopg.Connection, schedule: Schedule) -> list[tuple[tuple[str, ...], str]]:
    """What is wrong with a schedule, by the rules the job applies; empty when nothing is."""
    problems: list[tuple[tuple[str, ...], str]] = []
    if not _known_zone(conn, schedule.timezone):
        problems.append(_unknown_zone(schedule.timezone))
        return problems
    if schedule.end is not None and schedule.end < schedule.start:
        problems.append((("end",), "end must not be before start"))
        return problems
    try:
        first = schedule_occurrences(conn, schedule, schedule.start, count=1)
    except RecurrenceError as exc:
        problems.append((("schedule", "rrule" if schedule.rrule is not None else "interval"), str(exc)))
        return problems
    if not first:
        problems.append((("end",), "the schedule has no occurrence between start and end"))
    return problems


_TEMPLATE = """
SELECT t.id, t.subject, t.description, t.department, t.category, t.sub_category, t.priority,
       t.requester_email AS requester,
       CASE WHEN t.recurrence_rule IS NULL THEN t.recurrence_interval END AS interval,
       CASE WHEN t.recurrence_rule IS NULL THEN t.recurrence_every END AS every,
       t.recurrence_rule AS rrule,
       coalesce(t.recurrence_timezone, %(default_timezone)s) AS timezone,
       t.recurrence_start AS start,
       CASE WHEN t.recurrence_end < '9000-01-01' THEN t.recurrence_end END AS "end",
       extract(epoch FROM t.recurrence_lead_time)::bigint AS lead_time_seconds,
       t.missed_policy, s.state, t.recurrence_error AS parked_reason, t.next_occurrence,
       t.paused_at, t.paused_by, t.pause_reason
FROM tickets t
JOIN recurring_template_states s ON s.template_id = t.id
"""


def _as_template(row: dict) -> dict:
    out = {k: row[k] for k in ("id", "subject", "description", "department", "category", "sub_category",
                               "priority", "requester", "timezone", "start", "end", "lead_time_seconds",
                               "missed_policy", "state", "parked_reason", "next_occurrence", "paused_at",
                               "paused_by", "pause_reason")}
    out["schedule"] = {"interval": row["interval"], "every": row["every"], "rrule": row["rrule"]}
    return out


def _row(conn: psycopg.Connection, template_id: int, default_timezone: str, lock: bool = False) -> dict:
    with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        row = cur.execute(_TEMPLATE + " WHERE t.id = %(id)s" + (" FOR UPDATE OF t" if lock else ""),
                          {"id": template_id, "default_timezone": default_timezone}).fetchone()
    if row is None:
        raise TemplateNotFound(f"no recurring template {template_id}")
    return row


def _with_upcoming(conn: psycopg.Connection, row: dict) -> dict:
    """The template as the API shows it, with `upcoming`: the next instant the job will create a ticket at
    (skips left out, moves applied), which is what a person means by "next"; `next_occurrence` is the job's
    pointer, which stays on a skipped occurrence until a run passes it. None unless the template is active."""
    out = _as_template(row)
    out["upcoming"] = None
    if row["state"] == "active":
        try:
            out["upcoming"] = next(iter(_upcoming(conn, row, 1)), None)
        except RecurrenceError:  # the job parks such a template on its next run; until then there is no "next"
            pass
    return out


def get_template(conn: psycopg.Connection, template_id: int, default_timezone: str) -> dict:
    return _with_upcoming(conn, _row(conn, template_id, default_timezone))


def list_templates(conn: psycopg.Connection, default_timezone: str, state: str | None, limit: int,
                   offset: int) -> tuple[list[dict], int]:
    """Live templates, soonest next occurrence first, of one state or all."""
    params = {"default_timezone": default_timezone, "state": state, "limit": limit, "offset": offset}
    where = " WHERE %(state)s::text IS NULL OR s.state = %(state)s"
    with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        rows = cur.execute(_TEMPLATE + where + " ORDER BY t.next_occurrence NULLS LAST, t.id"
                           " LIMIT %(limit)s OFFSET %(offset)s", params).fetchall()
    total = conn.execute("SELECT count(*) FROM recurring_template_states s" + where, params).fetchone()
    return [_with_upcoming(conn, row) for row in rows], total[0] if total else 0


def schedule_of(row: dict) -> Schedule:
    return Schedule(interval=row["interval"], every=row["every"], rrule=row["rrule"], timezone=row["timezone"],
                    start=row["start"], end=row["end"])


def template_occurrences(conn: psycopg.Connection, template_id: int, default_timezone: str, count: int,
                         after: datetime | None = None) -> list[datetime]:
    """The next `count` instants the job will create tickets at for a saved template, from its pointer (or
    `after`): its schedule's occurrences without those skipped or moved, with the moved ones' new instants."""
    return _upcoming(conn, _row(conn, template_id, default_timezone), count, after)


def _upcoming(conn: psycopg.Connection, row: dict, count: int, after: datetime | None = None) -> list[datetime]:
    template_id = row["id"]
    if row["next_occurrence"] is None or row["parked_reason"] is not None:
        return []
    start = max(row["next_occurrence"], after) if after else row["next_occurrence"]
    taken: dict[datetime, datetime | None] = dict(conn.execute(
        "SELECT occurrence_at, moved_to FROM recurring_occurrence_skips WHERE template_id = %s"
        " AND occurrence_at >= %s", (template_id, start)).fetchall())
    # every move still to be made, even one moved to before the pointer: the job makes it when it is due
    moved = [to for (to,) in conn.execute(
        "SELECT moved_to FROM recurring_occurrence_skips WHERE template_id = %s AND kind = 'moved'"
        " AND ticket_id IS NULL AND moved_to >= %s", (template_id, after or EARLIEST)).fetchall()]
    found: list[datetime] = []
    cursor = start
    while len(found) < count:
        batch = schedule_occurrences(conn, schedule_of(row), cursor, count=count + len(taken))
        found.extend(o for o in batch if o not in taken)
        if len(batch) < count + len(taken):
            break
        cursor = batch[-1] + timedelta(microseconds=1)
    return sorted([*found, *moved])[:count]


def occurrence_json(instant: datetime, timezone: str) -> dict[str, str]:
    from zoneinfo import ZoneInfo

    return {"local": instant.astimezone(ZoneInfo(timezone)).isoformat(),
            "utc": instant.astimezone(UTC).isoformat().replace("+00:00", "Z")}


_COLUMNS = {"subject": "subject", "description": "description", "department": "department",
            "category": "category", "sub_category": "sub_category", "priority": "priority",
            "requester": "requester_email", "timezone": "recurrence_timezone", "start": "recurrence_start",
            "end": "recurrence_end", "missed_policy": "missed_policy"}


#: What null means for the fields whose column always has a value: the default.
_DEFAULTS = {"priority": "medium", "missed_policy": "latest_only", "description": ""}


def _columns(fields: dict[str, Any]) -> dict[str, Any]:
    """The tickets columns for the API's fields; null sets a field with a default to it."""
    columns = {_COLUMNS[k]: _DEFAULTS.get(k) if v is None else v for k, v in fields.items() if k in _COLUMNS}
    if "lead_time_seconds" in fields:
        columns["recurrence_lead_time"] = timedelta(seconds=fields["lead_time_seconds"] or 0)
    if "schedule" in fields:
        schedule = fields["schedule"]
        columns["recurrence_rule"] = schedule.get("rrule")
        columns["recurrence_interval"] = schedule.get("interval") if schedule.get("rrule") is None else None
        columns["recurrence_every"] = schedule.get("every") or 1
    return columns


def _checked(conn: psycopg.Connection, merged: dict) -> None:
    problems: list[tuple[tuple[str, ...], str]] = []
    for name in ("subject", "department", "category", "schedule", "start"):
        if merged.get(name) in (None, ""):
            problems.append(((name,), f"{name} is required"))
    if not problems:
        schedule = merged["schedule"]
        problems = check_schedule(conn, Schedule(
            interval=schedule.get("interval"), every=schedule.get("every"), rrule=schedule.get("rrule"),
            timezone=merged["timezone"], start=merged["start"], end=merged.get("end")))
    if problems:
        raise InvalidTemplate([(("body", *loc), msg) for loc, msg in problems])


def create_template(conn: psycopg.Connection, fields: dict[str, Any], default_timezone: str) -> dict:
    """A new template; its first occurrence is its start (or the schedule's first after it)."""
    fields = {"timezone": default_timezone, **{k: v for k, v in fields.items() if v is not None}}
    for name in ("start", "end"):
        fields[name] = read_when(conn, fields.get(name), fields["timezone"], name)
    _checked(conn, fields)
    columns = {**_columns(fields), "is_recurring": True}
    names = list(columns)
    with conn.transaction():
        template_id = conn.execute(
            f"INSERT INTO tickets ({', '.join(names)}) VALUES ({', '.join('%s' for _ in names)}) RETURNING id",
            [columns[n] for n in names]).fetchone()
        assert template_id is not None
        return get_template(conn, template_id[0], default_timezone)


def edit_template(conn: psycopg.Connection, template_id: int, changes: dict[str, Any], user: str, now: datetime,
                  default_timezone: str) -> dict:
    """Sets the fields given; a new schedule applies from the job's pointer on (nothing is created twice). A start
    moved before the pointer, to now or later, is where the series begins now: the job, which goes on from its
    pointer, would never reach it, so it restarts there as a reschedule does."""
    with conn.transaction():
        current = _as_template(_row(conn, template_id, default_timezone, lock=True))
        changes = {**changes, **{name: read_when(conn, changes[name], changes.get("timezone") or current["timezone"],
                                                 name) for name in ("start", "end") if name in changes}}
        merged = {**current, **changes}
        _checked(conn, merged)
        columns = _columns(changes)
        if columns:
            assignments = ", ".join(f"{name} = %s" for name in columns)
            conn.execute(f"UPDATE tickets SET {assignments}, updated_at = clock_timestamp() WHERE id = %s",
                         [*columns.values(), template_id])
        start, pointer = changes.get("start"), current["next_occurrence"]
        if start is not None and pointer is not None and now <= start < pointer:
            conn.execute("UPDATE tickets SET reschedule_at = %s, reschedule_by = %s, reschedule_reason = %s"
                         " WHERE id = %s", (start, user, "start edited to before the next occurrence", template_id))
            apply_reschedules(conn, [template_id])
        return get_template(conn, template_id, default_timezone)


def pause_template(conn: psycopg.Connection, template_id: int, reason: str | None, user: str,
                   default_timezone: str) -> dict:
    with conn.transaction():
        row = _row(conn, template_id, default_timezone, lock=True)
        if row["state"] in ("paused", "ended"):
            raise TemplateConflict(f"template {template_id} is {row['state']}: only an active or parked template"
                                   " can be paused")
        conn.execute("UPDATE tickets SET paused_at = clock_timestamp(), paused_by = %s, pause_reason = %s,"
                     " updated_at = clock_timestamp() WHERE id = %s", (user, reason, template_id))
        return get_template(conn, template_id, default_timezone)


def resume_template(conn: psycopg.Connection, template_id: int, missed: str, user: str, now: datetime,
                    default_timezone: str) -> dict:
    """Resumes a paused template. `missed='skip'`: every occurrence from its pointer up to `now`, and every move
    to an instant up to `now` not yet made, is recorded as skipped by `user`; `missed='policy'`: the job treats
    them as missed (the template's missed_policy) and makes the moves."""
    with conn.transaction():
        row = _row(conn, template_id, default_timezone, lock=True)
        if row["state"] != "paused":
            raise TemplateConflict(f"template {template_id} is {row['state']}, not paused")
        if missed == "skip" and row["next_occurrence"] is not None and row["next_occurrence"] <= now:
            try:
                fell_due = schedule_occurrences(conn, schedule_of(row), row["next_occurrence"], until=now)
            except RecurrenceError as exc:
                raise TemplateConflict(f"cannot skip what fell due while paused: {exc}; reschedule it instead"
                                       ) from exc
            conn.execute(
                "INSERT INTO recurring_occurrence_skips (template_id, occurrence_at, kind, skipped_by, reason)"
                " SELECT %s, o, 'skipped', %s, 'fell due while the template was paused' FROM unnest(%s::timestamptz[])"
                " AS o ON CONFLICT (template_id, occurrence_at) DO NOTHING", (template_id, user, fell_due))
        if missed == "skip":  # a move whose new instant passed while paused fell due too: skipped, as the others
            conn.execute(
                "UPDATE recurring_occurrence_skips SET kind = 'skipped', moved_to = NULL, skipped_by = %(user)s,"
                " reason = 'fell due while the template was paused (moved to '"
                " || to_char(moved_to AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') || ' UTC)'"
                " WHERE template_id = %(id)s AND kind = 'moved' AND ticket_id IS NULL AND moved_to <= %(now)s",
                {"user": user, "id": template_id, "now": now})
        conn.execute("UPDATE tickets SET paused_at = NULL, paused_by = NULL, pause_reason = NULL,"
                     " updated_at = clock_timestamp() WHERE id = %s", (template_id,))
        return get_template(conn, template_id, default_timezone)


def _pending_occurrence(conn: psycopg.Connection, row: dict, occurrence: datetime, field: str) -> None:
    """Refuses an occurrence the schedule does not produce, or one already created, skipped or moved."""
    if row["state"] == "ended" or row["next_occurrence"] is None:
        raise TemplateConflict(f"template {row['id']} has ended: it has no occurrence left")
    try:
        produced = schedule_occurrences(conn, schedule_of(row), occurrence, count=1) == [occurrence]
    except RecurrenceError as exc:
        raise TemplateConflict(f"template {row['id']} cannot be scheduled: {exc}") from exc
    if not produced:
        raise InvalidTemplate([(("body", field), "not an occurrence of the template's schedule")])
    handled = conn.execute(
        "SELECT (SELECT kind FROM recurring_occurrence_skips WHERE template_id = %(id)s AND occurrence_at = %(o)s),"
        " EXISTS (SELECT 1 FROM tickets WHERE recurring_parent_id = %(id)s AND occurrence_at = %(o)s)",
        {"id": row["id"], "o": occurrence}).fetchone()
    assert handled is not None
    if handled[0] is not None:
        raise TemplateConflict(f"that occurrence is already {handled[0]}")
    if handled[1] or occurrence < row["next_occurrence"]:
        raise TemplateConflict("that occurrence's ticket was already created (or the job passed it)")


def skip_occurrence(conn: psycopg.Connection, template_id: int, occurrence: datetime, reason: str, user: str,
                    default_timezone: str) -> dict:
    """Records one occurrence as skipped (like an EXDATE), by `user` because of `reason`."""
    with conn.transaction():
        row = _row(conn, template_id, default_timezone, lock=True)
        occurrence = read_when(conn, occurrence, row["timezone"], "occurrence") or occurrence
        _pending_occurrence(conn, row, occurrence, "occurrence")
        conn.execute("INSERT INTO recurring_occurrence_skips (template_id, occurrence_at, kind, skipped_by, reason)"
                     " VALUES (%s, %s, 'skipped', %s, %s)", (template_id, occurrence, user, reason))
        return get_template(conn, template_id, default_timezone)


def move_occurrence(conn: psycopg.Connection, template_id: int, occurrence: datetime, to: datetime, reason: str,
                    user: str, now: datetime, default_timezone: str) -> dict:
    """Moves one occurrence: its ticket is created at `to` instead (and the schedule's instant gets none)."""
    with conn.transaction():
        row = _row(conn, template_id, default_timezone, lock=True)
        occurrence = read_when(conn, occurrence, row["timezone"], "occurrence") or occurrence
        to = read_when(conn, to, row["timezone"], "to") or to
        if to < now:
            raise InvalidTemplate([(("body", "to"), "to must not be in the past")])
        _pending_occurrence(conn, row, occurrence, "occurrence")
        clash = schedule_occurrences(conn, schedule_of(row), to, count=1) == [to] or conn.execute(
            "SELECT 1 FROM recurring_occurrence_skips WHERE template_id = %s AND moved_to = %s",
            (template_id, to)).fetchone() is not None
        if clash:
            raise InvalidTemplate([(("body", "to"), "another occurrence of the template is at that instant")])
        conn.execute("INSERT INTO recurring_occurrence_skips (template_id, occurrence_at, kind, moved_to, skipped_by,"
                     " reason) VALUES (%s, %s, 'moved', %s, %s, %s)", (template_id, occurrence, to, user, reason))
        return get_template(conn, template_id, default_timezone)


def reschedule_template(conn: psycopg.Connection, template_id: int, start: datetime, reason: str | None,
                        user: str, now: datetime, default_timezone: str) -> dict:
    """Restarts the series at `start` (its new first occurrence), through `reschedule_at` as any writer would.
    Not into the past: that would create again every occurrence from there to now, beside the tickets made."""
    with conn.transaction():
        row = _row(conn, template_id, default_timezone, lock=True)
        start = read_when(conn, start, row["timezone"], "from") or start
        if start < now:
            raise InvalidTemplate([(("body", "from"), "from must not be in the past")])
        problems = check_schedule(conn, Schedule(row["interval"], row["every"], row["rrule"], row["timezone"],
                                                 start, row["end"]))
        if problems:
            raise InvalidTemplate([(("body", "from"), msg) for _, msg in problems])
        conn.execute("UPDATE tickets SET reschedule_at = %s, reschedule_by = %s, reschedule_reason = %s"
                     " WHERE id = %s", (start, user, reason, template_id))
        apply_reschedules(conn, [template_id])
        return get_template(conn, template_id, default_timezone)


def apply_reschedules(conn: psycopg.Connection, template_ids: list[int] | None = None) -> list[int]:
    """The job's consumption of `reschedule_at` (of the templates given, or of all): each series restarts there.
    Run in the caller's transaction, as the job: it moves the pointer."""
    as_the_job(conn)
    return [r[0] for r in conn.execute(queries.load("recurring/apply_reschedules"), {"template_ids": template_ids})]


def history(conn: psycopg.Connection, template_id: int, default_timezone: str, limit: int,
            offset: int) -> tuple[list[dict], int]:
    """Occurrences created (with their ticket) and skipped or moved (who, why), newest first."""
    _row(conn, template_id, default_timezone)
    with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        entries = cur.execute(queries.load("recurring/history"),
                              {"template_id": template_id, "limit": limit, "offset": offset}).fetchall()
    total = conn.execute(
        "SELECT (SELECT count(*) FROM tickets WHERE recurring_parent_id = %(id)s)"
        " + (SELECT count(*) FROM recurring_occurrence_skips WHERE template_id = %(id)s)",
        {"id": template_id}).fetchone()
    return entries, total[0] if total else 0
