"""The Ticketflow plugin on the real Airflow API server: every route, its auth, its errors, with real tokens."""

import json
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
import requests

from devstack.stack import VIEWER_PASSWORD, VIEWER_USER

pytestmark = pytest.mark.e2e
FIRST_ROLE, SECOND_ROLE = "IT Support Technician", "Service Desk Lead"  # the stand-in TTS: [3, 6, 9] and [1]
ROUTES = {
    ("get", "/ticketflow/tasks"), ("get", "/ticketflow/tasks/workflow_statistics"),
    ("get", "/ticketflow/tasks/{task_id}"), ("post", "/ticketflow/tasks/create_task_for_ticket"),
    ("post", "/ticketflow/tasks/{task_id}/assign_user"), ("post", "/ticketflow/tasks/{task_id}/update_user_status"),
    ("post", "/ticketflow/tasks/{task_id}/complete_task"), ("post", "/ticketflow/tasks/{task_id}/move_to_next_step"),
    ("get", "/ticketflow/tasks/{task_id}/assigned_users"), ("post", "/ticketflow/tasks/{task_id}/hold"),
    ("post", "/ticketflow/tasks/{task_id}/cancel"), ("patch", "/ticketflow/tasks/{task_id}"),
    ("get", "/ticketflow/events"), ("get", "/ticketflow/events/my_events"), ("get", "/ticketflow/events/{event_id}"),
    ("get", "/ticketflow/tdx/actions/recent"), ("get", "/ticketflow/tdx/actions/summary"),
    ("get", "/ticketflow/tdx/tickets/{ticket_id}/actions"), ("post", "/ticketflow/tdx/actions/clear_failed"),
    ("get", "/ticketflow/dashboard"), ("post", "/ticketflow/tickets"),
    ("get", "/ticketflow/recurring/templates"), ("post", "/ticketflow/recurring/templates"),
    ("get", "/ticketflow/recurring/templates/{template_id}"),
    ("patch", "/ticketflow/recurring/templates/{template_id}"),
    ("post", "/ticketflow/recurring/templates/{template_id}/pause"),
    ("post", "/ticketflow/recurring/templates/{template_id}/resume"),
    ("post", "/ticketflow/recurring/templates/{template_id}/skip"),
    ("post", "/ticketflow/recurring/templates/{template_id}/move"),
    ("post", "/ticketflow/recurring/templates/{template_id}/reschedule"),
    ("get", "/ticketflow/recurring/templates/{template_id}/preview"),
    ("get", "/ticketflow/recurring/templates/{template_id}/history"), ("post", "/ticketflow/recurring/preview"),
    ("get", "/ticketflow/recurring-tickets"),
}


class Plugin:
    def __init__(self, stack, token: str | None):
        self.base = f"{stack.api_url}/ticketflow"
        self.session = requests.Session()
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def get(self, path, **params):
        return self.session.get(self.base + path, params=params, timeout=30)

    def post(self, path, body=None, **kwargs):
        return self.session.post(self.base + path, json=body, timeout=30, **kwargs)

    def patch(self, path, body):
        return self.session.patch(self.base + path, json=body, timeout=30)


@pytest.fixture
def admin(stack):
    return Plugin(stack, stack.token())


@pytest.fixture
def viewer(stack):
    return Plugin(stack, stack.token(VIEWER_USER, VIEWER_PASSWORD))


@pytest.fixture
def task_world(stack):
    """A two-step workflow and a ticket the assignment DAG leaves alone for a day (the tests create its task)."""
    with psycopg.connect(stack.app_db_url, autocommit=True) as conn:
        conn.execute("TRUNCATE tasks, steps, workflows, role_rotation RESTART IDENTITY CASCADE")
        conn.execute("UPDATE tickets SET is_task_allocated = true WHERE NOT is_task_allocated")  # not ours
        workflow = conn.execute("INSERT INTO workflows (name, department, category, is_published, status)"
                                " VALUES ('Laptop repair', 'IT', 'Laptops', true, 'deployed') RETURNING id"
                                ).fetchone()[0]
        conn.execute("INSERT INTO steps (workflow_id, name, role_name, step_order) VALUES"
                     " (%s, 'Diagnose', %s, 1), (%s, 'Approve', %s, 2)", (workflow, FIRST_ROLE, workflow, SECOND_ROLE))
        ticket = conn.execute("INSERT INTO tickets (subject, department, category, next_allocation_at)"
                              " VALUES ('Screen flickers', 'IT', 'Laptops', now() + interval '1 day') RETURNING id"
                              ).fetchone()[0]
        yield {"conn": conn, "workflow": workflow, "ticket": ticket}


