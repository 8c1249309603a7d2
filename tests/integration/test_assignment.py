"""Intake and automatic task creation against real PostgreSQL and a real TTS server."""

from collections import Counter
from datetime import UTC, datetime

import psycopg
import pytest

from devstack.standins import TtsStandIn
from tests.support import connected_standin
from ticketflow.assignment import assign_waiting_tickets
from ticketflow.audit import AuditedRun, RunWindow
from ticketflow.intake import InvalidTicket, receive_ticket
from ticketflow.tts import TtsClient

ROLE = "IT Support Technician"


@pytest.fixture
def tts(monkeypatch):
    yield from connected_standin(TtsStandIn({ROLE: [3, 6, 9], "Facilities": [11, 12]}), "tts", monkeypatch)


def workflow(db, name, department="IT", category="Hardware", sub_category=None, roles=(ROLE,), **fields):
    values = {"is_published": True, "status": "deployed", "end_logic": "none", **fields}
    workflow_id = db.execute(
        "INSERT INTO workflows (name, department, category, sub_category, is_published, status, end_logic)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
        (name, department, category, sub_category, values["is_published"], values["status"], values["end_logic"])
    ).fetchone()[0]
    for order, role in enumerate(roles, start=1):
        db.execute("INSERT INTO steps (workflow_id, name, role_name, step_order) VALUES (%s, %s, %s, %s)",
                   (workflow_id, f"step {order}", role, order))
    return workflow_id


def ticket(db, subject="Laptop broken", department="IT", category="Hardware", sub_category=None):
    return db.execute("INSERT INTO tickets (subject, department, category, sub_category) VALUES (%s, %s, %s, %s)"
                      " RETURNING id", (subject, department, category, sub_category)).fetchone()[0]


def assign(conn, max_assignments=3, batch_size=500, run_id="assign__1"):
    with AuditedRun(conn, RunWindow("ticket_task_assignment", run_id, datetime.now(UTC))) as run:
        assign_waiting_tickets(run, TtsClient(attempts=3).users_for_role, max_assignments, batch_size)
    return run.outcome


def task_of(db, ticket_id):
    return db.execute("SELECT workflow_id, current_step_id, users, status FROM tasks WHERE ticket_id = %s",
                      (ticket_id,)).fetchone()


def test_a_ticket_gets_a_task_on_the_matching_workflows_first_step(db, tts):
    workflow(db, "Laptop paused", sub_category="Laptop", status="paused")  # published, not deployed; lowest id
    workflow(db, "Laptop draft", sub_category="Laptop", is_published=False)
    general = workflow(db, "Hardware triage")
    laptops = workflow(db, "Laptop repair", sub_category="Laptop", roles=(ROLE, "Facilities"))
    exact, fallback = ticket(db, sub_category="Laptop"), ticket(db, sub_category="Printer")
    template = db.execute("INSERT INTO tickets (subject, department, category, is_recurring, recurrence_interval,"
                          " next_occurrence) VALUES ('Weekly check', 'IT', 'Hardware', true, 'weekly', now())"
                          " RETURNING id").fetchone()[0]
    archived = db.execute("INSERT INTO tickets (subject, department, category, archived) VALUES"
                          " ('Old', 'IT', 'Hardware', true) RETURNING id").fetchone()[0]

    outcome = assign(db)
    assert (outcome.processed, outcome.changed) == (2, 2)
    assert task_of(db, template) is None and task_of(db, archived) is None  # templates and archived wait for none
    first_step = db.execute("SELECT id FROM steps WHERE workflow_id = %s AND step_order = 1", (laptops,)).fetchone()[0]
    workflow_id, step_id, users, status = task_of(db, exact)
    assert (workflow_id, step_id, status) == (laptops, first_step, "pending")
    assert [(u["userID"], u["status"], u["role"]) for u in users] == [(3, "assigned", ROLE), (6, "assigned", ROLE),
                                                                      (9, "assigned", ROLE)]
    assert all(u["assigned_on"].endswith("Z") for u in users)
    assert task_of(db, fallback)[0] == general
    assert db.execute("SELECT count(*) FROM tickets WHERE is_task_allocated").fetchone()[0] == 2


