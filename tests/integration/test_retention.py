"""Retention against real PostgreSQL: what is past its age goes, in batches, and what exactly-once needs stays."""

import threading
import time
from contextlib import closing
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg.types.json import Jsonb

from ticketflow import retention, settings
from ticketflow.audit import AuditedRun, RunWindow
from ticketflow.tdx.log import record_report_read

DUE = datetime(2026, 6, 1, 3, 15, tzinfo=UTC)
AGES = {what: days for what, (_, days) in settings.RETENTION_DAYS.items()}
DAY = timedelta(days=1)


def _retain(db, ages=AGES, due_at=DUE, batch_size=retention.BATCH_SIZE, run_id="scheduled__retention"):
    window = RunWindow(dag_id="retention", run_id=run_id, due_at=due_at)
    with AuditedRun(db, window) as run:
        deleted = retention.delete_old_rows(run, ages, batch_size)
    return deleted, db.execute("SELECT processed, changed, details FROM automation_runs WHERE run_id = %s",
                               (run_id,)).fetchone()


def _audit_row(db, dag_id, started_at):
    return db.execute("INSERT INTO automation_runs (dag_id, run_id, due_at, started_at, status)"
                      " VALUES (%s, %s, %s, %s, 'success') RETURNING id",
                      (dag_id, f"run {started_at.isoformat()}", started_at, started_at)).fetchone()[0]


def test_old_audit_rows_go_in_batches_and_each_automations_latest_run_stays(db):
    old = [_audit_row(db, "event_lifecycle", DUE - (91 + n) * DAY) for n in range(5)]
    recent = _audit_row(db, "event_lifecycle", DUE - 89 * DAY)
    lone_old, lone_older = (_audit_row(db, "event_archive", DUE - d * DAY) for d in (200, 300))

    deleted, (processed, changed, details) = _retain(db, batch_size=2)

    left = {row[0] for row in db.execute("SELECT id FROM automation_runs WHERE dag_id <> 'retention'")}
    assert left == {recent, lone_old}  # event_archive's latest run stays however old
    assert not left & {*old, lone_older}
    assert deleted["automation_runs"] == 6 and details["automation_runs"] == 6 and processed == changed == 6
    assert details["cutoffs"]["automation_runs"] == (DUE - 90 * DAY).isoformat()


def test_sent_mail_goes_but_queued_dead_and_upcoming_reminders_stay(db):
    def message(key, status, sent_days_ago, template="reservation_confirmed", context=None):
        sent_at = DUE - sent_days_ago * DAY if status == "sent" else None
        return db.execute(
            "INSERT INTO email_outbox (dedup_key, template, recipient, context, status, sent_at, queued_at)"
            " VALUES (%s, %s, 'a@example.org', %s, %s, %s, %s) RETURNING id",
            (key, template, Jsonb(context or {}), status, sent_at, DUE - 60 * DAY)).fetchone()[0]

    gone = message("reservation:1:confirmed", "sent", 31)
    kept = {message("reservation:2:confirmed", "sent", 29), message("reservation:3:confirmed", "queued", 0),
            message("reservation:4:confirmed", "dead", 0),
            message("event:7:reminder:1:x", "sent", 40, "event_reminder", {"start_time": (DUE + DAY).isoformat()})}
    past_reminder = message("event:8:reminder:1:y", "sent", 40, "event_reminder",
                            {"start_time": (DUE - 39 * DAY).isoformat()})

    deleted, _ = _retain(db)

    assert {row[0] for row in db.execute("SELECT id FROM email_outbox")} == kept
    assert deleted["email_outbox"] == 2 and gone not in kept and past_reminder not in kept


