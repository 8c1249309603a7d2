"""What an outside probe of a running stack found, refused on the real API server: cross-site writes,
numbers and ids that gave 500s, text longer than its column, conf keys no DAG declares."""

import json
import uuid
from urllib.parse import quote

import psycopg
import pytest
import requests

from devstack import free_port

pytestmark = pytest.mark.e2e
FIRST_ROLE, SECOND_ROLE = "IT Support Technician", "Service Desk Lead"  # the stand-in TTS: [3, 6, 9] and [1]
HUGE = "9" * 5000  # more digits than Python converts to an int


@pytest.fixture
def app_db(stack):
    with psycopg.connect(stack.app_db_url, autocommit=True) as conn:
        yield conn


@pytest.fixture
def bearer(stack):
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {stack.token()}"
    return session


def make_task(stack, app_db, bearer) -> int:
    """A pending task with two steps, on a ticket the assignment DAG leaves alone for a day."""
    tag = uuid.uuid4().hex[:8]
    workflow = app_db.execute("INSERT INTO workflows (name, department, category, is_published, status)"
                              " VALUES ('Hardening', %s, 'Probe', true, 'deployed') RETURNING id", (tag,)).fetchone()[0]
    app_db.execute("INSERT INTO steps (workflow_id, name, role_name, step_order) VALUES"
                   " (%s, 'Diagnose', %s, 1), (%s, 'Approve', %s, 2)", (workflow, FIRST_ROLE, workflow, SECOND_ROLE))
    ticket = app_db.execute("INSERT INTO tickets (subject, department, category, next_allocation_at)"
                            " VALUES ('Probe target', %s, 'Probe', now() + interval '1 day') RETURNING id",
                            (tag,)).fetchone()[0]
    created = bearer.post(f"{stack.api_url}/ticketflow/tasks/create_task_for_ticket", json={"ticket_id": ticket},
                          timeout=30)
    assert created.status_code == 201, created.text
    return created.json()["task_id"]


def task_row(app_db, task_id):
    return app_db.execute("SELECT status, current_step_id, users, updated_at FROM tasks WHERE task_id = %s",
                          (task_id,)).fetchone()


def test_the_probes_cross_site_post_with_the_ui_cookie_is_refused_and_changes_nothing(stack, app_db, bearer):
    task_id = make_task(stack, app_db, bearer)
    before = task_row(app_db, task_id)
    browser = requests.Session()  # what a logged-in browser holds: the UI's cookie, no Authorization header
    browser.headers["Cookie"] = f"_token={stack.token()}"
    foreign = f"http://localhost:{free_port()}"  # another port of the same host: the same site, the cookie goes
    for action in ("complete_task", "move_to_next_step"):
        url = f"{stack.api_url}/ticketflow/tasks/{task_id}/{action}"
        for headers, body in (({"Origin": foreign, "Content-Type": "text/plain"}, "{}"),
                              ({"Origin": foreign, "Sec-Fetch-Site": "same-site", "Content-Type": "text/plain"}, "x"),
                              ({"Origin": foreign, "Content-Type": "application/json"}, "{}"),
                              ({"Content-Type": "application/x-www-form-urlencoded"}, "a=b")):
            answer = browser.post(url, data=body, headers=headers, timeout=30)
            assert answer.status_code == 403 and "own pages" in answer.json()["detail"], (action, headers, answer.text)
    assert task_row(app_db, task_id) == before

    # The same cookie from the server's own origin is a real login: the refusals above were the origin check.
    own = browser.post(f"{stack.api_url}/ticketflow/tasks/{task_id}/complete_task", json={},
                       headers={"Origin": stack.api_url}, timeout=30)
    assert own.status_code == 200 and own.json()["status"] == "completed"


