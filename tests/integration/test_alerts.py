"""Alerts against real PostgreSQL, the SMTP stand-in and a webhook stand-in: one alert per condition and period,
summarised, through the outbox, and the outbox's own alerts without it."""

import logging
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from devstack.standins import SmtpStandIn, WebhookStandIn
from tests.support import connected_standin
from ticketflow import alerts
from ticketflow.alerts import AlertSettings, check_alert_conditions, open_conditions, record_failed_task
from ticketflow.audit import AuditedRun, RunWindow
from ticketflow.dagkit import record_failure
from ticketflow.outbox import SmtpUnavailable, send_due_messages, send_queued_email, smtp_sender
from ticketflow.web import dashboard

T0 = datetime(2026, 7, 14, 13, 2, tzinfo=UTC)  # in the 13:00 period; 09:02 in Toronto
CONFIG = AlertSettings(recipients=["ops@example.com", "oncall@example.com"], period=timedelta(minutes=60),
                       waiting=timedelta(minutes=60), stalled=timedelta(minutes=15))
ALL_DAGS = {"event_lifecycle", "notifications", "tdx_ticket_queue", "recurring_tickets", "ticket_task_assignment"}


def check(db, due_at, post=None, config=CONFIG, run_id=None):
    with AuditedRun(db, RunWindow("alerts", run_id or f"scheduled__{due_at.isoformat()}", due_at)) as run:
        check_alert_conditions(run, config, post)
    return run.outcome


def raised(db):
    """{condition: (item count, lines)} of each condition's latest alert."""
    return {row[0]: (row[1], row[2]) for row in db.execute(
        "SELECT condition, item_count, lines FROM alerts ORDER BY id")}


def fail_task(db, at, run_id="manual__1", task_id="advance_events", try_number=4, dag_id="event_lifecycle"):
    record_failed_task(db, dag_id=dag_id, run_id=run_id, task_id=task_id, map_index=-1, try_number=try_number,
                       error="RuntimeError: database said no", failed_at=at)


def dead_email(db, recipient, queued_at):
    return db.execute(
        "INSERT INTO email_outbox (dedup_key, template, recipient, context, status, attempts, last_error, queued_at)"
        " VALUES (gen_random_uuid()::text, 'reservation_confirmed', %s, '{}', 'dead', 8, '550 mailbox unavailable',"
        " %s) RETURNING id", (recipient, queued_at)).fetchone()[0]


def overdue_email(db, due_since):
    return db.execute(
        "INSERT INTO email_outbox (dedup_key, template, recipient, context, next_attempt_at, queued_at)"
        " VALUES (gen_random_uuid()::text, 'reservation_cancelled', 'ana@example.com', '{}', %s, %s) RETURNING id",
        (due_since, due_since)).fetchone()[0]


def failed_tdx_action(db, ticket_id, at, error="403 Forbidden"):
    db.execute("INSERT INTO meta.daemon_action_log (ticket_id, action_type, action_id, action_hash, status,"
               " error_message, executed_at) VALUES (%s, 'comment', 'comment:welcome:v1', 'h', 'failed', %s, %s)",
               (ticket_id, error, at))


def parked_template(db, subject, reason):
    return db.execute("INSERT INTO tickets (subject, department, category, is_recurring, recurrence_interval,"
                      " next_occurrence, recurrence_error) VALUES (%s, 'IT', 'Backups', true, 'daily', %s, %s)"
                      " RETURNING id", (subject, T0, reason)).fetchone()[0]


def ticket(db, subject, created_at, error=None):
    return db.execute("INSERT INTO tickets (subject, department, category, created_at, allocation_error)"
                      " VALUES (%s, 'IT', 'Network', %s, %s) RETURNING id",
                      (subject, created_at, error)).fetchone()[0]