def test_each_failure_is_kept_on_its_ticket_retried_later_and_never_blocks_the_batch(db, tts):
    workflow(db, "Hardware")
    workflow(db, "Empty", category="Empty", roles=())
    workflow(db, "Nobody", category="Nobody", roles=("Ghost role",))
    good = ticket(db)
    no_workflow = ticket(db, category="Unknown")
    no_steps = ticket(db, category="Empty")
    no_users = ticket(db, category="Nobody")

    outcome = assign(db)
    assert outcome.details["created"] == 1 and outcome.details["failed"] == 3
    assert task_of(db, good) is not None
    rows = dict((r[0], r[1:]) for r in db.execute(
        "SELECT id, allocation_error, allocation_attempts, next_allocation_at > clock_timestamp(), is_task_allocated"
        " FROM tickets WHERE id <> %s", (good,)).fetchall())
    assert rows[no_workflow] == ("no published, deployed workflow matches the ticket", 1, True, False)
    assert rows[no_steps] == ("the matching workflow has no steps", 1, True, False)
    assert rows[no_users] == ("no users for role 'Ghost role'", 1, True, False)

    assert assign(db, run_id="assign__2").processed == 0  # backing off: not retried every few seconds
    tts.roles["Ghost role"] = [42]
    db.execute("UPDATE tickets SET next_allocation_at = clock_timestamp() WHERE id = %s", (no_users,))
    assert assign(db, run_id="assign__3").changed == 1
    assert [u["userID"] for u in task_of(db, no_users)[2]] == [42]
    assert db.execute("SELECT allocation_error FROM tickets WHERE id = %s", (no_users,)).fetchone()[0] is None


@pytest.mark.parametrize("trouble", ["down", "garbage", "not a list"])
def test_tts_trouble_leaves_the_ticket_waiting_with_the_reason(db, tts, trouble):
    workflow(db, "Hardware")
    waiting = ticket(db)
    if trouble == "down":
        tts.failures_left = 100
    else:
        tts.garbage = ["three", 6] if trouble == "garbage" else {"users": [3]}
    assign(db)
    error, allocated = db.execute("SELECT allocation_error, is_task_allocated FROM tickets WHERE id = %s",
                                  (waiting,)).fetchone()
    assert not allocated
    assert ("TTS unreachable or failing" if trouble == "down" else "not a list of user ids") in error
    if trouble == "down":
        assert len(tts.calls) == 3  # retried with backoff, then given up for this batch
        first_gap, second_gap = (b.at - a.at for a, b in zip(tts.calls, tts.calls[1:], strict=False))
        assert 0.45 <= first_gap < 0.95 <= second_gap  # 0.5 s, then 1 s


def test_a_brief_tts_outage_is_ridden_out_by_the_retries(db, tts):
    workflow(db, "Hardware")
    waiting = ticket(db)
    tts.failures_left = 2
    assert assign(db).changed == 1
    assert task_of(db, waiting) is not None and len(tts.calls) == 3


def test_tts_is_called_once_per_role_per_batch(db, tts):
    workflow(db, "Hardware")
    workflow(db, "Rooms", department="Facilities", category="Rooms", roles=("Facilities",))
    for i in range(25):
        ticket(db, f"hw {i}")
        ticket(db, f"room {i}", department="Facilities", category="Rooms")
    outcome = assign(db)
    assert outcome.changed == 50
    assert sorted(c.query["role_name"] for c in tts.calls) == ["Facilities", ROLE]
    assert outcome.details["tts_calls"] == 2


