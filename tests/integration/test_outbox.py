"""The email outbox end to end against real PostgreSQL and a real SMTP server: nothing lost, nothing doubled."""

import smtplib
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import pytest

from devstack.standins import SMTP_PASSWORD, SMTP_USER, SmtpStandIn, deliveries
from tests.support import connected_standin
from ticketflow import limits, tasks
from ticketflow.audit import AuditedRun, RunWindow, run_audited
from ticketflow.events import advance_events
from ticketflow.intake import receive_ticket
from ticketflow.outbox import SmtpUnavailable, requeue_dead, send_due_messages, send_queued_email, smtp_sender

START = datetime(2026, 7, 14, 17, 5, tzinfo=UTC)  # 13:05 in Toronto (EDT)


@pytest.fixture
def smtp(tmp_path, monkeypatch):
    yield from connected_standin(SmtpStandIn(tmp_path / "mail"), "smtp", monkeypatch)


def send(db, run_id="notifications__1", max_attempts=3):
    with AuditedRun(db, RunWindow("notifications", run_id, START)) as run, smtp_sender() as (send_one, sender):
        send_due_messages(run, send_one, sender=sender, admin_email="desk@example.com",
                          timezone="America/Toronto", max_attempts=max_attempts)
    return run.outcome


def customer(db, username, first="", last="", email=None):
    return db.execute("INSERT INTO customers (username, first_name, last_name, email) VALUES (%s, %s, %s, %s)"
                      " RETURNING id", (username, first, last, email or f"{username}@example.com")).fetchone()[0]


def reserve(db, customer_id, status="pending"):
    return db.execute("INSERT INTO reservations (customer_id, start_time, status) VALUES (%s, %s, %s) RETURNING id",
                      (customer_id, START, status)).fetchone()[0]


def parts(message):
    text = message.get_body(("plain",)).get_content().replace("\r\n", "\n")
    html = message.get_body(("html",)).get_content().replace("\r\n", "\n")
    return text, html


def test_each_reservation_email_has_its_subject_recipient_and_fields(db, smtp):
    ana = customer(db, "ana", "Ana", "Silva")
    ben = customer(db, "ben99")  # no first name: the username is used
    confirmed = reserve(db, ana)
    cancelled = reserve(db, ben)
    db.execute("UPDATE reservations SET status = 'confirmed' WHERE id = %s", (confirmed,))
    db.execute("UPDATE reservations SET status = 'cancelled' WHERE id = %s", (cancelled,))

    outcome = send(db)
    assert (outcome.processed, outcome.changed, outcome.details) == (4, 4, {"sent": 4})
    mail = {(m["To"], m["Subject"]): m for m in smtp.messages()}
    assert sorted(mail) == sorted([
        ("ana@example.com", "Your Reservation is Confirmed!"),
        ("ben99@example.com", "Your Reservation has been Cancelled"),
        ("desk@example.com", f"🔔 New Reservation #{cancelled} - Action Required"),
        ("desk@example.com", f"🔔 New Reservation #{confirmed} - Action Required"),
    ])
    text, html = parts(mail[("ana@example.com", "Your Reservation is Confirmed!")])
    assert f"Hello Ana Silva,\n\nYour reservation #{confirmed} is confirmed for 14/07/2026 at 13:05." in text
    assert "<strong>14/07/2026</strong> at <strong>13:05</strong>" in html
    text, _ = parts(mail[("ben99@example.com", "Your Reservation has been Cancelled")])
    assert f"Hello ben99,\n\nYour reservation #{cancelled} for 14/07/2026 at 13:05 has been cancelled." in text
    text, _ = parts(mail[("desk@example.com", f"🔔 New Reservation #{confirmed} - Action Required")])
    assert "Customer:    Ana Silva <ana@example.com>" in text and "Status:      pending" in text

    rows = db.execute("SELECT status, attempts, sent_at IS NOT NULL, smtp_message_id, sent_at FROM email_outbox"
                      ).fetchall()
    assert {r[:3] for r in rows} == {("sent", 1, True)}
    assert {r[3] for r in rows} == {m["Message-ID"] for m in smtp.messages()}
    sent_at = {r[3]: r[4] for r in rows}
    for m in smtp.messages():  # RFC 5322's Date: when this attempt sent it
        assert timedelta(0) <= sent_at[m["Message-ID"]] - parsedate_to_datetime(m["Date"]) < timedelta(seconds=5)
    assert send(db, "notifications__2").processed == 0  # nothing is sent twice


