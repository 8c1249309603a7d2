"""Assignment shared out by role: the units a backlog becomes, units running at once, the run's audit in parts."""

from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from devstack.standins import TtsStandIn
from tests.support import connected_standin
from ticketflow.assignment import assign_waiting_tickets, plan_units
from ticketflow.audit import AuditedPart, RunWindow
from ticketflow.tts import TtsClient

WINDOW = RunWindow("ticket_task_assignment", "continuous__1", datetime(2026, 12, 2, 9, tzinfo=UTC))
ROLES = {"Hardware": [1, 2, 3, 4], "Network": [5, 6, 7], "Rooms": [8, 9], "Printers": [10]}


@pytest.fixture
def tts(monkeypatch):
    yield from connected_standin(TtsStandIn(dict(ROLES)), "tts", monkeypatch)


@pytest.fixture
def workflows(db):
    """One workflow per role, its category named after the role."""
    for role in ROLES:
        workflow = db.execute("INSERT INTO workflows (name, department, category, is_published, status)"
                              " VALUES (%s, 'IT', %s, true, 'deployed') RETURNING id", (role, role)).fetchone()[0]
        db.execute("INSERT INTO steps (workflow_id, name, role_name, step_order) VALUES (%s, 'first', %s, 1)",
                   (workflow, role))


def _tickets(db, category, count):
    db.execute("INSERT INTO tickets (subject, department, category) SELECT %s || g, 'IT', %s"
               " FROM generate_series(1, %s) g", (category, category, count))


def _assign(conn, roles, run_id="continuous__1", part=0, parts=1, max_assignments=1):
    with AuditedPart(conn, replace(WINDOW, run_id=run_id), part, parts) as run:
        assign_waiting_tickets(run, TtsClient().users_for_role, max_assignments, batch_size=100, roles=roles)
    return run.outcome


def test_nothing_waiting_is_no_unit_and_a_single_ticket_is_one(db, workflows):
    assert plan_units(db, max_units=8) == []
    _tickets(db, "Rooms", 1)
    assert plan_units(db, max_units=8) == [
        {"part": 0, "parts": 1, "roles": ["Rooms"], "tickets": 1, "label": "Rooms: 1 ticket"}]


def test_a_backlog_is_shared_out_by_role_into_units_of_about_the_same_size(db, workflows):
    for category, count in (("Hardware", 1200), ("Network", 700), ("Rooms", 600), ("Printers", 450),
                            ("No such category", 50)):
        _tickets(db, category, count)
    db.execute("UPDATE tickets SET next_allocation_at = now() + interval '1 hour' WHERE subject = 'Rooms1'")

    units = plan_units(db, max_units=8, min_tickets=500)

    # 2,999 tickets would make five units, but three finish as soon: Hardware alone takes as long.
    assert [(unit["roles"], unit["tickets"]) for unit in units] == [
        (["Hardware"], 1200), (["Rooms", "Printers"], 1049), (["Network", None], 750)]
    assert [(unit["part"], unit["parts"]) for unit in units] == [(0, 3), (1, 3), (2, 3)]
    assert units[1]["label"] == "Rooms +1 role: 1049 tickets"
    assert [unit["tickets"] for unit in plan_units(db, max_units=2, min_tickets=500)] == [1650, 1349]
    assert [unit["tickets"] for unit in plan_units(db, max_units=8)] == [1650, 1349]  # two units' worth
    assert [unit["tickets"] for unit in plan_units(db, max_units=8, min_tickets=1500)] == [2999]


def test_an_even_backlog_gets_one_unit_per_role_up_to_the_limit(db, workflows):
    for category in ROLES:
        _tickets(db, category, 1000)
    _tickets(db, "No such category", 1000)
    assert [unit["roles"] for unit in plan_units(db, max_units=8)] == [
        ["Hardware"], ["Network"], ["Printers"], ["Rooms"], [None]]  # never more units than roles
    assert [len(unit["roles"]) for unit in plan_units(db, max_units=3)] == [2, 2, 1]


def test_a_unit_serves_only_its_own_roles(db, tts, workflows):
    _tickets(db, "Hardware", 5)
    _tickets(db, "Network", 5)
    _tickets(db, "No such category", 2)
    outcome = _assign(db, ["Network", None])
    assert (outcome.changed, outcome.details["failed"]) == (5, 2)
    waiting = db.execute("SELECT category, count(*) FROM tickets WHERE NOT is_task_allocated"
                         " AND allocation_error IS NULL GROUP BY 1").fetchall()
    assert waiting == [("Hardware", 5)]
    assert [c.query["role_name"] for c in tts.calls] == ["Network"]


def _rounds(db, role):
    return [[u["userID"] for u in users] for (users,) in db.execute(
        "SELECT users FROM tasks WHERE users -> 0 ->> 'role' = %s ORDER BY task_id", (role,))]