def test_round_robin_is_fair_over_1000_tickets_and_7_users(db, tts):
    tts.roles[ROLE] = [1, 2, 3, 4, 5, 6, 7]
    workflow(db, "Hardware")
    db.execute("INSERT INTO tickets (subject, department, category) SELECT 't' || g, 'IT', 'Hardware'"
               " FROM generate_series(1, 1000) g")
    assign(db, max_assignments=1)
    counts = Counter(users[0]["userID"] for (users,) in db.execute("SELECT users FROM tasks"))
    assert sorted(counts) == [1, 2, 3, 4, 5, 6, 7]
    assert set(counts.values()) <= {142, 143} and sum(counts.values()) == 1000


def test_with_several_users_per_task_the_rotation_still_goes_round_the_whole_role(db, tts):
    tts.roles[ROLE] = [1, 2, 3, 4]
    workflow(db, "Hardware")
    db.execute("INSERT INTO tickets (subject, department, category) SELECT 't' || g, 'IT', 'Hardware'"
               " FROM generate_series(1, 8) g")
    assign(db, max_assignments=3)
    rounds = [[u["userID"] for u in users] for (users,) in db.execute("SELECT users FROM tasks ORDER BY task_id")]
    assert rounds[:4] == [[1, 2, 3], [4, 1, 2], [3, 4, 1], [2, 3, 4]]
    assert Counter(u for users in rounds for u in users) == {1: 6, 2: 6, 3: 6, 4: 6}


def test_a_user_tts_names_twice_is_assigned_once_and_the_batch_goes_on(db, tts):
    tts.roles[ROLE] = [5, 5, 8]
    workflow(db, "Hardware")
    workflow(db, "Rooms", department="Facilities", category="Rooms", roles=("Facilities",))
    hardware, rooms = ticket(db), ticket(db, department="Facilities", category="Rooms")
    assert assign(db).changed == 2
    assert [u["userID"] for u in task_of(db, hardware)[2]] == [5, 8]
    assert [u["userID"] for u in task_of(db, rooms)[2]] == [11, 12]


def _backoff(db, ticket_id):
    return db.execute("SELECT allocation_attempts, extract(epoch FROM next_allocation_at - clock_timestamp())::float"
                      " FROM tickets WHERE id = %s", (ticket_id,)).fetchone()


def test_the_backoff_doubles_from_30_seconds_and_stays_at_an_hour_however_many_attempts(db, tts):
    workflow(db, "Hardware")
    stuck, good = ticket(db, category="Unknown"), ticket(db)
    waits = []
    for run in range(3):
        db.execute("UPDATE tickets SET next_allocation_at = NULL WHERE id = %s", (stuck,))  # due again now
        assign(db, run_id=f"assign__{run}")
        attempts, wait = _backoff(db, stuck)
        assert attempts == run + 1
        waits.append(wait)
    assert [round(w, -1) for w in waits] == [30, 60, 120]
    assert task_of(db, good) is not None

    db.execute("UPDATE tickets SET allocation_attempts = 5000, next_allocation_at = NULL WHERE id = %s", (stuck,))
    assert assign(db, run_id="assign__late").details["failed"] == 1
    attempts, wait = _backoff(db, stuck)
    assert attempts == 5001 and 3500 < wait <= 3600


def test_the_rotation_survives_restarts_and_new_users_go_first_without_shifting_the_rest(db, tts):

    workflow(db, "Hardware")
    tts.roles[ROLE] = [1, 2, 3]
    for _ in range(2):
        ticket(db)
    assign(db, max_assignments=1)  # 1, 2 — and the state is in PostgreSQL, not in this process
    tts.roles[ROLE] = [1, 2, 3, 4]
    for _ in range(4):
        ticket(db)
    assign(db, max_assignments=1, run_id="assign__2")
    order = [users[0]["userID"] for (users,) in db.execute("SELECT users FROM tasks ORDER BY task_id")]
    assert order == [1, 2, 3, 4, 1, 2]