def test_the_same_change_queues_one_message_and_a_rolled_back_change_none(db):
    ana = customer(db, "ana", "Ana")
    reservation = reserve(db, ana)
    db.execute("UPDATE reservations SET status = 'confirmed' WHERE id = %s", (reservation,))
    db.execute("UPDATE reservations SET status = 'confirmed' WHERE id = %s", (reservation,))  # no change
    with pytest.raises(RuntimeError), db.transaction():
        db.execute("UPDATE reservations SET status = 'cancelled' WHERE id = %s", (reservation,))
        raise RuntimeError("the application changed its mind")
    keys = [r[0] for r in db.execute("SELECT dedup_key FROM email_outbox ORDER BY id")]
    assert keys == [f"reservation:{reservation}:created", f"reservation:{reservation}:confirmed"]


def test_smtp_down_for_a_while_loses_nothing_sends_nothing_twice_and_charges_no_attempt(db, smtp, tmp_path):
    ana = customer(db, "ana", "Ana")
    for _ in range(3):
        db.execute("UPDATE reservations SET status = 'confirmed' WHERE id = %s", (reserve(db, ana),))
    port = smtp.port
    smtp.stop()
    with pytest.raises(SmtpUnavailable):
        send(db)
    assert db.execute("SELECT count(*), sum(attempts) FROM email_outbox WHERE status = 'queued'").fetchone() == (6, 0)
    assert db.execute("SELECT status, error FROM automation_runs").fetchone()[0] == "error"

    back = SmtpStandIn(tmp_path / "mail-after", port=port).start()
    try:
        assert send(db, "notifications__2").changed == 6
        assert len(back.messages()) == 6
        assert send(db, "notifications__3").processed == 0
        assert len(back.messages()) == 6
    finally:
        back.stop()


def test_a_message_that_always_fails_backs_off_then_ends_dead_and_can_be_requeued(db, smtp):
    bad = customer(db, "eve", "Eve", email="eve@refused.example")
    db.execute("UPDATE reservations SET status = 'confirmed' WHERE id = %s", (reserve(db, bad),))
    first = send(db, max_attempts=3)
    assert first.details == {"sent": 1, "failed": 1, "dead": 0}  # the admin message went out
    row = "SELECT status, attempts, last_error, next_attempt_at > clock_timestamp() FROM email_outbox" \
          " WHERE recipient = 'eve@refused.example'"
    status, attempts, error, later = db.execute(row).fetchone()
    assert (status, attempts, later) == ("queued", 1, True)
    assert "550" in error and "mailbox unavailable" in error

    assert send(db, "notifications__early").processed == 0  # backing off: not retried yet
    for n in (2, 3):
        db.execute("UPDATE email_outbox SET next_attempt_at = clock_timestamp() WHERE status = 'queued'")
        send(db, f"notifications__{n}", max_attempts=3)
    assert db.execute(row).fetchone()[:2] == ("dead", 3)
    assert [m["To"] for m in smtp.messages()] == ["desk@example.com"]

    assert requeue_dead(db, [999]) == 0  # only the ids given
    assert requeue_dead(db, None) == 1  # what the email_requeue DAG does
    db.execute("UPDATE customers SET email = 'eve@example.com' WHERE id = %s", (bad,))
    db.execute("UPDATE email_outbox SET recipient = 'eve@example.com' WHERE recipient = 'eve@refused.example'")
    assert send(db, "notifications__requeued", max_attempts=3).changed == 1


def test_hostile_text_is_sent_literally_and_escaped_in_html(db, smtp):
    name = "<script>alert('x')</script> O'Brien & Sons; DROP TABLE tickets;--"
    customer_id = customer(db, "mallory", name, "x" * limits.column_length("customers", "last_name"))
    db.execute("UPDATE reservations SET status = 'confirmed' WHERE id = %s", (reserve(db, customer_id),))
    send(db)
    [message] = [m for m in smtp.messages() if m["To"] == "mallory@example.com"]
    text, html = parts(message)
    assert name in text and "x" * limits.column_length("customers", "last_name") in text
    assert "<script>" not in html and "&lt;script&gt;" in html and "O&#39;Brien &amp; Sons" in html


