"""`POST /ticketflow/tickets` on the real API server with real tokens: batches, refusals, idempotency, rights."""

import psycopg
import pytest
import requests

from devstack.stack import VIEWER_PASSWORD, VIEWER_USER
from tests.support import eventually

pytestmark = pytest.mark.e2e
ROLE = "Facilities Coordinator"  # the stand-in TTS answers [11, 12]


@pytest.fixture
def post(stack):
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {stack.token()}"
    return lambda body, **headers: session.post(f"{stack.api_url}/ticketflow/tickets", json=body, headers=headers,
                                                timeout=60)


@pytest.fixture
def conn(stack):
    """The stack's application database, with a workflow for the Bulk department (other tests use others)."""
    with psycopg.connect(stack.app_db_url, autocommit=True) as conn:
        conn.execute("DELETE FROM intake_requests")
        if conn.execute("SELECT 1 FROM workflows WHERE department = 'Bulk'").fetchone() is None:
            workflow = conn.execute("INSERT INTO workflows (name, department, category, is_published, status)"
                                    " VALUES ('Bulk intake', 'Bulk', 'Rooms', true, 'deployed') RETURNING id"
                                    ).fetchone()[0]
            conn.execute("INSERT INTO steps (workflow_id, name, role_name, step_order) VALUES (%s, 'Fix', %s, 1)",
                         (workflow, ROLE))
        yield conn


def _ticket(n, **fields):
    return {"subject": f"Bulk {n}", "department": "Bulk", "category": "Rooms", **fields}


def _count(conn):
    return conn.execute("SELECT count(*), (SELECT count(*) FROM intake_requests) FROM tickets").fetchone()


def test_a_batch_is_written_at_once_and_every_new_ticket_gets_its_task(post, conn):
    known = post({"tickets": [_ticket(0, external_id="BULK-E2E-1")]}).json()["tickets"][0]["ticket_id"]
    batch = [_ticket(n) for n in range(1, 100)] + [_ticket(100, external_id="BULK-E2E-1", priority="urgent")]

    answer = post({"tickets": batch})

    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["created"], body["updated"]) == (99, 1) and len(body["tickets"]) == 100
    assert body["tickets"][-1] == {"index": 99, "ticket_id": known, "action": "updated"}
    ids = [t["ticket_id"] for t in body["tickets"]]
    assert conn.execute("SELECT priority FROM tickets WHERE id = %s", (known,)).fetchone()[0] == "urgent"
    assigned = eventually(lambda: conn.execute(
        "SELECT count(*) = %s AND bool_and(t.users @> '[{\"role\": \"Facilities Coordinator\"}]')"
        " FROM tasks t WHERE t.ticket_id = ANY(%s)", (len(set(ids)), ids)).fetchone()[0], seconds=60,
        what="a task for every ticket of the batch (woken by its NOTIFY)")
    assert assigned


@pytest.mark.parametrize("body, location, message", [
    ({"tickets": [_ticket(0), _ticket(1), _ticket(2, subject=" ")]}, ["body", "tickets", 2, "subject"],
     "subject is required"),
    ({"tickets": [_ticket(0), _ticket(1, requester_email="ana@example")]}, ["body", "tickets", 1, "requester_email"],
     "requester_email is not an email address"),
    ({"tickets": [_ticket(0, priorty="high")]}, ["body", "tickets", 0, "priorty"], "unknown field: priorty"),
    ({"tickets": [_ticket(0, external_id="DUP"), _ticket(1, external_id="DUP")]},
     ["body", "tickets", 1, "external_id"], "is also ticket 0 of this batch"),
    ({"tickets": [_ticket(0), "a string"]}, ["body", "tickets", 1], "valid dictionary"),
    ({"tickets": []}, ["body", "tickets"], "at least 1 item"),
    ({"tickets": [_ticket(n) for n in range(1001)]}, ["body", "tickets"], "at most 1000 items"),
    ({"tickets": [_ticket(0)], "dry_run": True}, ["body", "dry_run"], "Extra inputs"),
])
def test_a_bad_batch_gets_a_422_naming_the_index_and_field_and_nothing_is_written(post, conn, body, location,
                                                                                  message):
    before = _count(conn)
    answer = post(body, **{"Idempotency-Key": "bad-batch"})
    assert answer.status_code == 422, answer.text
    errors = answer.json()["detail"]
    assert any(e["loc"] == location and message in e["msg"] for e in errors), errors
    assert _count(conn) == before


def test_an_idempotency_key_makes_a_retry_return_the_first_answer_and_write_nothing(post, conn):
    batch = {"tickets": [_ticket("key-1"), _ticket("key-2")]}
    first = post(batch, **{"Idempotency-Key": "import-42"})
    assert first.status_code == 200 and "Idempotent-Replayed" not in first.headers
    before = _count(conn)

    again = post(batch, **{"Idempotency-Key": "import-42"})
    assert again.status_code == 200 and again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    other = post({"tickets": [_ticket("key-3")]}, **{"Idempotency-Key": "import-42"})
    assert other.status_code == 409 and "sent before with other tickets" in other.json()["detail"]
    assert _count(conn) == before

    refused = post(batch, **{"Idempotency-Key": "with a space"})
    assert refused.status_code == 422 and refused.json()["detail"][0]["loc"] == ["header", "Idempotency-Key"]


def test_only_users_who_may_edit_ticket_intake_may_post(stack, conn):
    before = _count(conn)
    url = f"{stack.api_url}/ticketflow/tickets"
    viewer = requests.post(url, json={"tickets": [_ticket(0)]}, timeout=30,
                           headers={"Authorization": f"Bearer {stack.token(VIEWER_USER, VIEWER_PASSWORD)}"})
    assert viewer.status_code == 403 and "may not change the data of ticket_intake" in viewer.json()["detail"]
    assert requests.post(url, json={"tickets": [_ticket(0)]}, timeout=30).status_code == 401
    assert _count(conn) == before