def test_concurrent_batches_never_hand_out_the_same_slot(db, tts, run_concurrently):
    workflow(db, "Hardware")
    db.execute("INSERT INTO tickets (subject, department, category) SELECT 't' || g, 'IT', 'Hardware'"
               " FROM generate_series(1, 300) g")
    run_concurrently(["assign__0", "assign__1", "assign__2"],
                     lambda conn, name: assign(conn, max_assignments=1, batch_size=50, run_id=name))
    counts = Counter(users[0]["userID"] for (users,) in db.execute("SELECT users FROM tasks"))
    leftovers = db.execute("SELECT id, allocation_error FROM tickets WHERE NOT is_task_allocated").fetchall()
    assert leftovers == []
    assert sum(counts.values()) == 300 and sorted(counts.values()) == [100, 100, 100]


def test_a_failure_while_creating_the_task_changes_nothing(db, tts):
    workflow(db, "Hardware")
    waiting = ticket(db)
    db.execute("""
        CREATE FUNCTION fail_task() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'simulated crash creating the task'; END $$;
        CREATE TRIGGER fail_task BEFORE INSERT ON tasks FOR EACH ROW EXECUTE FUNCTION fail_task();
    """)
    with pytest.raises(psycopg.errors.RaiseException):
        assign(db)
    assert db.execute("SELECT is_task_allocated FROM tickets WHERE id = %s", (waiting,)).fetchone()[0] is False
    assert db.execute("SELECT count(*) FROM role_rotation").fetchone()[0] == 0
    db.execute("DROP TRIGGER fail_task ON tasks; DROP FUNCTION fail_task()")
    assert assign(db, run_id="assign__2").changed == 1


def test_intake_creates_then_updates_by_external_id_and_a_retry_creates_nothing_twice(db):
    fields = {"subject": "VPN down", "department": "IT", "category": "Network", "external_id": "EXT-1",
              "requester_email": "ana@example.com"}
    created = receive_ticket(db, fields, intake_key="ticket_intake/run1")
    updated = receive_ticket(db, {**fields, "subject": "VPN down again", "priority": "urgent"}, "ticket_intake/run2")
    assert created["action"] == "created" and updated == {"ticket_id": created["ticket_id"], "action": "updated"}
    assert db.execute("SELECT subject, priority FROM tickets WHERE id = %s", (created["ticket_id"],)).fetchone() == (
        "VPN down again", "urgent")

    anonymous = {"subject": "Printer jam", "department": "IT", "category": "Printers"}
    first = receive_ticket(db, anonymous, "ticket_intake/run3")
    retried = receive_ticket(db, anonymous, "ticket_intake/run3")
    assert first == retried and first["action"] == "created"
    assert db.execute("SELECT count(*) FROM tickets").fetchone()[0] == 2


@pytest.mark.parametrize("fields, message", [
    ({"department": "IT", "category": "X"}, "subject is required"),
    ({"subject": "  ", "department": "IT", "category": "X"}, "subject is required"),
    ({"subject": "s", "department": "IT", "category": "X", "priority": "asap"}, "priority must be one of"),
    ({"subject": "s", "department": "IT", "category": "X", "requester_email": "nobody"}, "not an email address"),
    ({"subject": "s", "department": "IT", "category": "X", "colour": "red"}, "unknown field: colour"),
    ({"subject": 7, "department": "IT", "category": "X"}, "subject must be text"),
    ({"subject": "s", "department": "IT", "category": "X", "external_id": " "}, "external_id must not be blank"),
    ({"subject": "s", "department": "IT", "category": "X", "description": "nul\x00"}, "must not contain NUL"),
    ({"subject": "s" * 501, "department": "IT", "category": "X"}, "subject is longer than 500 characters"),
])
def test_bad_tickets_are_refused_with_a_clear_message_and_nothing_is_written(db, fields, message):
    with pytest.raises(InvalidTicket, match=message):
        receive_ticket(db, fields, "ticket_intake/bad")
    assert db.execute("SELECT count(*) FROM tickets").fetchone()[0] == 0
