"""Event lifecycle: the seed's `mark_ended_events_as_completed` and its planned extensions, as set-based statements."""

from __future__ import annotations

from datetime import timedelta

import psycopg

from ticketflow import queries, settings
from ticketflow.audit import RunOutcome, RunWindow


def advance_events(conn: psycopg.Connection, window: RunWindow) -> RunOutcome:
    """As of the run's due instant: ended events complete, begun ones go ongoing, attendees get reminders.

    One transaction (the caller's unit): the three statements see and leave one consistent state.
    """
    params = {"due_at": window.due_at, "remind_before": timedelta(hours=settings.event_reminder_hours())}
    completed = conn.execute(queries.load("events/complete_ended"), params).rowcount
    started = conn.execute(queries.load("events/start_begun"), params).rowcount
    reminders = conn.execute(queries.load("events/queue_reminders"), params).rowcount
    return RunOutcome(processed=completed + started + reminders, changed=completed + started,
                      details={"completed": completed, "started": started, "reminders_queued": reminders})


def archive_completed_events(conn: psycopg.Connection, window: RunWindow) -> RunOutcome:
    """Completed events that ended more than the retention period before the run become archived."""
    archived = conn.execute(queries.load("events/archive_completed"),
                            {"due_at": window.due_at,
                             "archive_after": timedelta(days=settings.event_archive_days())}).rowcount
    return RunOutcome(processed=archived, changed=archived, details={"archived": archived})
