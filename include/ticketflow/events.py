"""Event lifecycle: what the seed's `mark_ended_events_as_completed` did, as one statement."""

from __future__ import annotations

import psycopg

from ticketflow import queries
from ticketflow.audit import RunOutcome, RunWindow


def complete_ended_events(conn: psycopg.Connection, window: RunWindow) -> RunOutcome:
    """Confirmed or ongoing events that ended before the run's due instant become completed."""
    completed = conn.execute(queries.load("events/complete_ended"), {"due_at": window.due_at}).rowcount
    return RunOutcome(processed=completed, changed=completed, details={"completed": completed})