def test_a_skip_goes_only_when_it_is_old_and_before_its_templates_pointer(db):
    """A move stays while the job still needs it: its ticket not made yet, or its new instant ahead."""
    def template(next_occurrence):
        template_id = db.execute(
            "INSERT INTO tickets (subject, department, category, is_recurring, recurrence_interval, recurrence_start,"
            " next_occurrence) VALUES ('Daily check', 'IT', 'Ops', true, 'daily', %s, %s) RETURNING id",
            (DUE - 400 * DAY, DUE - 400 * DAY)).fetchone()[0]
        with db.transaction():  # where the job's pointer got to (only the job writes it)
            db.execute("SELECT set_config('ticketflow.recurring_engine', 'on', true)")
            db.execute("UPDATE tickets SET next_occurrence = %s WHERE id = %s", (next_occurrence, template_id))
        return template_id

    live, written_back, ended = template(DUE + DAY), template(DUE - 300 * DAY), template(None)

    def skip(template_id, occurrence, skipped_days_ago):
        db.execute("INSERT INTO recurring_occurrence_skips (template_id, occurrence_at, run_id, reason, skipped_at)"
                   " VALUES (%s, %s, 'r', 'missed', %s)", (template_id, occurrence, DUE - skipped_days_ago * DAY))
        return template_id, occurrence

    def move(template_id, occurrence, moved_to, ticket_id):
        db.execute("INSERT INTO recurring_occurrence_skips (template_id, occurrence_at, kind, moved_to, ticket_id,"
                   " skipped_by, reason, skipped_at) VALUES (%s, %s, 'moved', %s, %s, 'ana', 'moved', %s)",
                   (template_id, occurrence, moved_to, ticket_id, DUE - 200 * DAY))
        return template_id, occurrence

    gone = {skip(live, DUE - 250 * DAY, 200), skip(ended, DUE - 250 * DAY, 200),
            skip(written_back, DUE - 310 * DAY, 200),
            move(live, DUE - 240 * DAY, DUE - 239 * DAY, 7)}  # its ticket made long ago
    kept = {skip(live, DUE - 100 * DAY, 100),  # too recent
            skip(live, DUE + DAY, 200), skip(live, DUE + 2 * DAY, 200),  # at and after the pointer
            skip(written_back, DUE - 300 * DAY, 200), skip(written_back, DUE - 200 * DAY, 200),
            move(live, DUE - 230 * DAY, DUE + 3 * DAY, None),  # its ticket is still to be made
            move(live, DUE - 220 * DAY, DUE + 4 * DAY, 8)}  # moved past the pointer: the job still reads it

    deleted, (_, _, details) = _retain(db, batch_size=1)

    assert set(db.execute("SELECT template_id, occurrence_at FROM recurring_occurrence_skips").fetchall()) == kept
    assert deleted["recurring_occurrence_skips"] == details["recurring_occurrence_skips"] == len(gone)


def test_archived_events_go_with_their_attendees_long_after_they_ended(db):
    customer = db.execute("INSERT INTO customers (username, email) VALUES ('ana', 'ana@example.org') RETURNING id"
                          ).fetchone()[0]

    def event(status, ended_days_ago):
        event_id = db.execute("INSERT INTO events (title, start_date, end_date) VALUES ('x', %s, %s) RETURNING id",
                              (DUE - (ended_days_ago + 1) * DAY, DUE - ended_days_ago * DAY)).fetchone()[0]
        db.execute("ALTER TABLE events DISABLE TRIGGER USER")
        db.execute("UPDATE events SET status = %s WHERE id = %s", (status, event_id))
        db.execute("ALTER TABLE events ENABLE TRIGGER USER")
        db.execute("INSERT INTO event_attendees VALUES (%s, %s)", (event_id, customer))
        return event_id

    gone = event("archived", 400)
    kept = {event("archived", 300), event("completed", 400), event("cancelled", 400)}

    deleted, _ = _retain(db)

    assert {row[0] for row in db.execute("SELECT id FROM events")} == kept and gone not in kept
    assert (deleted["events"], deleted["event_attendees"]) == (1, 1)
    assert db.execute("SELECT count(*) FROM event_attendees").fetchone()[0] == 3


def _log(db, ticket_id, status="completed", executed_at=DUE - 400 * DAY):
    db.execute("INSERT INTO meta.daemon_action_log (ticket_id, action_type, action_id, action_hash, status,"
               " executed_at) VALUES (%s, 'comment', %s, 'h', %s, %s)",
               (ticket_id, f"comment:{ticket_id}:{status}:v1", status, executed_at))