def test_an_event_reminder_reaches_each_attendee_with_the_local_time(db, smtp):
    start = datetime(2026, 11, 1, 14, 0, tzinfo=UTC)  # 09:00 EST, the morning Toronto falls back
    event = db.execute("INSERT INTO events (title, start_date, status) VALUES ('Town hall', %s, 'confirmed')"
                       " RETURNING id", (start,)).fetchone()[0]
    db.execute("INSERT INTO event_attendees VALUES (%s, %s)", (event, customer(db, "ana", "Ana", "Silva")))
    run_audited(db, RunWindow("event_lifecycle", "r", start.replace(hour=0)), advance_events)
    send(db)
    [message] = smtp.messages()
    assert (message["To"], message["Subject"]) == ("ana@example.com",
                                                   "Reminder: Town hall starts on 01/11/2026 at 09:00")
    text, html = parts(message)
    assert "Hello Ana Silva,\n\nA reminder that Town hall starts on 01/11/2026 at 09:00." in text
    assert "<strong>Town hall</strong>" in html


def test_a_line_break_in_a_title_or_subject_stays_inside_one_subject_line(db, smtp):
    start = datetime(2026, 7, 15, 14, 0, tzinfo=UTC)
    event = db.execute("INSERT INTO events (title, start_date, status) VALUES (%s, %s, 'confirmed') RETURNING id",
                       ("Town\r\nBcc: victim@example.com\nhall", start)).fetchone()[0]
    db.execute("INSERT INTO event_attendees VALUES (%s, %s)", (event, customer(db, "ana", "Ana", "Silva")))
    run_audited(db, RunWindow("event_lifecycle", "r", start.replace(hour=0)), advance_events)
    ticket = receive_ticket(db, {"subject": "Printer\nbroken", "department": "IT", "category": "HW",
                                 "requester_email": "eve@example.com"}, "ticket_intake/n1")
    workflow = db.execute("INSERT INTO workflows (name, department, category, is_published, status, end_logic)"
                          " VALUES ('Flow', 'IT', 'HW', true, 'deployed', 'notification') RETURNING id").fetchone()[0]
    db.execute("INSERT INTO steps (workflow_id, name, role_name, step_order) VALUES (%s, 'Only', 'Tech', 1)",
               (workflow,))
    tasks.complete_task(db, tasks.create_task_for_ticket(db, ticket["ticket_id"], lambda role: [7], 1)["task_id"])

    assert send(db).details == {"sent": 2}
    subjects = {m["To"]: m["Subject"].strip() for m in smtp.messages()}  # a long subject is folded
    assert subjects == {"ana@example.com": "Reminder: Town Bcc: victim@example.com hall starts on 15/07/2026 at 10:00",
                        "eve@example.com": f"Ticket #{ticket['ticket_id']} is done: Printer broken"}
    assert all(m["Bcc"] is None for m in smtp.messages())


def test_a_customer_with_an_empty_email_gets_a_clear_failure_not_the_desks_copy(db, smtp):
    reserve(db, customer(db, "noaddress", email=" "), status="confirmed")
    assert send(db).details == {"sent": 1, "failed": 1, "dead": 0}
    assert [(m["To"], m["Subject"]) for m in smtp.messages()] == [
        ("desk@example.com", "🔔 New Reservation #1 - Action Required")]
    assert db.execute("SELECT template, status, last_error FROM email_outbox WHERE status <> 'sent'").fetchall() == [
        ("reservation_confirmed", "queued", "ValueError: no recipient address: the customer has an empty email")]


def test_a_mistyped_time_zone_setting_fails_the_task_and_charges_no_message(db, smtp, monkeypatch):
    reserve(db, customer(db, "ana"), status="confirmed")
    monkeypatch.setenv("TICKETFLOW_TIMEZONE", "Europe/Londn")
    with pytest.raises(ValueError, match="TICKETFLOW_TIMEZONE must be an IANA time zone name.*'Europe/Londn'"):
        with AuditedRun(db, RunWindow("notifications", "tz", START)) as run:
            send_queued_email(run)
    assert db.execute("SELECT DISTINCT status, attempts FROM email_outbox").fetchall() == [("queued", 0)]
    assert smtp.messages() == []