def _snapshot(conn):
    return conn.execute("SELECT coalesce(jsonb_agg(to_jsonb(k) ORDER BY task_id), '[]'), "
                        " (SELECT jsonb_agg(to_jsonb(t) ORDER BY id) FROM tickets t),"
                        " (SELECT count(*) FROM meta.daemon_action_log) FROM tasks k").fetchone()


def test_every_route_is_in_the_api_servers_openapi_document_and_answers_nothing_without_a_valid_token(stack):
    document = requests.get(f"{stack.api_url}/openapi.json", timeout=30).json()
    listed = {(method, path) for path, operations in document["paths"].items() if path.startswith("/ticketflow")
              for method in operations}
    assert listed == ROUTES
    assert "/api/v2/dags" in document["paths"]  # the same document as Airflow's own API

    anonymous, forged = Plugin(stack, None), Plugin(stack, "not-a-jwt")
    for method, path in sorted(ROUTES):
        url = (path.replace("{task_id}", "1").replace("{event_id}", "1").replace("{ticket_id}", "1")
               .replace("{template_id}", "1"))
        for client, status in ((anonymous, 401), (forged, 403)):
            answer = client.session.request(method, stack.api_url + url, json={}, timeout=30)
            assert answer.status_code == status, (method, url, answer.text)
            assert set(answer.json()) == {"detail"}


def test_a_task_through_its_whole_life(admin, task_world):
    ticket, workflow = task_world["ticket"], task_world["workflow"]
    created = admin.post("/tasks/create_task_for_ticket", {"ticket_id": ticket})
    assert created.status_code == 201, created.text
    task = created.json()
    assert {k: task[k] for k in ("ticket_id", "workflow_id", "status", "ticket_subject", "workflow_name",
                                 "current_step_name", "current_step_role", "assigned_users_count")} == {
        "ticket_id": ticket, "workflow_id": workflow, "status": "pending", "ticket_subject": "Screen flickers",
        "workflow_name": "Laptop repair", "current_step_name": "Diagnose", "current_step_role": FIRST_ROLE,
        "assigned_users_count": 3}
    task_id = task["task_id"]
    again = admin.post("/tasks/create_task_for_ticket", {"ticket_id": ticket})
    assert again.status_code == 409 and again.json() == {"detail": f"ticket {ticket} already has a task"}

    listed = admin.get("/tasks", ticket_id=ticket).json()
    assert listed["total_entries"] == 1 and listed["tasks"][0]["task_id"] == task_id
    assert admin.get("/tasks", status="completed", workflow_id=workflow).json() == {"tasks": [], "total_entries": 0}
    assert admin.get("/tasks", limit=1, offset=1).json()["tasks"] == []
    assert admin.get(f"/tasks/{task_id}").json() == task

    assigned = admin.post(f"/tasks/{task_id}/assign_user",
                          {"userID": 42, "username": "jdoe", "email": "jdoe@example.org", "role": FIRST_ROLE}).json()
    assert assigned["assigned_users_count"] == 4
    assert {k: assigned["users"][-1][k] for k in ("userID", "status", "username", "email")} == {
        "userID": 42, "status": "assigned", "username": "jdoe", "email": "jdoe@example.org"}
    assert admin.post(f"/tasks/{task_id}/assign_user", {"userID": 42}).status_code == 409
    held = admin.post(f"/tasks/{task_id}/assign_user", {"userID": 43, "status": "on_hold"}).json()
    assert held["users"][-1]["status"] == "on_hold"

    working = admin.post(f"/tasks/{task_id}/update_user_status", {"user_id": 42, "status": "in_progress"}).json()
    assert working["status"] == "in_progress"

    second = admin.post(f"/tasks/{task_id}/move_to_next_step").json()
    assert (second["current_step_name"], second["current_step_role"], [u["userID"] for u in second["users"]]) == (
        "Approve", SECOND_ROLE, [1])
    done = admin.post(f"/tasks/{task_id}/move_to_next_step").json()  # after the last step: completed
    assert done["status"] == "completed" and done["completed_at"]
    refused = admin.post(f"/tasks/{task_id}/complete_task")
    assert refused.status_code == 409 and "completed" in refused.json()["detail"]

    statistics = {s["workflow_id"]: s for s in admin.get("/tasks/workflow_statistics").json()}
    assert statistics[workflow]["total"] == 1 and statistics[workflow]["by_status"]["completed"] == 1


