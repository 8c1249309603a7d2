"""The deferrable wait against real PostgreSQL: the trigger's connection and its readiness answers."""

import asyncio
from contextlib import closing
from urllib.parse import quote

import psycopg
import pytest

from ticketflow.waiting import RowsReadyTrigger, _conninfo


@pytest.fixture
def ticketing_db_conn(app_db_url, monkeypatch):
    """`ticketing_db` as an operator might define it: with libpq options in the connection's extras."""
    extras = f"application_name=ticketflow-waiting&options={quote('-c statement_timeout=4321')}"
    monkeypatch.setenv("AIRFLOW_CONN_TICKETING_DB", f"{app_db_url}?{extras}")
    return "ticketing_db"


def _first_event(trigger):
    async def first():
        async for event in trigger.run():
            return event.payload
    return asyncio.run(first())


def test_the_wait_connects_with_the_connections_extras_as_the_tasks_do(ticketing_db_conn):
    with psycopg.connect(_conninfo(ticketing_db_conn)) as conn:
        assert conn.execute("SHOW application_name").fetchone()[0] == "ticketflow-waiting"
        assert conn.execute("SHOW statement_timeout").fetchone()[0] == "4321ms"
    assert "connect_timeout=10" in _conninfo(ticketing_db_conn)


def test_a_waiting_ticket_wakes_the_trigger_unless_another_transaction_holds_it(db, app_db_url, ticketing_db_conn):
    ticket = db.execute("INSERT INTO tickets (subject, department, category) VALUES ('Dock', 'IT', 'HW')"
                        " RETURNING id").fetchone()[0]
    trigger = RowsReadyTrigger(ticketing_db_conn, "ticketflow_tickets", "assignment/ready", poll_seconds=0.2,
                               max_wait_seconds=1.5)
    assert _first_event(trigger) == {"ready": True}

    with closing(psycopg.connect(app_db_url)) as holder:  # e.g. a manual create_task_for_ticket waiting on TTS
        holder.execute("UPDATE tickets SET next_allocation_at = NULL WHERE id = %s", (ticket,))
        assert _first_event(trigger) == {"ready": False}
        holder.rollback()
    assert _first_event(trigger) == {"ready": True}