def test_each_condition_raises_one_alert_listing_what_is_open_then_waits_for_the_next_period(db):
    fail_task(db, T0 - timedelta(minutes=12))
    dead = [dead_email(db, address, T0 - timedelta(hours=5)) for address in ("a@refused.example", "b@refused.example")]
    overdue_email(db, T0 - timedelta(minutes=32))
    failed_tdx_action(db, 5001, T0 - timedelta(minutes=40))
    template = parked_template(db, "Weekly backup check", "RRULE: unknown frequency FORTNIGHTLY")
    paused = parked_template(db, "Paused on purpose", "RRULE: unknown frequency FORTNIGHTLY")
    db.execute("UPDATE tickets SET paused_at = %s WHERE id = %s", (T0, paused))  # a person stopped it: no alert
    late = ticket(db, "VPN down", T0 - timedelta(minutes=92), error="no deployed workflow matches IT / Network")
    recent = ticket(db, "Printer jam", T0 - timedelta(minutes=32))

    outcome = check(db, T0)

    alerted = raised(db)
    assert {name: count for name, (count, _) in alerted.items()} == {
        "dag_run_failed": 1, "outbox_stalled": 1, "emails_dead": 2, "tdx_actions_failed": 1, "templates_parked": 1,
        "tickets_waiting": 1}
    assert outcome.changed == 6 and sorted(outcome.details["raised"]) == sorted(alerted)
    assert alerted["dag_run_failed"][1] == [
        "event_lifecycle: run manual__1, task advance_events failed (try 4): RuntimeError: database said no"]
    assert alerted["emails_dead"][1][0] == (
        f"Email #{dead[0]} (reservation_confirmed) to a@refused.example, queued 2026-07-14 08:02 UTC,"
        " dead after 8 attempts: 550 mailbox unavailable")
    assert alerted["outbox_stalled"][1][0].startswith(
        "1 queued message(s) more than 15 minutes past their send time, the oldest due since 2026-07-14 12:30 UTC;"
        " the last notifications run: none yet")
    assert alerted["tdx_actions_failed"][1] == [
        "TDX ticket 5001: comment comment:welcome:v1 failed 2026-07-14 12:22 UTC: 403 Forbidden"]
    assert alerted["templates_parked"][1] == [
        f'Template #{template} "Weekly backup check": RRULE: unknown frequency FORTNIGHTLY']
    assert alerted["tickets_waiting"][1] == [
        f'Ticket #{late} "VPN down" (IT / Network) waiting for a task since 2026-07-14 11:30 UTC:'
        " no deployed workflow matches IT / Network"]  # the ticket of 32 minutes is not late yet
    queued = db.execute("SELECT recipient, count(*) FROM email_outbox WHERE template = 'alert' GROUP BY 1").fetchall()
    assert sorted(queued) == [("oncall@example.com", 6), ("ops@example.com", 6)]

    # Later in the same period: what comes up waits; nothing is raised twice.
    dead_email(db, "c@refused.example", T0)
    assert check(db, T0 + timedelta(minutes=33)).changed == 0  # 13:35: the printer ticket is late now
    assert len(raised(db)) == 6

    # The next period lists only what is new since each condition's alert.
    check(db, T0 + timedelta(minutes=60))
    assert db.execute("SELECT count(*) FROM alerts").fetchone()[0] == 8
    alerted = raised(db)
    new = db.execute("SELECT condition, item_count, period_start FROM alerts WHERE id > 6 ORDER BY condition"
                     ).fetchall()
    assert new == [("emails_dead", 1, datetime(2026, 7, 14, 14, tzinfo=UTC)),
                   ("tickets_waiting", 1, datetime(2026, 7, 14, 14, tzinfo=UTC))]
    assert alerted["tickets_waiting"][1][0].startswith(f'Ticket #{recent} "Printer jam"')
    assert check(db, T0 + timedelta(minutes=65)).changed == 0


def test_a_thing_no_longer_open_is_forgotten_and_alerted_again_when_it_goes_wrong_again(db):
    message = dead_email(db, "a@refused.example", T0 - timedelta(hours=1))
    check(db, T0)
    db.execute("UPDATE email_outbox SET status = 'queued', attempts = 0, next_attempt_at = %s WHERE id = %s",
               (T0 + timedelta(minutes=30), message))  # re-queued by email_requeue
    check(db, T0 + timedelta(hours=1))
    assert db.execute("SELECT count(*) FROM alert_items WHERE condition = 'emails_dead'").fetchone()[0] == 0
    db.execute("UPDATE email_outbox SET status = 'dead', attempts = 8 WHERE id = %s", (message,))
    check(db, T0 + timedelta(hours=2))
    assert db.execute("SELECT period_start FROM alerts WHERE condition = 'emails_dead' ORDER BY id").fetchall() == [
        (datetime(2026, 7, 14, 13, tzinfo=UTC),), (datetime(2026, 7, 14, 15, tzinfo=UTC),)]


