"""Reservations and their email in the real Airflow: the outbox drains through the triggerer, the schedule completes."""

import mailbox
import time
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from tests.support import eventually

pytestmark = pytest.mark.e2e


@pytest.fixture
def reservation_db(stack):
    with psycopg.connect(stack.app_db_url, autocommit=True) as conn:
        conn.execute("TRUNCATE reservations, customers, email_outbox RESTART IDENTITY CASCADE")
        yield conn


def _delivered_to(stack, address):
    box = mailbox.Maildir(str(stack.mailbox), create=False)
    return [box.get_message(key) for key in box.keys() if box.get_message(key)["To"] == address]


def test_confirming_a_reservation_with_plain_sql_mails_the_customer_within_seconds(stack, api, reservation_db):
    customer = reservation_db.execute(
        "INSERT INTO customers (username, first_name, last_name, email) VALUES ('zoe', 'Zoe', 'Park',"
        " 'zoe@example.com') RETURNING id").fetchone()[0]
    reservation = reservation_db.execute("INSERT INTO reservations (customer_id, start_time) VALUES (%s, %s)"
                                         " RETURNING id", (customer, datetime.now(UTC) + timedelta(days=30))
                                         ).fetchone()[0]
    confirmed_at = time.monotonic()
    reservation_db.execute("UPDATE reservations SET status = 'confirmed' WHERE id = %s", (reservation,))

    delivered = []
    while time.monotonic() - confirmed_at < 120 and not delivered:
        delivered = _delivered_to(stack, "zoe@example.com")
        time.sleep(0.5)
    assert delivered, "no email within 120 s"
    [message] = delivered
    assert message["Subject"] == "Your Reservation is Confirmed!"
    outbox_row = eventually(lambda: reservation_db.execute(
        "SELECT status, smtp_message_id FROM email_outbox WHERE dedup_key = %s AND status = 'sent'",
        (f"reservation:{reservation}:confirmed",)).fetchone())
    assert outbox_row == ("sent", message["Message-ID"])
    sent_by_runs = eventually(lambda: reservation_db.execute(
        "SELECT sum(changed) FROM automation_runs WHERE dag_id = 'notifications'").fetchone()[0])
    assert sent_by_runs >= 1, "the notifications runs audit what they sent"


def test_a_reservation_36_minutes_past_its_start_is_completed_by_the_scheduled_run(api, reservation_db):
    customer = reservation_db.execute("INSERT INTO customers (username, email) VALUES ('yan', 'yan@example.com')"
                                      " RETURNING id").fetchone()[0]
    inserted = datetime.now(UTC)
    overdue, fresh = (reservation_db.execute(
        "INSERT INTO reservations (customer_id, start_time, status) VALUES (%s, %s, 'confirmed') RETURNING id",
        (customer, inserted - timedelta(minutes=minutes))).fetchone()[0] for minutes in (36, 5))

    deadline = time.monotonic() + 180  # the e2e stack runs it every minute
    while time.monotonic() < deadline:
        later = [r for r in api.runs("reservation_lifecycle", run_type="scheduled", state="success")
                 if datetime.fromisoformat(r["data_interval_end"].replace("Z", "+00:00")) > inserted]
        if later:
            break
        time.sleep(3)
    assert later, "no scheduled run of reservation_lifecycle finished after the insert"
    statuses = dict(reservation_db.execute("SELECT id, status FROM reservations").fetchall())
    assert statuses == {overdue: "completed", fresh: "confirmed"}


def test_dead_email_is_requeued_from_the_rest_api_and_then_delivered(stack, api, reservation_db):
    message_id = reservation_db.execute(
        "INSERT INTO email_outbox (dedup_key, template, recipient, context, status, attempts, last_error)"
        " VALUES ('e2e:dead', 'reservation_cancelled', 'kim@example.com', %s, 'dead', 8, '550 earlier')"
        " RETURNING id",
        ('{"reservation_id": 7, "status": "cancelled", "start_time": "2026-12-24T18:00:00+00:00",'
         ' "customer_name": "Kim", "customer_email": "kim@example.com"}',)).fetchone()[0]

    refused = api.session.post(api.url("dags/email_requeue/dagRuns"), timeout=30,
                               json={"logical_date": None, "conf": {"message_ids": ["seven"]}})
    assert refused.status_code == 400, refused.text
    run = api.trigger("email_requeue", conf={"message_ids": [message_id]})
    assert api.wait_for_run("email_requeue", run["dag_run_id"])["state"] == "success"
    assert api.xcom("email_requeue", run["dag_run_id"], "requeue_dead_messages") == 1

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not _delivered_to(stack, "kim@example.com"):
        time.sleep(0.5)
    [message] = _delivered_to(stack, "kim@example.com")
    assert message["Subject"] == "Your Reservation has been Cancelled"
    assert eventually(lambda: reservation_db.execute(
        "SELECT status, attempts FROM email_outbox WHERE id = %s AND status = 'sent'",
        (message_id,)).fetchone()) == ("sent", 1)