def test_complete_task_on_its_own(admin, task_world):
    task_id = admin.post("/tasks/create_task_for_ticket", {"ticket_id": task_world["ticket"]}).json()["task_id"]
    completed = admin.post(f"/tasks/{task_id}/complete_task")
    assert completed.status_code == 200 and completed.json()["status"] == "completed"


@pytest.mark.parametrize("method, path, body, status, detail", [
    ("get", "/tasks/999999", None, 404, "task 999999 does not exist"),
    ("post", "/tasks/999999/complete_task", None, 404, "task 999999 does not exist"),
    ("post", "/tasks/create_task_for_ticket", {"ticket_id": 999999}, 404, "ticket 999999 does not exist"),
    ("get", "/tasks?status=done", None, 422, "Input should be"),
    ("get", "/tasks?limit=0", None, 422, "greater than or equal to 1"),
    ("post", "/tasks/{task}/update_user_status", {"user_id": 3, "status": "sleeping"}, 422, "Input should be"),
    ("post", "/tasks/{task}/update_user_status", {"user_id": 77, "status": "completed"}, 409, "not assigned"),
    ("post", "/tasks/{task}/assign_user", {"userID": "three"}, 422, "valid integer"),
    ("post", "/tasks/{task}/assign_user", {"userID": 5, "username": "nul\u0000byte"}, 422, "match pattern"),
    ("post", "/tasks/{task}/assign_user", {"userID": 5, "is_admin": True}, 422, "Extra inputs"),
    ("post", "/tasks/{task}/assign_user", {"userID": 5, "status": "sleeping"}, 422, "Input should be"),
    ("post", "/tasks/{task}/assign_user", "{not json", 422, "JSON decode error"),
    ("get", "/events/999999", None, 404, "event 999999 does not exist"),
    ("get", "/events/my_events", None, 422, "Field required"),
    ("get", "/events/my_events?customer_id=999999", None, 404, "customer 999999 does not exist"),
    ("get", "/events/my_events?customer_id=1&include_completed=perhaps", None, 422, "valid boolean"),
    ("patch", "/tasks/{task}", {"status": None}, 422, "may be left out, not null"),
    ("patch", "/tasks/{task}", {"status": "done"}, 422, "Input should be"),
    ("patch", "/tasks/{task}", {"ticket_id": 3}, 422, "Extra inputs"),
    ("patch", "/tasks/{task}", {"fetched_at": "2026-03-04T09:30:00"}, 422, "timezone info"),
    ("patch", "/tasks/{task}", {"fetched_at": "0999-03-04T09:30:00Z"}, 422, "from the years 1900 to 8999"),
    ("patch", "/tasks/{task}", {"users": [{"userID": 3, "status": "asleep"}]}, 422, "Input should be"),
    ("patch", "/tasks/{task}", {"users": [{"userID": 3}, {"userID": 3}]}, 409, "user 3 is listed twice"),
    ("patch", "/tasks/{task}", {"current_step_id": 999999}, 409, "current_step_id 999999 is not a step of workflow"),
    ("patch", "/tasks/{task}", {"status_reason": "why not"}, 409, "only a task on hold or cancelled has a status_"),
    ("patch", "/tasks/{task}", {"status": "cancelled"}, 409, "a cancelled task needs a reason"),
    ("post", "/tasks/{task}/cancel", {}, 422, "Field required"),
    ("post", "/tasks/{task}/cancel", {"reason": " \t"}, 422, "String should match pattern"),
    ("post", "/tasks/{task}/hold", {"reason": "x" * 1001}, 422, "at most 1000 characters"),
    ("get", "/tasks/{task}/assigned_users?status=asleep", None, 422, "Input should be"),
    ("get", "/tasks/999999/assigned_users", None, 404, "task 999999 does not exist"),
    ("post", "/tdx/actions/clear_failed", {"ticket_id": -1}, 422, "greater than or equal to 1"),
    ("post", "/tdx/actions/clear_failed", {"ticket_id": 2**40}, 422, "less than or equal"),
])
def test_bad_input_gets_an_airflow_shaped_error_and_changes_nothing(admin, task_world, method, path, body, status,
                                                                     detail):
    task_id = admin.post("/tasks/create_task_for_ticket", {"ticket_id": task_world["ticket"]}).json()["task_id"]
    before = _snapshot(task_world["conn"])
    path = path.replace("{task}", str(task_id))
    if isinstance(body, str):
        answer = admin.session.request(method, admin.base + path, data=body, timeout=30,
                                       headers={"Content-Type": "application/json"})
    else:
        answer = admin.session.request(method, admin.base + path, json=body, timeout=30)
    assert answer.status_code == status, answer.text
    assert set(answer.json()) == {"detail"} and detail in json.dumps(answer.json()["detail"])
    assert _snapshot(task_world["conn"]) == before