def test_a_write_takes_json_only_even_with_a_token(stack, app_db, bearer):
    task_id = make_task(stack, app_db, bearer)
    before = task_row(app_db, task_id)
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
        answer = bearer.post(f"{stack.api_url}/ticketflow/tasks/{task_id}/complete_task", data="{}",
                             headers={"Content-Type": content_type}, timeout=30)
        assert answer.status_code == 415 and "must be JSON" in answer.json()["detail"]
    too_big = bearer.post(f"{stack.api_url}/ticketflow/tasks/{task_id}/assign_user", timeout=30,
                          json={"userID": 5, "username": "x" * (2 * 1024 * 1024)})
    assert too_big.status_code == 413
    assert task_row(app_db, task_id) == before


@pytest.mark.parametrize("path, body, loc", [
    ("/tasks/create_task_for_ticket", '{"ticket_id": NaN}', ["body", "ticket_id"]),
    ("/tasks/create_task_for_ticket", '{"ticket_id": Infinity}', ["body", "ticket_id"]),
    ("/tasks/create_task_for_ticket", '{"ticket_id": 1e999}', ["body", "ticket_id"]),
    ("/tasks/create_task_for_ticket", f'{{"ticket_id": {HUGE}}}', ["body", "ticket_id"]),
    ("/tdx/actions/clear_failed", '{"ticket_id": NaN}', ["body", "ticket_id"]),
    ("/tdx/actions/clear_failed", '{"ticket_id": -Infinity}', ["body", "ticket_id"]),
    ("/tdx/actions/clear_failed", '{"ticket_id": 1e999}', ["body", "ticket_id"]),
    ("/tasks/{task}/assign_user", '{"userID": 5, "username": "%s"}' % ("u" * 151), ["body", "username"]),
    ("/tasks/{task}/assign_user", '{"userID": 5, "role": "%s"}' % ("r" * 201), ["body", "role"]),
])
def test_bodies_json_cannot_carry_or_the_columns_cannot_hold_are_a_422_naming_the_field(stack, app_db, bearer,
                                                                                         path, body, loc):
    task_id = make_task(stack, app_db, bearer)
    before = (task_row(app_db, task_id), app_db.execute("SELECT count(*) FROM meta.daemon_action_log").fetchone())
    answer = bearer.post(f"{stack.api_url}/ticketflow{path.replace('{task}', str(task_id))}", data=body,
                         headers={"Content-Type": "application/json"}, timeout=30)
    assert answer.status_code == 422, answer.text
    assert loc in [error["loc"][:len(loc)] for error in answer.json()["detail"]]
    assert (task_row(app_db, task_id), app_db.execute("SELECT count(*) FROM meta.daemon_action_log").fetchone()
            ) == before


@pytest.mark.parametrize("path, loc", [
    (f"/tasks/{HUGE}", ["path", "task_id"]), (f"/events/{HUGE}", ["path", "event_id"]),
    (f"/tdx/tickets/{HUGE}/actions", ["path", "ticket_id"]), (f"/tasks?limit={HUGE}", ["query", "limit"]),
    (f"/tasks/{2**63}", ["path", "task_id"]), (f"/tdx/tickets/{2**31}/actions", ["path", "ticket_id"]),
    (f"/events/my_events?customer_id={HUGE}", ["query", "customer_id"]),
])
def test_ids_of_thousands_of_digits_are_a_422_naming_the_parameter(stack, bearer, path, loc):
    answer = bearer.get(f"{stack.api_url}/ticketflow{path}", timeout=30)
    assert answer.status_code == 422, answer.text[:300]
    assert [error["loc"] for error in answer.json()["detail"]] == [loc]
    assert len(answer.content) < 2000  # the 5,000 digits are not echoed back


@pytest.mark.parametrize("path", ["/dashboard", "/recurring-tickets", "/tasks"])
def test_pages_and_answers_carry_the_security_headers(stack, bearer, path):
    answer = bearer.get(f"{stack.api_url}/ticketflow{path}", timeout=30)
    assert answer.status_code == 200
    policy = {directive.split()[0]: directive.split()[1:] for directive in
              answer.headers["Content-Security-Policy"].split("; ")}
    assert policy["frame-ancestors"] == ["'self'"] and policy["default-src"] == ["'none'"]
    assert answer.headers["X-Content-Type-Options"] == "nosniff" and answer.headers["X-Frame-Options"] == "SAMEORIGIN"