def test_a_rerun_of_a_run_raises_nothing_twice_and_an_old_rerun_forgets_nothing_seen_later(db):
    ticket(db, "VPN down", T0 - timedelta(hours=2))
    check(db, T0, run_id="scheduled__a")
    check(db, T0, run_id="scheduled__a")  # cleared and run again
    ticket(db, "Printer jam", T0 + timedelta(minutes=10))
    check(db, T0 + timedelta(hours=2), run_id="scheduled__b")
    check(db, T0, run_id="scheduled__a")  # an old run cleared later: it must not drop what run b saw
    assert db.execute("SELECT count(*) FROM alerts").fetchone()[0] == 2
    assert db.execute("SELECT count(*) FROM alert_items WHERE alert_id IS NOT NULL").fetchone()[0] == 2


def test_how_long_a_ticket_waited_is_measured_from_the_run_instant_and_the_setting(db):
    created = T0 - timedelta(hours=3)
    ticket(db, "VPN down", created)
    check(db, created + timedelta(minutes=29), config=replace(CONFIG, waiting=timedelta(minutes=30)))
    assert raised(db) == {}
    check(db, created + timedelta(minutes=31), config=replace(CONFIG, waiting=timedelta(minutes=30)))
    assert list(raised(db)) == ["tickets_waiting"]


def test_two_runs_at_once_raise_the_period_s_alert_once(db, run_concurrently):
    for n in range(20):
        failed_tdx_action(db, 6000 + n, T0 - timedelta(minutes=5))
    run_concurrently(["scheduled__x", "manual__y"], lambda conn, run_id: check(conn, T0, run_id=run_id))
    assert {name: count for name, (count, _) in raised(db).items()} == {"tdx_actions_failed": 20}
    assert db.execute("SELECT count(*) FROM email_outbox WHERE template = 'alert'").fetchone()[0] == 2
    assert db.execute("SELECT count(*) FROM alert_items WHERE alert_id IS NULL").fetchone()[0] == 0


def test_a_long_list_is_cut_at_fifty_lines_and_says_how_many_more(db):
    for n in range(60):
        ticket(db, f"ticket {n:02}", T0 - timedelta(hours=3, minutes=n))
    check(db, T0)
    [(count, lines)] = raised(db).values()
    assert count == 60 and len(lines) == 50 and lines[0].endswith("since 2026-07-14 09:03 UTC")
    context = db.execute("SELECT context FROM email_outbox WHERE template = 'alert' LIMIT 1").fetchone()[0]
    assert (context["count"], context["more"], len(context["lines"])) == (60, 10, 50)


@pytest.fixture
def smtp(tmp_path, monkeypatch):
    yield from connected_standin(SmtpStandIn(tmp_path / "mail"), "smtp", monkeypatch)


@pytest.fixture
def webhook(monkeypatch):
    yield from connected_standin(WebhookStandIn(), "webhook", monkeypatch, only=("AIRFLOW_CONN_ALERTS_WEBHOOK",))


def send_email(db, run_id="notifications__1"):
    with AuditedRun(db, RunWindow("notifications", run_id, T0)) as run, smtp_sender() as (send_one, sender):
        send_due_messages(run, send_one, sender=sender, admin_email="desk@example.com", timezone="America/Toronto",
                          max_attempts=8)
    return run.outcome


def test_an_alert_is_mailed_to_every_address_through_the_outbox_and_the_real_smtp_server(db, smtp):
    failed_tdx_action(db, 5001, T0 - timedelta(minutes=40), error="TDX said <403> & more")
    check(db, T0)
    assert send_email(db).details == {"sent": 2}
    messages = {m["To"]: m for m in smtp.messages()}
    assert sorted(messages) == ["oncall@example.com", "ops@example.com"]
    message = messages["ops@example.com"]
    assert message["Subject"] == "Ticketflow alert: Failed TDX actions (1)"
    text = message.get_body(("plain",)).get_content()
    assert "Raised on 14/07/2026 at 09:02 (America/Toronto)." in text
    assert "- TDX ticket 5001: comment comment:welcome:v1 failed 2026-07-14 12:22 UTC: TDX said <403> & more" in text
    assert "What to do: Fix the cause in TDX or in the action file, then trigger tdx_clear_failed_actions." in text
    assert "at most one alert per condition every 60 minutes" in text
    assert "TDX said &lt;403&gt; &amp; more" in message.get_body(("html",)).get_content()