def test_two_workers_assigning_different_roles_at_once_keep_each_roles_rotation_exact(db, tts, workflows,
                                                                                        run_concurrently):
    for category in ("Hardware", "Network", "Rooms", "Printers"):  # interleaved, as tickets arrive
        _tickets(db, category, 1)
    for _ in range(3):
        for category in ("Hardware", "Network", "Rooms", "Printers"):
            _tickets(db, category, 150)
    units = plan_units(db, max_units=2, min_tickets=100)
    assert len(units) == 2 and sorted(sum((u["roles"] for u in units), [])) == sorted(ROLES)

    outcomes = run_concurrently([str(unit["part"]) for unit in units], lambda conn, part: _assign(
        conn, units[int(part)]["roles"], part=int(part), parts=2, max_assignments=3))

    assert sum(outcome.changed for outcome in outcomes.values()) == 4 * 451
    assert db.execute("SELECT count(*) FROM tickets WHERE NOT is_task_allocated").fetchone()[0] == 0
    assert db.execute("SELECT count(DISTINCT ticket_id) = count(*) FROM tasks").fetchone()[0]
    for role, users in ROLES.items():
        rounds = _rounds(db, role)
        turns = [user for chosen in rounds for user in chosen]
        per_task = min(3, len(users))
        expected = [users[i % len(users)] for i in range(per_task * len(rounds))]
        assert turns == expected, role  # round after round, exactly the role's order
        assert max(Counter(turns).values()) - min(Counter(turns).values()) <= 1
    # Both units ran inside one run: its audit row was closed by the last to finish.
    status, parts, done, processed = db.execute("SELECT status, parts, parts_done, processed FROM automation_runs"
                                                ).fetchone()
    assert (status, parts, sorted(done), processed) == ("success", 2, [0, 1], 4 * 451)


def _run_row(db):
    return db.execute("SELECT status, parts_done, finished_at IS NOT NULL, error FROM automation_runs").fetchone()


def test_the_run_is_closed_by_its_last_part_whatever_the_order(db):
    with AuditedPart(db, WINDOW, 2, 3):
        pass
    assert _run_row(db) == ("running", [2], False, None)
    with pytest.raises(RuntimeError):
        with AuditedPart(db, WINDOW, 0, 3):
            raise RuntimeError("TTS said no")
    assert _run_row(db) == ("error", [2], True, "RuntimeError: TTS said no")
    with AuditedPart(db, WINDOW, 1, 3):
        pass
    assert _run_row(db) == ("error", [2, 1], True, "RuntimeError: TTS said no")  # a part still failed

    with AuditedPart(db, replace(WINDOW, try_number=2), 0, 3) as retried:  # the failed part's retry
        assert _run_row(db) == ("error", [2, 1], True, "RuntimeError: TTS said no")
        with retried.unit() as outcome:
            outcome.processed = 7
    assert _run_row(db) == ("success", [2, 1, 0], True, None)
    assert db.execute("SELECT try_number, processed FROM automation_runs").fetchone() == (2, 7)

    with AuditedPart(db, WINDOW, 0, 1):  # the whole run cleared: it starts over with its new plan
        assert _run_row(db) == ("running", [], False, None)
    assert _run_row(db) == ("success", [0], True, None)


def test_parts_finishing_at_the_same_moment_both_count(db, run_concurrently):
    def part(conn, name):
        with AuditedPart(conn, WINDOW, int(name), 4) as run, run.unit() as outcome:
            outcome.processed = 1
    for _ in range(5):
        db.execute("TRUNCATE automation_runs")
        run_concurrently(["0", "1", "2", "3"], part)
        status, done, finished, _ = _run_row(db)
        assert (status, sorted(done), finished) == ("success", [0, 1, 2, 3], True)


def test_a_parts_units_reach_the_run_when_the_part_ends_or_is_marked_failed(db):
    from ticketflow.audit import mark_failed

    def totals():
        return (db.execute("SELECT processed, details FROM automation_runs").fetchone(),
                db.execute("SELECT part, processed FROM automation_run_parts ORDER BY part").fetchall())

    ending = AuditedPart(db, WINDOW, 0, 2).__enter__()
    with ending.unit() as outcome:
        outcome.processed, outcome.details = 3, {"created": 3}
    assert totals() == ((0, {}), [(0, 3)])  # committed, on the part's own row while it works
    ending.__exit__(None, None, None)
    assert totals() == ((3, {"created": 3}), [])

    killed = AuditedPart(db, WINDOW, 1, 2).__enter__()
    with killed.unit() as outcome:
        outcome.processed, outcome.details = 2, {"created": 1, "failed": 1}
    mark_failed(db, WINDOW.dag_id, WINDOW.run_id, "task failed: heartbeat timeout")  # no __exit__: SIGKILL
    assert totals() == ((5, {"created": 4, "failed": 1}), [])
    assert _run_row(db)[0] == "error"