def test_a_viewer_may_read_but_not_change(admin, viewer, task_world):
    task_id = admin.post("/tasks/create_task_for_ticket", {"ticket_id": task_world["ticket"]}).json()["task_id"]
    before = _snapshot(task_world["conn"])
    assert viewer.get("/tasks").status_code == 200 and viewer.get("/tdx/actions/summary").status_code == 200
    assert viewer.get(f"/tasks/{task_id}/assigned_users").status_code == 200
    for path, body in ((f"/tasks/{task_id}/complete_task", None), (f"/tasks/{task_id}/assign_user", {"userID": 8}),
                       ("/tdx/actions/clear_failed", {"all": True}), (f"/tasks/{task_id}/hold", None),
                       (f"/tasks/{task_id}/cancel", {"reason": "not mine to cancel"})):
        refused = viewer.post(path, body)
        assert refused.status_code == 403 and "may not change" in refused.json()["detail"], refused.text
    refused = viewer.patch(f"/tasks/{task_id}", {"fetched_at": "2026-03-04T09:30:00Z"})
    assert refused.status_code == 403 and "may not change" in refused.json()["detail"], refused.text
    assert _snapshot(task_world["conn"]) == before


def test_a_task_is_held_edited_resumed_and_cancelled_and_an_impossible_move_is_a_409(admin, task_world):
    task = admin.post("/tasks/create_task_for_ticket", {"ticket_id": task_world["ticket"]}).json()
    task_id = task["task_id"]
    held = admin.post(f"/tasks/{task_id}/hold", {"reason": "waiting for the spare part"})
    assert held.status_code == 200, held.text
    assert (held.json()["status"], held.json()["status_reason"]) == ("on_hold", "waiting for the spare part")
    again = admin.post(f"/tasks/{task_id}/hold")
    assert again.status_code == 409 and again.json() == {"detail": f"task {task_id} is on_hold already"}

    users = [{"userID": 3, "status": "in_progress"}, {"userID": 42, "username": "jdoe", "role": FIRST_ROLE}]
    edited = admin.patch(f"/tasks/{task_id}", {"status": "in_progress", "users": users,
                                               "fetched_at": "2026-03-04T10:30:00+01:00"})
    assert edited.status_code == 200, edited.text
    edited = edited.json()
    assert (edited["status"], edited["status_reason"], edited["fetched_at"]) == (
        "in_progress", None, "2026-03-04T09:30:00Z")
    assert [(u["userID"], u["status"]) for u in edited["users"]] == [(3, "in_progress"), (42, "assigned")]
    assert edited["users"][0]["assigned_on"] == task["users"][0]["assigned_on"]  # user 3 keeps their assignment
    in_progress = admin.get(f"/tasks/{task_id}/assigned_users", status="in_progress")
    assert [u["userID"] for u in in_progress.json()] == [3]
    assert len(admin.get(f"/tasks/{task_id}/assigned_users").json()) == 2
    assert admin.get(f"/tasks/{task_id}").json()["fetched_at"] == "2026-03-04T09:30:00Z"  # reading writes nothing

    cancelled = admin.post(f"/tasks/{task_id}/cancel", {"reason": "the customer bought a new laptop"})
    assert cancelled.status_code == 200, cancelled.text
    assert (cancelled.json()["status"], cancelled.json()["status_reason"]) == (
        "cancelled", "the customer bought a new laptop")
    before = _snapshot(task_world["conn"])
    for target, answer in (("pending", admin.patch(f"/tasks/{task_id}", {"status": "pending"})),
                           ("on_hold", admin.post(f"/tasks/{task_id}/hold"))):
        assert answer.status_code == 409, answer.text
        assert answer.json() == {"detail": f"task {task_id} cannot go from cancelled to {target}: cancelled is final"}
    assert _snapshot(task_world["conn"]) == before


