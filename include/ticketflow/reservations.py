"""Reservation lifecycle: the seed's `check_overdue_reservations`, as one statement."""

from __future__ import annotations

import logging
from datetime import timedelta

import psycopg

from ticketflow import queries, settings
from ticketflow.audit import RunOutcome, RunWindow, changed_rows

log = logging.getLogger(__name__)


def complete_overdue_reservations(conn: psycopg.Connection, window: RunWindow) -> RunOutcome:
    """Confirmed reservations at least the grace period (35 minutes) past their start become completed."""
    completed = queries.changed_ids(
        conn, "reservations/complete_overdue",
        {"due_at": window.due_at,
         "grace_seconds": timedelta(minutes=settings.reservation_grace_minutes()).total_seconds()},
        "auto-completed overdue reservation %s")
    log.info("Auto-completed %d reservations", len(completed))  # the seed's line, once per run
    return changed_rows("completed", completed)
