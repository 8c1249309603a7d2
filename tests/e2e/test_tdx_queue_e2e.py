"""The TDX queue in the real Airflow, against the stand-in TDX that `make run` starts, through the REST API."""

import json
from urllib.parse import quote

import psycopg
import pytest

from devstack.stack import TDX_BEID, TDX_WEB_SERVICES_KEY
from ticketflow.tdx.client import TdxClient, TdxSettings
from ticketflow.tdx.tokens import DatabaseTokenStore

pytestmark = pytest.mark.e2e
MANUAL_REPORT = 1002  # the scheduled runs work on 1001; this one changes only when a test asks


@pytest.fixture
def tdx(stack):
    settings = TdxSettings(f"http://127.0.0.1:{stack.ports.tdx}/TDWebApi/api", TDX_BEID, TDX_WEB_SERVICES_KEY)
    return TdxClient(settings)


@pytest.fixture
def queue_db(stack):
    with psycopg.connect(stack.app_db_url, autocommit=True) as conn:
        yield conn


def _task_log(api, dag_id, run_id, task_id, map_index=-1) -> str:
    answer = api.session.get(api.url(f"dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances/{task_id}"
                                     f"/logs/1"), params={"map_index": map_index, "full_content": "true"},
                             headers={"Accept": "application/json"}, timeout=30)
    assert answer.status_code == 200, answer.text
    return json.dumps(answer.json()["content"])


def test_dry_run_then_real_run_then_steady_state(api, tdx, queue_db, stack):
    refused = api.session.post(api.url("dags/tdx_ticket_queue/dagRuns"), timeout=30,
                               json={"logical_date": None, "conf": {"report_id": "all"}})
    assert refused.status_code == 400 and "report_id" in refused.text

    dry = api.trigger("tdx_ticket_queue", conf={"report_id": MANUAL_REPORT})  # the form's default: dry run
    assert api.wait_for_run("tdx_ticket_queue", dry["dag_run_id"])["state"] == "success"
    plan = api.xcom("tdx_ticket_queue", dry["dag_run_id"], "finish")
    assert plan["dry_run"] is True and plan["tickets"] == 2
    by_ticket = {entry["ticket_id"]: entry["actions"] for entry in plan["plan"]}
    assert by_ticket[5101][0]["assets"][0]["name"] == "LSAF-D30H6J4"
    assert by_ticket[5101][0]["assets"][0]["reason"] == "Computer name found in ticket title"
    assert by_ticket[5102][0]["status"] == "would_skip"
    assert queue_db.execute("SELECT count(*) FROM meta.daemon_action_log WHERE ticket_id IN (5101, 5102)"
                            ).fetchone()[0] == 0
    assert tdx.ticket_assets(5101) == [] and tdx.feed(5101) == []
    sightings = "SELECT ticket_id, report_id FROM meta.tdx_ticket_sightings WHERE report_id = %s ORDER BY 1"
    assert queue_db.execute(sightings, (MANUAL_REPORT,)).fetchall() == []  # a dry run records nothing
    assert "dry run: ticket 5101: would_do add_asset:" in _task_log(api, "tdx_ticket_queue", dry["dag_run_id"],
                                                                   "process_batch", 0)

    real = api.trigger("tdx_ticket_queue", conf={"report_id": MANUAL_REPORT, "dry_run": False})
    assert api.wait_for_run("tdx_ticket_queue", real["dag_run_id"])["state"] == "success"
    totals = api.xcom("tdx_ticket_queue", real["dag_run_id"], "finish")
    assert (totals["dry_run"], totals["batches"], totals["completed"], totals["failed"]) == (False, 1, 2, 0)
    assert [a["BackingItemID"] for a in tdx.ticket_assets(5101)] == [9005]
    [summary] = tdx.feed(5101)
    assert "Added 1 asset: LSAF-D30H6J4" in summary["Body"] and summary["IsPrivate"]
    statuses = queue_db.execute("SELECT ticket_id, action_type, status, dag_run_id FROM meta.daemon_action_log"
                                " WHERE ticket_id IN (5101, 5102) ORDER BY 1, 2").fetchall()
    assert statuses == [(5101, "add_asset", "completed", real["dag_run_id"]),
                        (5101, "summary_comment", "completed", real["dag_run_id"]),
                        (5102, "add_asset", "skipped", real["dag_run_id"])]
    audit = queue_db.execute("SELECT status, processed, changed FROM automation_runs"
                             " WHERE dag_id = 'tdx_ticket_queue' AND run_id = %s", (real["dag_run_id"],)).fetchone()
    assert audit == ("success", 2, 2)
    # What the report listed, as of the run: retention keeps these tickets' action logs.
    assert queue_db.execute(sightings, (MANUAL_REPORT,)).fetchall() == [(5101, MANUAL_REPORT), (5102, MANUAL_REPORT)]
    assert queue_db.execute("SELECT last_read_at FROM meta.tdx_report_reads WHERE report_id = %s", (MANUAL_REPORT,)
                            ).fetchone() == queue_db.execute("SELECT due_at FROM automation_runs WHERE run_id = %s",
                                                             (real["dag_run_id"],)).fetchone()

    steady = api.trigger("tdx_ticket_queue", conf={"report_id": MANUAL_REPORT, "dry_run": False})
    assert api.wait_for_run("tdx_ticket_queue", steady["dag_run_id"])["state"] == "success"
    assert api.xcom("tdx_ticket_queue", steady["dag_run_id"], "finish")["batches"] == 0
    assert len(tdx.feed(5101)) == 1

    # Secrets: neither the WebServicesKey nor the shared token shows in any task log or XCom.
    with psycopg.connect(stack.app_db_url, autocommit=True) as conn:
        token, _ = DatabaseTokenStore(conn, tdx.settings).load()
    texts = [_task_log(api, "tdx_ticket_queue", run_id, task, index)
             for run_id in (dry["dag_run_id"], real["dag_run_id"])
             for task, index in (("find_tickets_with_work", -1), ("process_batch", 0), ("finish", -1))]
    texts += [str(api.xcom("tdx_ticket_queue", run_id, "finish")) for run_id in (dry["dag_run_id"],
                                                                                   real["dag_run_id"])]
    assert all(TDX_WEB_SERVICES_KEY not in text and token not in text for text in texts)