@pytest.fixture
def recurring_world(stack):
    """No recurring template of earlier tests, and none of ours left for the scheduled runs afterwards."""
    with psycopg.connect(stack.app_db_url, autocommit=True) as conn:
        conn.execute("UPDATE tickets SET archived = true WHERE is_recurring")
        yield conn
        conn.execute("UPDATE tickets SET archived = true WHERE is_recurring")


def test_recurring_templates_with_real_tokens_a_viewer_reads_and_is_refused_every_change(admin, viewer,
                                                                                        recurring_world):
    created = admin.post("/recurring/templates", {
        "subject": "Patch review", "department": "IT", "category": "Ops", "schedule": {"rrule": "FREQ=WEEKLY;BYDAY=MO"},
        "timezone": "America/Toronto", "start": "2030-01-07T08:00:00-05:00"})
    assert created.status_code == 201, created.text
    template = created.json()["id"]
    assert admin.post(f"/recurring/templates/{template}/pause", {"reason": "audit"}).json()["state"] == "paused"
    assert viewer.get(f"/recurring/templates/{template}").json()["next_occurrences"][0]["local"] == (
        "2030-01-07T08:00:00-05:00")
    assert viewer.get("/recurring/templates", state="paused").json()["total"] == 1
    assert viewer.post("/recurring/preview", {"schedule": {"interval": "daily"}, "start": "2030-01-07T08:00:00Z",
                                              "count": 2}).status_code == 200
    before = _snapshot(recurring_world)
    for path, body in ((f"/recurring/templates/{template}/resume", {}), ("/recurring/templates", {}),
                       (f"/recurring/templates/{template}/skip", {"occurrence": "2030-01-14T13:00:00Z",
                                                                  "reason": "x"}),
                       (f"/recurring/templates/{template}/move", {"occurrence": "2030-01-14T13:00:00Z",
                                                                  "to": "2030-01-15T13:00:00Z", "reason": "x"}),
                       (f"/recurring/templates/{template}/reschedule", {"from": "2030-01-14T13:00:00Z"}),
                       (f"/recurring/templates/{template}/pause", {})):
        assert viewer.post(path, body).status_code == 403, path
    assert viewer.patch(f"/recurring/templates/{template}", {"subject": "x"}).status_code == 403
    assert _snapshot(recurring_world) == before
    resumed = admin.post(f"/recurring/templates/{template}/resume", {"missed": "skip"})
    assert resumed.status_code == 200 and resumed.json()["state"] == "active"


def test_events_listing_retrieval_and_my_events(admin, stack):
    with psycopg.connect(stack.app_db_url, autocommit=True) as conn:
        conn.execute("TRUNCATE events, customers RESTART IDENTITY CASCADE")
        ids = {status: conn.execute(
            "INSERT INTO events (title, start_date, end_date) VALUES (%s, now() + interval '2 days',"
            " now() + interval '3 days') RETURNING id", (status,)).fetchone()[0]
            for status in ("draft", "confirmed", "completed", "cancelled")}
        for status, path in {"confirmed": ["confirmed"], "completed": ["confirmed", "ongoing", "completed"],
                             "cancelled": ["cancelled"]}.items():
            for step in path:
                conn.execute("UPDATE events SET status = %s WHERE id = %s", (step, ids[status]))
        customer = conn.execute("INSERT INTO customers (username, email) VALUES ('ana', 'ana@example.org')"
                                " RETURNING id").fetchone()[0]
        conn.execute("INSERT INTO event_attendees SELECT id, %s FROM events WHERE title IN ('confirmed', 'completed')",
                     (customer,))

    listed = admin.get("/events").json()
    assert listed["total_entries"] == 2 and {e["title"] for e in listed["events"]} == {"draft", "confirmed"}
    assert admin.get("/events", limit=1, offset=1).json()["events"][0]["title"] == "confirmed"
    assert admin.get(f"/events/{ids['completed']}").json()["status"] == "completed"
    assert {e["title"] for e in admin.get("/events/my_events", customer_id=customer).json()} == {
        "confirmed", "completed"}
    assert [e["title"] for e in admin.get("/events/my_events", customer_id=customer,
                                          include_completed="false").json()] == ["confirmed"]