def _task_log(api, dag_id, run_id, task_id) -> str:
    answer = api.session.get(api.url(f"dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances/{task_id}"
                                     "/logs/1"), params={"full_content": "true"},
                             headers={"Accept": "application/json"}, timeout=30)
    assert answer.status_code == 200, answer.text
    return json.dumps(answer.json()["content"])


def test_a_conf_key_the_dag_does_not_declare_fails_the_run_before_it_acts(api, app_db):
    """The probe's keys: batch_size on the TDX queue, due_at on the event lifecycle and recurring tickets."""
    runs = {dag_id: (first_task, key, api.trigger(dag_id, conf=conf)["dag_run_id"])
            for dag_id, first_task, key, conf in (
                ("tdx_ticket_queue", "find_tickets_with_work", "batch_size",
                 {"report_id": 1002, "dry_run": False, "batch_size": 5}),
                ("event_lifecycle", "advance_events", "due_at", {"due_at": "2026-06-01T00:00:00+00:00"}),
                ("recurring_tickets", "create_due_occurrences", "due_at", {"due_at": "2026-06-01T00:00:00+00:00"}))}
    for dag_id, (first_task, key, run_id) in runs.items():
        assert api.wait_for_run(dag_id, run_id, timeout=240)["state"] == "failed"
        instance = api.get(f"dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances/{first_task}")
        assert (instance["state"], instance["try_number"]) == ("failed", 1)  # no retries: the same conf fails again
        assert f"does not take the conf key(s) '{key}'" in _task_log(api, dag_id, run_id, first_task)
        assert app_db.execute("SELECT count(*) FROM automation_runs WHERE run_id = %s", (run_id,)).fetchone()[0] == 0
    assert app_db.execute("SELECT count(*) FROM meta.daemon_action_log WHERE dag_run_id = %s",
                          (runs["tdx_ticket_queue"][2],)).fetchone()[0] == 0


def test_intake_text_longer_than_its_column_is_refused_at_trigger_time(api, app_db):
    before = app_db.execute("SELECT count(*) FROM tickets").fetchone()[0]
    ticket = {"subject": "Probe", "department": "IT", "category": "Accounts"}
    for field, value in (("description", "y" * 1_000_000), ("external_id", "x" * 100_000),
                         ("department", "d" * 5000), ("subject", "s" * 501)):
        refused = api.session.post(api.url("dags/ticket_intake/dagRuns"), timeout=60,
                                   json={"logical_date": None, "conf": {**ticket, field: value}})
        assert refused.status_code == 400 and field in refused.json()["detail"], (field, refused.text[:300])
    assert app_db.execute("SELECT count(*) FROM tickets").fetchone()[0] == before


def test_sql_and_html_in_text_fields_are_stored_and_returned_literally(stack, app_db, bearer):
    task_id = make_task(stack, app_db, bearer)
    hostile = {"username": "x'); DROP TABLE tasks;--", "email": "<script>alert(1)</script>@example.org",
               "role": "' OR '1'='1"}
    answer = bearer.post(f"{stack.api_url}/ticketflow/tasks/{task_id}/assign_user", json={"userID": 77, **hostile},
                         timeout=30)
    assert answer.status_code == 200, answer.text
    assert {key: answer.json()["users"][-1][key] for key in hostile} == hostile
    assert app_db.execute("SELECT users -> -1 ->> 'username' FROM tasks WHERE task_id = %s",
                          (task_id,)).fetchone()[0] == hostile["username"]
    refused = bearer.get(f"{stack.api_url}/ticketflow/tasks", params={"status": "pending' OR 1=1--"}, timeout=30)
    assert refused.status_code == 422 and refused.json()["detail"][0]["loc"] == ["query", "status"]