def test_a_crash_after_smtp_accepted_resends_the_same_message_id_and_the_mailbox_keeps_one(db, smtp, tmp_path):
    """The duplicate window: the message went out, the commit did not. The resend is the same message."""
    reserve(db, customer(db, "cy"), status="confirmed")  # queues the customer's and the desk's message
    first_ids = []

    def send_then_die(message):
        with smtplib.SMTP("127.0.0.1", smtp.port) as server:
            server.login(SMTP_USER, SMTP_PASSWORD)
            server.send_message(message)
        first_ids.append(message["Message-ID"])
        raise SystemExit("the worker died before the commit")

    with pytest.raises(SystemExit), AuditedRun(db, RunWindow("notifications", "crash", START)) as run:
        send_due_messages(run, send_then_die, sender="ticketflow@localhost", admin_email="desk@example.com",
                          timezone="UTC", max_attempts=3)
    assert db.execute("SELECT count(*) FROM email_outbox WHERE status = 'queued'").fetchone()[0] == 2

    assert send(db, "retry").changed == 2
    sent_ids = {row[0] for row in db.execute("SELECT smtp_message_id FROM email_outbox")}
    assert first_ids[0] in sent_ids
    kept = [m["Message-ID"] for m in smtp.messages()]
    assert sorted(kept) == sorted(sent_ids)  # two messages, each once, though one went out twice
    delivered = [d["message_id"] for d in deliveries(tmp_path / "mail")]
    assert delivered.count(first_ids[0]) == 2 and len(delivered) == 3


def test_a_hostile_ticket_is_stored_literally_and_its_completion_email_escapes_it(db, smtp):
    """SQL, HTML and the longest description intake takes (100,000 characters), then the requester's "done" email."""
    subject = "<img src=x onerror=alert(1)> '; DROP TABLE tickets;-- & more"
    description = "<b>" + "y" * (limits.column_length("tickets", "description") - 7) + "</b>"
    ticket = receive_ticket(db, {"subject": subject, "description": description, "department": "IT",
                                 "category": "Hostile", "requester_email": "eve@example.com"}, "ticket_intake/h1")
    assert db.execute("SELECT subject, description FROM tickets WHERE id = %s",
                      (ticket["ticket_id"],)).fetchone() == (subject, description)
    workflow = db.execute("INSERT INTO workflows (name, department, category, is_published, status, end_logic)"
                          " VALUES ('<i>Flow</i>', 'IT', 'Hostile', true, 'deployed', 'notification') RETURNING id"
                          ).fetchone()[0]
    db.execute("INSERT INTO steps (workflow_id, name, role_name, step_order) VALUES (%s, 'Only', 'Tech', 1)",
               (workflow,))
    task = tasks.create_task_for_ticket(db, ticket["ticket_id"], lambda role: [7], max_assignments=1)
    tasks.complete_task(db, task["task_id"])
    send(db)
    [message] = [m for m in smtp.messages() if m["To"] == "eve@example.com"]
    text, html = parts(message)
    assert subject in text and "<img" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "&#39;; DROP TABLE tickets;-- &amp; more" in html


def test_each_message_logs_that_it_was_sent_or_why_not_once_as_the_seed_did(db, smtp, caplog):
    caplog.set_level("INFO", logger="ticketflow.outbox")
    for name, email in (("ana", "ana@example.com"), ("bob", "bob@refused.example")):
        db.execute("UPDATE reservations SET status = 'confirmed' WHERE id = %s",
                   (reserve(db, customer(db, name, email=email)),))
    send(db, max_attempts=1)
    lines = sorted((r.levelname, r.getMessage()) for r in caplog.records if r.name == "ticketflow.outbox")
    assert lines[:3] == [("ERROR", "Failed to send email to bob@refused.example: SMTPRecipientsRefused:"
                                   " {'bob@refused.example': (550, b'5.1.1 mailbox unavailable')} (dead: no attempt"
                                   " left)"),
                         ("INFO", "Email sent to ana@example.com"), ("INFO", "Email sent to desk@example.com")]
    assert lines[3:] == [("INFO", "Email sent to desk@example.com")]  # the two "New Reservation" messages
    caplog.clear()
    assert send(db, "notifications__2").processed == 0
    assert [r for r in caplog.records if r.name == "ticketflow.outbox"] == []