def _tickets_logged(db):
    return {row[0] for row in db.execute("SELECT DISTINCT ticket_id FROM meta.daemon_action_log")}


def test_a_tdx_tickets_log_goes_only_once_its_report_has_not_listed_it_for_the_age(db):
    for ticket_id in (1, 2, 3, 4, 5):
        _log(db, ticket_id)
    _log(db, 4, status="pending")
    long_ago = DUE - 200 * DAY
    record_report_read(db, 1001, [1, 2, 4], long_ago)
    record_report_read(db, 1001, [2, 4], long_ago + 2 * timedelta(hours=1))  # ticket 1 has left
    for hours in range(3, 48):  # reads of every hour for two days: ticket 2 is refreshed, not rewritten each time
        record_report_read(db, 1001, [2], long_ago + hours * timedelta(hours=1))
    record_report_read(db, 1002, [3], long_ago)  # report 1002 never read again: the queue stopped reading it
    record_report_read(db, 1001, [2, 5], DUE - DAY)  # still listed today: ticket 2, and 5 is back

    deleted, (_, _, details) = _retain(db)

    # 1: gone for 200 days. 2 and 5: listed. 3: no read since says it left. 4: a pending action.
    assert _tickets_logged(db) == {2, 3, 4, 5}
    assert (deleted["meta.tdx_ticket_sightings"], deleted["meta.daemon_action_log"]) == (1, 1)
    assert details["meta.daemon_action_log"] == 1
    assert 1 not in {row[0] for row in db.execute("SELECT ticket_id FROM meta.tdx_ticket_sightings")}


def test_tdx_logs_from_before_sightings_go_only_once_every_report_read_since_left_them_out(db, app_db_url):
    for ticket_id in (7, 8):
        _log(db, ticket_id, executed_at=DUE - 300 * DAY)
    db.execute("INSERT INTO meta.tdx_ticket_sightings SELECT ticket_id, NULL, max(executed_at)"
               " FROM meta.daemon_action_log GROUP BY ticket_id")  # what migration 0015 does
    _retain(db, run_id="before any read")
    assert _tickets_logged(db) == {7, 8}  # no read recorded: nothing is known to have left

    record_report_read(db, 1001, [8], DUE - 2 * DAY)
    record_report_read(db, 1002, [], DUE - 350 * DAY)  # last read before ticket 7 was: it may still list 7
    _retain(db, run_id="one report not read since")
    assert _tickets_logged(db) == {7, 8}

    record_report_read(db, 1002, [], DUE - 2 * DAY)
    _retain(db, run_id="every report read since")
    assert _tickets_logged(db) == {8}  # 8 is listed by 1001 (its sighting now says so)
    assert db.execute("SELECT report_id FROM meta.tdx_ticket_sightings WHERE ticket_id = 8").fetchone() == (1001,)


def test_old_alerts_go_once_nothing_they_listed_is_still_open(db):
    def alert(condition, raised_days_ago):
        return db.execute("INSERT INTO alerts (condition, period_start, raised_at, run_id, title, item_count, lines)"
                          " VALUES (%s, %s, %s, 'r', 't', 1, '[]') RETURNING id",
                          (condition, DUE - raised_days_ago * DAY, DUE - raised_days_ago * DAY)).fetchone()[0]

    closed, still_listing, recent = alert("emails_dead", 200), alert("tdx_actions_failed", 200), alert("x", 10)
    db.execute("INSERT INTO alert_items (condition, item_key, dag_id, since, line, alert_id)"
               " VALUES ('tdx_actions_failed', '5101', 'tdx_ticket_queue', %s, 'failed', %s)",
               (DUE - 200 * DAY, still_listing))

    deleted, _ = _retain(db)

    assert {row[0] for row in db.execute("SELECT id FROM alerts")} == {still_listing, recent}
    assert deleted["alerts"] == 1 and closed not in (still_listing, recent)
    assert db.execute("SELECT count(*) FROM alert_items").fetchone()[0] == 1  # nothing open is alerted anew