def test_clearing_failed_actions_from_airflow(api, queue_db):
    queue_db.execute("INSERT INTO meta.daemon_action_log (ticket_id, action_type, action_id, action_hash, status,"
                     " error_message) VALUES (5999, 'comment', 'comment:abc:v1', 'abc', 'failed', 'refused')")
    refused = api.session.post(api.url("dags/tdx_clear_failed_actions/dagRuns"), timeout=30,
                               json={"logical_date": None, "conf": {"ticket_id": "5999; DROP TABLE x"}})
    assert refused.status_code == 400
    run = api.trigger("tdx_clear_failed_actions", conf={"ticket_id": 5999})
    assert api.wait_for_run("tdx_clear_failed_actions", run["dag_run_id"])["state"] == "success"
    assert api.xcom("tdx_clear_failed_actions", run["dag_run_id"], "clear_failed") == {"cleared": 1,
                                                                                        "ticket_id": 5999}
    assert queue_db.execute("SELECT count(*) FROM meta.daemon_action_log WHERE ticket_id = 5999").fetchone()[0] == 0

    queue_db.execute("INSERT INTO meta.daemon_action_log (ticket_id, action_type, action_id, action_hash, status,"
                     " error_message) VALUES (6001, 'comment', 'comment:abc:v1', 'abc', 'failed', 'refused')")
    unsaid = api.trigger("tdx_clear_failed_actions", conf={})  # leaving the ticket out no longer means all
    assert api.wait_for_run("tdx_clear_failed_actions", unsaid["dag_run_id"])["state"] == "failed"
    assert queue_db.execute("SELECT count(*) FROM meta.daemon_action_log WHERE ticket_id = 6001").fetchone()[0] == 1
    everything = api.trigger("tdx_clear_failed_actions", conf={"all": True})
    assert api.wait_for_run("tdx_clear_failed_actions", everything["dag_run_id"])["state"] == "success"
    assert queue_db.execute("SELECT count(*) FROM meta.daemon_action_log WHERE status = 'failed'").fetchone()[0] == 0
