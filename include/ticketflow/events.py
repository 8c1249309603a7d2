"""Event lifecycle: the seed's `mark_ended_events_as_completed` and its planned extensions, as set-based statements."""

from __future__ import annotations

from datetime import timedelta

import psycopg
from psycopg.rows import dict_row

from ticketflow import queries, settings
from ticketflow.audit import RunOutcome, RunWindow, changed_rows
from ticketflow.db import one


def advance_events(conn: psycopg.Connection, window: RunWindow) -> RunOutcome:
    """As of the run's due instant: ended events complete, begun ones go ongoing, attendees get reminders.

    One transaction (the caller's unit): the three statements see and leave one consistent state.
    """
    params = {"due_at": window.due_at,
              "remind_before_seconds": timedelta(hours=settings.event_reminder_hours()).total_seconds()}
    completed = queries.changed_ids(conn, "events/complete_ended", params, "event %s ended: completed")
    started = queries.changed_ids(conn, "events/start_begun", params, "event %s started: ongoing")
    reminders = conn.execute(queries.load("events/queue_reminders"), params).rowcount
    return RunOutcome(processed=len(completed) + len(started) + reminders, changed=len(completed) + len(started),
                      details={"completed": len(completed), "started": len(started), "reminders_queued": reminders,
                               "completed_ids": completed, "started_ids": started})


def archive_completed_events(conn: psycopg.Connection, window: RunWindow) -> RunOutcome:
    """Completed events that ended more than the retention period before the run become archived."""
    archived = queries.changed_ids(
        conn, "events/archive_completed",
        {"due_at": window.due_at,
         "archive_after_seconds": timedelta(days=settings.event_archive_days()).total_seconds()},
        "event %s archived")
    return changed_rows("archived", archived)


class EventNotFound(LookupError):
    pass


_EVENT_COLUMNS = "e.id, e.title, e.start_date, e.end_date, e.status, e.created_at, e.updated_at"


def discoverable_events(conn: psycopg.Connection, limit: int, offset: int) -> tuple[list[dict], int]:
    """The public listing (the seed's `list`): no completed, cancelled or archived events; soonest first."""
    with conn.cursor(row_factory=dict_row) as cur:
        total = one(cur.execute("SELECT count(*) AS n FROM events_discoverable"))["n"]
        rows = cur.execute(f"SELECT {_EVENT_COLUMNS} FROM events_discoverable e ORDER BY e.start_date, e.id"
                           " LIMIT %s OFFSET %s", (limit, offset)).fetchall()
    return rows, total


def get_event(conn: psycopg.Connection, event_id: int) -> dict:
    """Any event by id, completed ones too (the seed's `retrieve`: a direct link keeps working)."""
    with conn.cursor(row_factory=dict_row) as cur:
        event = cur.execute(f"SELECT {_EVENT_COLUMNS} FROM events e WHERE e.id = %s", (event_id,)).fetchone()
    if event is None:
        raise EventNotFound(f"event {event_id} does not exist")
    return event


def attendee_events(conn: psycopg.Connection, customer_id: int, include_completed: bool = True) -> list[dict]:
    """The seed's `my_events`: every event the customer attends, history included unless asked otherwise."""
    with conn.cursor(row_factory=dict_row) as cur:
        if cur.execute("SELECT 1 FROM customers WHERE id = %s", (customer_id,)).fetchone() is None:
            raise EventNotFound(f"customer {customer_id} does not exist")
        return cur.execute(
            f"SELECT {_EVENT_COLUMNS} FROM events e JOIN event_attendees a ON a.event_id = e.id"
            " WHERE a.customer_id = %(customer)s"
            " AND (%(include_completed)s OR e.status NOT IN ('completed', 'archived'))"
            " ORDER BY e.start_date DESC, e.id",
            {"customer": customer_id, "include_completed": include_completed}).fetchall()