def test_tdx_action_log_recent_summary_per_ticket_and_clearing_failures(admin, stack):
    """Tickets 7001 and 7002 are this test's: the scheduled queue may log its own tickets meanwhile."""
    def ours(conn):
        return conn.execute("SELECT ticket_id, status FROM meta.daemon_action_log WHERE ticket_id IN (7001, 7002)"
                            " ORDER BY ticket_id, status").fetchall()

    with psycopg.connect(stack.app_db_url, autocommit=True) as conn:
        conn.execute("DELETE FROM meta.daemon_action_log WHERE ticket_id IN (7001, 7002) OR status = 'failed'")
        conn.execute("INSERT INTO meta.daemon_action_log (ticket_id, action_type, action_id, action_hash, status,"
                     " error_message) VALUES"
                     " (7001, 'comment', 'comment:aaaaaaaaaaaa:v1', 'a', 'failed', 'TDX said 500'),"
                     " (7001, 'assignment', 'assignment:bbbbbbbbbbbb:v1', 'b', 'failed', 'TDX said 403'),"
                     " (7001, 'add_asset', 'add_asset:cccccccccccc:v1', 'c', 'completed', NULL),"
                     " (7002, 'comment', 'comment:aaaaaaaaaaaa:v1', 'a', 'failed', 'TDX said 500')")

        recent = [a for a in admin.get("/tdx/actions/recent").json() if a["ticket_id"] in (7001, 7002)]
        assert len(recent) == 4
        summary = admin.get("/tdx/actions/summary").json()
        assert summary["total_actions"] >= 4 and summary["by_status"]["failed"] == 3
        assert {row["action_type"]: row["actions"] for row in summary["summary"] if row["status"] == "failed"} == {
            "comment": 2, "assignment": 1}
        assert len(admin.get("/tdx/tickets/7001/actions").json()) == 3

        assert admin.post("/tdx/actions/clear_failed", {"ticket_id": 7001}).json() == {"cleared": 2}
        assert ours(conn) == [(7001, "completed"), (7002, "failed")]
        for ambiguous in ({}, {"ticket_id": None}, {"ticket_id": 7002, "all": True}, {"all": False}):
            refused = admin.post("/tdx/actions/clear_failed", ambiguous)
            assert refused.status_code == 422 and "ticket_id" in refused.text and "all" in refused.text, ambiguous
        assert ours(conn) == [(7001, "completed"), (7002, "failed")]
        assert admin.post("/tdx/actions/clear_failed", {"all": True}).json() == {"cleared": 1}
        assert ours(conn) == [(7001, "completed")]


def test_the_dashboard_page_is_served_to_users_only(admin, stack):
    page = admin.get("/dashboard")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'data-dag-id="recurring_tickets"' in page.text and "Oldest ticket without a task" in page.text
    assert requests.get(f"{stack.api_url}/ticketflow/dashboard", timeout=30).status_code == 401


def test_the_recurring_page_and_its_script_are_served_to_users_only(admin, viewer, stack):
    """Both users get the page (a viewer without its editing controls) and its script; nobody else does."""
    for user, can_edit in ((admin, "true"), (viewer, "false")):
        page = user.get("/recurring-tickets")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert f'data-can-edit="{can_edit}"' in page.text
        script = user.get("/static/recurring.js")
        assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    for path in ("/recurring-tickets", "/static/recurring.js"):
        assert requests.get(f"{stack.api_url}/ticketflow{path}", timeout=30).status_code == 401


def test_schemathesis_finds_no_server_error_in_the_plugins_part_of_the_openapi_document(stack, tmp_path):
    """Fuzzing, boundary and stateful phases over every /ticketflow operation, with all of schemathesis' checks."""
    done = subprocess.run(
        [sys.executable, "-m", "schemathesis.cli", "--config-file", str(Path(__file__).with_name("schemathesis.toml")),
         "run", f"{stack.api_url}/openapi.json",
         "--include-path-regex", "^/ticketflow/", "-H", f"Authorization: Bearer {stack.token()}",
         "--max-examples", "15", "--seed", "1", "--generation-database", "none", "--workers", "1"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert f"Tested: {len(ROUTES)}" in done.stdout