def test_alert_emails_default_to_the_admin_address_and_a_bad_list_names_the_setting(monkeypatch):
    monkeypatch.setenv("TICKETFLOW_ADMIN_EMAIL", "desk@example.com")
    monkeypatch.delenv("TICKETFLOW_ALERT_EMAILS", raising=False)
    assert AlertSettings.from_env().recipients == ["desk@example.com"]
    monkeypatch.setenv("TICKETFLOW_ALERT_EMAILS", " ops@example.com,oncall@example.com , ops@example.com")
    assert AlertSettings.from_env().recipients == ["ops@example.com", "oncall@example.com"]
    monkeypatch.setenv("TICKETFLOW_ALERT_EMAILS", "ops@example.com; oncall@example.com")
    with pytest.raises(ValueError, match="TICKETFLOW_ALERT_EMAILS must be email addresses separated by commas"):
        AlertSettings.from_env()


def test_the_webhook_gets_one_slack_post_per_alert_and_one_that_was_down_is_posted_later(db, webhook, caplog):
    post = alerts.webhook_poster()
    assert post is not None
    failed_tdx_action(db, 5001, T0 - timedelta(minutes=40), error="<script> & co")
    ticket(db, "VPN down", T0 - timedelta(hours=2))
    webhook.failures_left = 1
    with caplog.at_level(logging.ERROR, logger="ticketflow.alerts"):
        outcome = check(db, T0, post=post)
    assert outcome.details["webhook_failed"] == 1 and "webhook_posted" not in outcome.details
    assert "the alerts webhook did not take alert" in caplog.text
    # The first refusal ends the run's posting: one timeout per run while the webhook is down, not one per alert.
    assert db.execute("SELECT webhook_attempts, webhook_error IS NOT NULL FROM alerts ORDER BY id").fetchall() == [
        (1, True), (0, False)]
    assert webhook.posts() == []

    assert check(db, T0 + timedelta(minutes=5), post=post).details["webhook_posted"] == 2
    assert check(db, T0 + timedelta(minutes=10), post=post).details.get("webhook_posted") is None
    texts = [p["text"] for p in webhook.posts()]
    assert len(texts) == 2
    assert texts[0].splitlines()[:2] == [
        "*Ticketflow alert: Failed TDX actions (1)*",
        "• TDX ticket 5001: comment comment:welcome:v1 failed 2026-07-14 12:22 UTC: &lt;script&gt; &amp; co"]
    assert texts[1].startswith("*Ticketflow alert: Tickets waiting for a task (1)*")
    assert db.execute("SELECT bool_and(webhook_posted_at IS NOT NULL AND webhook_error IS NULL) FROM alerts"
                      ).fetchone()[0]


def test_a_webhook_that_cannot_be_reached_is_recorded_without_its_secret_path(db, webhook):
    post = alerts.webhook_poster()
    webhook.stop()
    ticket(db, "VPN down", T0 - timedelta(hours=2))
    check(db, T0, post=post)
    [(error,)] = db.execute("SELECT webhook_error FROM alerts").fetchall()
    assert error.startswith("ConnectionError: ") and "/***" in error
    assert "services/local/alerts" not in error  # a Slack webhook's path is its secret


def test_without_the_webhook_connection_nothing_is_posted(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_ALERTS_WEBHOOK", raising=False)
    assert alerts.webhook_poster() is None


def test_with_smtp_down_the_outbox_alert_reaches_the_webhook_and_the_task_log(db, smtp, webhook, caplog):
    for _ in range(3):
        overdue_email(db, T0 - timedelta(minutes=20))
    smtp.stop()
    with pytest.raises(SmtpUnavailable), AuditedRun(db, RunWindow("notifications", "down", T0)) as run:
        send_queued_email(run)
    db.execute("UPDATE automation_runs SET started_at = %s WHERE run_id = 'down'", (T0 - timedelta(minutes=3),))
    with caplog.at_level(logging.ERROR, logger="ticketflow.alerts"):
        check(db, T0, post=alerts.webhook_poster())
    [post] = webhook.posts()
    assert post["text"].startswith("*Ticketflow alert: Email outbox not sending (1)*\n• 3 queued message(s) more"
                                   " than 15 minutes past their send time, the oldest due since 2026-07-14 12:42 UTC;"
                                   " the last notifications run: failed: SmtpUnavailable: cannot open an SMTP session")
    assert "Ticketflow alert: Email outbox not sending (1)" in caplog.text
    # Its email waits in the stalled outbox with the rest, and goes out when SMTP is back.
    assert db.execute("SELECT count(*) FROM email_outbox WHERE template = 'alert' AND status = 'queued'"
                      ).fetchone()[0] == 2
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="ticketflow.alerts"):
        check(db, T0 + timedelta(minutes=5), post=alerts.webhook_poster())
    assert "Ticketflow alert still open: Email outbox not sending" in caplog.text  # every run while it lasts
    assert len(webhook.posts()) == 1


