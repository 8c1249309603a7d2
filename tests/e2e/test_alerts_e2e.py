"""Alerts in the real Airflow: a run that fails is recorded by its notifier and alerted by the next alerts run,
by email through the outbox and the SMTP stand-in, to the webhook stand-in, and on the dashboard."""

import email.policy
import mailbox
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from devstack.standins import webhook_posts
from tests.support import eventually

pytestmark = pytest.mark.e2e


@pytest.fixture
def alerts_db(stack):
    """The stack's application database with no alert raised yet, so this test's failure opens a period."""
    with psycopg.connect(stack.app_db_url, autocommit=True) as conn:
        conn.execute("TRUNCATE alerts, alert_items RESTART IDENTITY CASCADE")
        yield conn


def _mailed(stack, run_id):
    box = mailbox.Maildir(str(stack.mailbox), factory=None, create=False)
    messages = [email.message_from_bytes(box.get_bytes(key), policy=email.policy.default) for key in box.keys()]
    return [message for message in messages if message["Subject"].startswith("Ticketflow alert: Failed DAG runs (")
            and run_id in message.get_body(("plain",)).get_content()]


def test_a_failed_run_is_mailed_posted_and_shown_by_the_next_alerts_run(stack, api, alerts_db):
    # A manual run for an instant after it was triggered fails at once, without retries, when that instant
    # comes (Ticketflow does not act on the future): the cheapest real failure. event_archive runs daily, so no
    # scheduled run of it holds the one active-run slot meanwhile.
    soon = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
    failed = api.trigger("event_archive", logical_date=soon)["dag_run_id"]
    assert api.wait_for_run("event_archive", failed)["state"] == "failed"
    [(line,)] = eventually(lambda: alerts_db.execute(
        "SELECT line FROM alert_items WHERE condition = 'dag_run_failed' AND item_key LIKE %s",
        (f"event_archive/{failed}/%",)).fetchall(), seconds=60, what="the notifier's record of the failure")
    assert line.startswith(f"event_archive: run {failed}, task archive_completed_events failed (try 1): "
                           "AirflowFailException: run ")

    checked = api.trigger("alerts")["dag_run_id"]  # not waiting for the cron tick (a scheduled run may come first)
    assert api.wait_for_run("alerts", checked)["state"] == "success"
    [(alert_id, lines, posted)] = alerts_db.execute(
        "SELECT id, lines, webhook_posted_at IS NOT NULL FROM alerts WHERE condition = 'dag_run_failed'").fetchall()
    assert line in lines and posted
    assert any(failed in post["text"] for post in webhook_posts(stack.webhook_log))

    [message] = eventually(lambda: _mailed(stack, failed), seconds=60, what="the alert email in the mailbox")
    assert message["To"] == "admin@localhost"
    assert alerts_db.execute("SELECT status FROM email_outbox WHERE dedup_key = %s",
                             (f"alert:{alert_id}:admin@localhost",)).fetchone() == ("sent",)

    page = api.session.get(f"{stack.api_url}/ticketflow/dashboard", timeout=30)
    assert page.status_code == 200 and 'data-alert="dag_run_failed"' in page.text and failed in page.text