def test_a_rerun_of_an_earlier_day_deletes_no_more_than_that_day_and_never_keeps_for_good(db):
    row = _audit_row(db, "event_lifecycle", DUE - 95 * DAY)
    _audit_row(db, "event_lifecycle", DUE - DAY)
    _retain(db, due_at=DUE - 10 * DAY, run_id="a backfill")  # its cut-off is 100 days before DUE
    assert db.execute("SELECT count(*) FROM automation_runs WHERE id = %s", (row,)).fetchone()[0] == 1
    _retain(db, ages={**AGES, "automation_runs": None}, run_id="kept for good")
    assert db.execute("SELECT count(*) FROM automation_runs WHERE id = %s", (row,)).fetchone()[0] == 1
    _, (_, _, details) = _retain(db, run_id="today")
    assert details["cutoffs"]["airflow_metadata"] == (DUE - 30 * DAY).isoformat()
    assert db.execute("SELECT count(*) FROM automation_runs WHERE id = %s", (row,)).fetchone()[0] == 0


def test_a_row_another_transaction_holds_is_skipped_not_waited_for(db, app_db_url):
    held, free = (_audit_row(db, "event_lifecycle", DUE - d * DAY) for d in (200, 199))
    _audit_row(db, "event_lifecycle", DUE)
    locked, release = threading.Event(), threading.Event()

    def hold_the_row():
        with closing(psycopg.connect(app_db_url)) as other, other.transaction():
            other.execute("UPDATE automation_runs SET error = 'a rerun' WHERE id = %s", (held,))
            locked.set()
            release.wait(30)

    holder = threading.Thread(target=hold_the_row)
    holder.start()
    try:
        assert locked.wait(10)
        started = time.monotonic()
        _retain(db)
        assert time.monotonic() - started < 3
    finally:
        release.set()
        holder.join()
    left = {row[0] for row in db.execute("SELECT id FROM automation_runs WHERE dag_id = 'event_lifecycle'")}
    assert held in left and free not in left  # the next day's run takes it


@pytest.mark.parametrize("raw, message", [
    ("0", "TICKETFLOW_RETENTION_DAYS_SENT_EMAIL must be a whole number of days from 1 to 36500, or never; got '0'"),
    ("30.5", "got '30.5'"), ("forever", "got 'forever'"), ("36501", "got '36501'"), ("9" * 5000, "got '999"),
])
def test_a_bad_age_is_refused_with_its_name_before_anything_is_deleted(monkeypatch, raw, message):
    monkeypatch.setenv("TICKETFLOW_RETENTION_DAYS_SENT_EMAIL", raw)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        settings.retention_days()


def test_ages_default_and_never_keeps_for_good(monkeypatch):
    monkeypatch.setenv("TICKETFLOW_RETENTION_DAYS_AUTOMATION_RUNS", "Never")
    monkeypatch.setenv("TICKETFLOW_RETENTION_DAYS_TDX_ACTION_LOG", " 365 ")
    monkeypatch.setenv("TICKETFLOW_RETENTION_DAYS_SENT_EMAIL", "")
    ages = settings.retention_days()
    assert ages == {**AGES, "automation_runs": None, "tdx_action_log": 365}
    assert AGES == {"automation_runs": 90, "sent_email": 30, "recurring_skips": 180, "archived_events": 365,
                    "tdx_action_log": 180, "alerts": 180, "intake_keys": 7, "airflow_metadata": 30}


def test_idempotency_keys_go_once_older_than_their_age_whoever_sent_them(db):
    def key(user, name, days_old):
        db.execute("INSERT INTO intake_requests (requested_by, idempotency_key, request_sha256, response, created_at)"
                   " VALUES (%s, %s, 'sha', '{}', %s)", (user, name, DUE - timedelta(days=days_old)))

    for user in ("ana", "bob"):
        key(user, "old-1", 8)
        key(user, "old-2", 30)
        key(user, "recent", 6)
    deleted, _ = _retain(db, batch_size=1)  # every key its own batch: the keyset walks both users' keys
    assert deleted["intake_requests"] == 4
    assert sorted(db.execute("SELECT requested_by, idempotency_key FROM intake_requests").fetchall()) == [
        ("ana", "recent"), ("bob", "recent")]
