"""The retention DAG in the real Airflow, triggered through the REST API: the application's old rows and Airflow's
own old metadata go, what is recent stays, and the run's audit row says what was deleted."""

import time
from datetime import timedelta

import psycopg
import pytest

pytestmark = pytest.mark.e2e
TEST_DAG = "ticketflow_retention_e2e"  # audit rows of an automation that does not exist: only this test's


def _wait_until_no_retention_run_is_active(api, timeout=180):
    """A fresh stack runs retention for its latest tick at once: let it finish, so ours sees our rows."""
    deadline = time.monotonic() + timeout
    while any(run["state"] in ("queued", "running") for run in api.runs("retention")):
        assert time.monotonic() < deadline, "a retention run did not finish"
        time.sleep(1)


def test_retention_deletes_old_rows_and_airflow_metadata_and_audits_what_it_deleted(api, stack):
    _wait_until_no_retention_run_is_active(api)
    with psycopg.connect(stack.app_db_url, autocommit=True) as app, \
            psycopg.connect(stack.postgres.url(stack.airflow_db), autocommit=True) as airflow_db:
        now = app.execute("SELECT now()").fetchone()[0]  # the database's clock: the run decides as of its own
        old_runs = [app.execute(
            "INSERT INTO automation_runs (dag_id, run_id, due_at, started_at, status) VALUES (%s, %s, %s, %s,"
            " 'success') RETURNING id", (TEST_DAG, f"old {n}", now - timedelta(days=100 + n),
                                         now - timedelta(days=100 + n))).fetchone()[0] for n in (1, 2)]
        app.execute("INSERT INTO automation_runs (dag_id, run_id, due_at, started_at, status)"
                    " VALUES (%s, 'latest', %s, %s, 'success')", (TEST_DAG, now, now))
        old_mail = app.execute(
            "INSERT INTO email_outbox (dedup_key, template, recipient, context, status, sent_at)"
            " VALUES ('retention-e2e', 'reservation_confirmed', 'a@example.org', '{}', 'sent', %s) RETURNING id",
            (now - timedelta(days=40),)).fetchone()[0]
        old_log, recent_log = (airflow_db.execute(
            "INSERT INTO log (dttm, event, extra) VALUES (%s, 'ticketflow retention e2e', %s) RETURNING id",
            (now - timedelta(days=days), f"{days} days old")).fetchone()[0] for days in (45, 5))

        run = api.trigger("retention")
        assert api.wait_for_run("retention", run["dag_run_id"], timeout=240)["state"] == "success"

        assert app.execute("SELECT run_id FROM automation_runs WHERE dag_id = %s", (TEST_DAG,)).fetchall() == [
            ("latest",)]
        assert app.execute("SELECT count(*) FROM email_outbox WHERE id = %s", (old_mail,)).fetchone()[0] == 0
        assert [row[0] for row in airflow_db.execute("SELECT id FROM log WHERE id IN (%s, %s)",
                                                     (old_log, recent_log))] == [recent_log]

        status, processed, details = app.execute(
            "SELECT status, processed, details FROM automation_runs WHERE dag_id = 'retention' AND run_id = %s",
            (run["dag_run_id"],)).fetchone()
    assert status == "success"
    assert details["automation_runs"] >= len(old_runs) and details["email_outbox"] >= 1
    assert details["airflow.log"] >= 1 and details["airflow_metadata"].startswith("cleaned before ")
    assert set(details["cutoffs"]) == {"automation_runs", "sent_email", "recurring_skips", "archived_events",
                                       "tdx_action_log", "alerts", "intake_keys", "airflow_metadata"}
    assert processed == sum(count for key, count in details.items() if isinstance(count, int))
    assert api.xcom("retention", run["dag_run_id"], "clean_airflow_metadata")["deleted"]["airflow.log"] >= 1