def test_without_a_webhook_the_outbox_alert_is_logged_and_says_where_to_look(db, caplog):
    dead_email(db, "a@refused.example", T0 - timedelta(hours=1))
    with caplog.at_level(logging.WARNING, logger="ticketflow.alerts"):
        check(db, T0, post=None)
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors[0].startswith("Ticketflow alert: Dead-lettered emails (1)\n- Email #")
    assert "no alerts_webhook connection: alerts go by email only" in caplog.text


def test_the_failure_notifier_records_each_failed_try_once_and_closes_the_audit_row(db, app_db_url, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_TICKETING_DB", app_db_url)
    window = RunWindow("event_lifecycle", "manual__x", T0)
    AuditedRun(db, window).__enter__()  # the task died inside its run
    context = {"dag_run": SimpleNamespace(dag_id=window.dag_id, run_id=window.run_id),
               "ti": SimpleNamespace(task_id="advance_events", map_index=-1, try_number=4),
               "exception": TimeoutError("task timed out")}
    record_failure(context)
    record_failure(context)  # the same try reported twice (the task runner, then the DAG processor)
    record_failure({**context, "ti": SimpleNamespace(task_id="send", map_index=3, try_number=1), "exception": None})
    assert db.execute("SELECT status, error FROM automation_runs").fetchone() == (
        "error", "task failed: TimeoutError: task timed out")
    keys = [r[0] for r in db.execute("SELECT item_key FROM alert_items ORDER BY item_key")]
    assert keys == ["event_lifecycle/manual__x/advance_events/4", "event_lifecycle/manual__x/send[3]/1"]
    stamped = db.execute("SELECT max(observed_at) + interval '1 minute' FROM alert_items").fetchone()[0]
    check(db, stamped)
    [(count, lines)] = raised(db).values()
    assert count == 2 and lines[1] == (
        "event_lifecycle: run manual__x, task send[3] failed (try 1): no error given (killed, or timed out)")


def test_the_dashboard_shows_the_open_conditions_a_user_may_read(db, monkeypatch):
    fail_task(db, T0 - timedelta(minutes=12))
    fail_task(db, T0 - timedelta(minutes=11), dag_id="recurring_tickets", run_id="scheduled__r", task_id="plan")
    failed_tdx_action(db, 5001, T0 - timedelta(minutes=40))
    dead_email(db, "a@refused.example", T0 - timedelta(hours=1))
    check(db, T0 - timedelta(minutes=1))

    everything = dashboard.render(db, ALL_DAGS, T0)
    for name in ("dag_run_failed", "tdx_actions_failed", "emails_dead"):
        assert f'data-alert="{name}"' in everything
    assert "last alerted 2026-07-14 13:01 UTC" in everything

    tdx_only = dashboard.render(db, {"tdx_ticket_queue", "event_lifecycle"}, T0)
    assert 'data-alert="tdx_actions_failed"' in tdx_only and 'data-alert="emails_dead"' not in tdx_only
    assert "run manual__1" in tdx_only and "scheduled__r" not in tdx_only  # failures of DAGs it may read only
    [failed] = [c for c in open_conditions(db, T0, {"event_lifecycle"}, CONFIG) if c.condition.name == "dag_run_failed"]
    assert failed.count == 1

    assert 'data-alert="none"' in dashboard.render(db, set(), T0)
    monkeypatch.setenv("TICKETFLOW_ALERT_PERIOD_MINUTES", "nan")
    page = dashboard.render(db, ALL_DAGS, T0)
    assert "TICKETFLOW_ALERT_PERIOD_MINUTES must be a positive number, got &#39;nan&#39;" in page


def test_a_failed_run_stays_on_the_dashboard_for_a_day(db):
    fail_task(db, T0)
    assert [c.count for c in open_conditions(db, T0 + timedelta(hours=23), ALL_DAGS, CONFIG)] == [1]
    assert open_conditions(db, T0 + timedelta(hours=25), ALL_DAGS, CONFIG) == []
