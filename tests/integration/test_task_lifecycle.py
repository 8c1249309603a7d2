"""The task lifecycle library against real PostgreSQL: each action, and every refusal changing nothing."""

from datetime import UTC, datetime

import psycopg
import pytest

from ticketflow import limits, tasks
from ticketflow.tasks import TaskError, TaskNotFound
from ticketflow.tts import TtsError

ROLES = {"Tech": [3, 6, 9], "Lead": [1]}


def users_for_role(role):
    return ROLES.get(role, [])


@pytest.fixture
def setup(db):
    workflow = db.execute("INSERT INTO workflows (name, department, category, is_published, status, end_logic)"
                          " VALUES ('Laptop repair', 'IT', 'HW', true, 'deployed', 'notification') RETURNING id"
                          ).fetchone()[0]
    steps = [db.execute("INSERT INTO steps (workflow_id, name, role_name, step_order) VALUES (%s, %s, %s, %s)"
                        " RETURNING id", (workflow, name, role, order)).fetchone()[0]
             for order, (name, role) in enumerate([("Diagnose", "Tech"), ("Sign-off", "Lead")], start=1)]
    ticket = db.execute("INSERT INTO tickets (subject, department, category, requester_email)"
                        " VALUES ('Laptop dead', 'IT', 'HW', 'ana@example.com') RETURNING id").fetchone()[0]
    task = tasks.create_task_for_ticket(db, ticket, users_for_role, max_assignments=2)
    return {"workflow": workflow, "steps": steps, "ticket": ticket, "task": task}


def _snapshot(db, task_id):
    return db.execute("SELECT users, status, current_step_id FROM tasks WHERE task_id = %s", (task_id,)).fetchone()


def test_a_task_created_by_hand_has_the_serializers_fields(db, setup):
    task = setup["task"]
    assert (task["ticket_subject"], task["workflow_name"], task["current_step_name"], task["current_step_role"],
            task["assigned_users_count"], task["status"]) == ("Laptop dead", "Laptop repair", "Diagnose", "Tech", 2,
                                                              "pending")
    assert [u["userID"] for u in task["users"]] == [3, 6]
    with pytest.raises(TaskError, match="already has a task"):
        tasks.create_task_for_ticket(db, setup["ticket"], users_for_role, 2)
    with pytest.raises(TaskNotFound):
        tasks.create_task_for_ticket(db, 999_999, users_for_role, 2)
    template = db.execute("INSERT INTO tickets (subject, department, category, is_recurring, recurrence_interval,"
                          " next_occurrence) VALUES ('Weekly', 'IT', 'HW', true, 'weekly', now()) RETURNING id"
                          ).fetchone()[0]
    archived = db.execute("INSERT INTO tickets (subject, department, category, archived) VALUES ('Old', 'IT', 'HW',"
                          " true) RETURNING id").fetchone()[0]
    with pytest.raises(TaskError, match="is a recurring template: the tickets it generates get the tasks"):
        tasks.create_task_for_ticket(db, template, users_for_role, 2)
    with pytest.raises(TaskError, match=f"ticket {archived} is archived"):
        tasks.create_task_for_ticket(db, archived, users_for_role, 2)


def _unserved(db, subject, category):
    return db.execute("INSERT INTO tickets (subject, department, category) VALUES (%s, 'IT', %s) RETURNING id",
                      (subject, category)).fetchone()[0]


def _allocation_state(db, ticket_id):
    return db.execute("SELECT is_task_allocated, allocation_error, allocation_attempts, next_allocation_at"
                      " FROM tickets WHERE id = %s", (ticket_id,)).fetchone()


def test_a_task_refused_by_hand_changes_nothing_and_tts_trouble_is_not_a_conflict(db, setup):
    unmatched, served = _unserved(db, "Printer", "Printers"), _unserved(db, "Screen", "HW")
    before = {t: _allocation_state(db, t) for t in (unmatched, served)}

    with pytest.raises(TaskError, match="no published, deployed workflow matches the ticket"):
        tasks.create_task_for_ticket(db, unmatched, users_for_role, 2)

    def tts_down(role):
        raise TtsError("TTS unreachable or failing for role 'Tech': connection refused")
    with pytest.raises(TtsError):
        tasks.create_task_for_ticket(db, served, tts_down, 2)
    with pytest.raises(TaskError, match="no users for role 'Tech'"):
        tasks.create_task_for_ticket(db, served, lambda role: [], 2)

    assert {t: _allocation_state(db, t) for t in (unmatched, served)} == before
    assert db.execute("SELECT count(*) FROM tasks WHERE ticket_id = %s", (served,)).fetchone()[0] == 0
    assert tasks.create_task_for_ticket(db, served, users_for_role, 2)["ticket_id"] == served


def test_list_filters_and_paginates(db, setup):
    printers = db.execute("INSERT INTO workflows (name, department, category, is_published, status)"
                          " VALUES ('Printers', 'IT', 'Printers', true, 'deployed') RETURNING id").fetchone()[0]
    db.execute("INSERT INTO steps (workflow_id, name, role_name, step_order) VALUES (%s, 'Fix', 'Tech', 1)",
               (printers,))
    other = tasks.create_task_for_ticket(db, _unserved(db, "Jam", "Printers"), users_for_role, 1)
    tasks.complete_task(db, other["task_id"])
    first = setup["task"]["task_id"]

    def ids(**filters):
        found, total = tasks.list_tasks(db, **filters)
        return [t["task_id"] for t in found], total

    assert ids() == ([other["task_id"], first], 2)  # newest first
    assert ids(status="pending") == ([first], 1) and ids(status="completed") == ([other["task_id"]], 1)
    assert ids(ticket_id=setup["ticket"]) == ([first], 1)
    assert ids(ticket_id=other["ticket_id"]) == ([other["task_id"]], 1)
    assert ids(workflow_id=printers) == ([other["task_id"]], 1) and ids(workflow_id=setup["workflow"]) == ([first], 1)
    assert ids(limit=1, offset=1) == ([first], 2) and ids(workflow_id=setup["workflow"], offset=1) == ([], 1)
    with pytest.raises(TaskError, match="status must be one of"):
        tasks.list_tasks(db, status="done")


def test_users_are_assigned_and_their_status_moves_the_task(db, setup):
    task_id = setup["task"]["task_id"]
    task = tasks.assign_user(db, task_id, 12, role="Tech", username="jdoe", email="jdoe@example.org")
    assert [u["userID"] for u in task["users"]] == [3, 6, 12] and task["users"][-1]["assigned_on"].endswith("Z")
    assert task["users"][-1] | {"assigned_on": None} == {"userID": 12, "status": "assigned", "assigned_on": None,
                                                         "role": "Tech", "username": "jdoe",
                                                         "email": "jdoe@example.org"}
    task = tasks.update_user_status(db, task_id, 6, "in_progress")
    assert task["status"] == "in_progress"
    assert {u["userID"]: u["status"] for u in task["users"]} == {3: "assigned", 6: "in_progress", 12: "assigned"}


def test_a_user_assigned_with_a_status_keeps_it_and_one_in_progress_starts_the_task(db, setup):
    task_id = setup["task"]["task_id"]
    task = tasks.assign_user(db, task_id, 12, status="on_hold")
    assert (task["users"][-1]["status"], task["status"]) == ("on_hold", "pending")
    task = tasks.assign_user(db, task_id, 13, status="in_progress")
    assert (task["users"][-1]["status"], task["status"]) == ("in_progress", "in_progress")


def test_a_task_takes_at_most_its_limit_of_users(db, setup):
    task_id = setup["task"]["task_id"]
    for user_id in range(100, 100 + limits.TASK_USERS - len(setup["task"]["users"])):
        tasks.assign_user(db, task_id, user_id)
    before = _snapshot(db, task_id)
    assert len(before[0]) == limits.TASK_USERS
    with pytest.raises(TaskError, match=f"already has {limits.TASK_USERS} users"):
        tasks.assign_user(db, task_id, 5000)
    assert _snapshot(db, task_id) == before


@pytest.mark.parametrize("action, message", [
    (lambda db, t: tasks.assign_user(db, t, 3), "already assigned"),
    (lambda db, t: tasks.assign_user(db, t, -4), "positive integer"),
    (lambda db, t: tasks.assign_user(db, t, 12, status="sleeping"), "user status must be one of"),
    (lambda db, t: tasks.update_user_status(db, t, 77, "in_progress"), "not assigned"),
    (lambda db, t: tasks.update_user_status(db, t, 3, "sleeping"), "user status must be one of"),
    (lambda db, t: tasks.complete_task(db, 999_999), "does not exist"),
])
def test_invalid_requests_are_refused_and_change_nothing(db, setup, action, message):
    task_id = setup["task"]["task_id"]
    before = _snapshot(db, task_id)
    with pytest.raises(TaskError, match=message):
        action(db, task_id)
    assert _snapshot(db, task_id) == before


def test_steps_advance_with_the_next_roles_users_and_the_last_step_completes_and_notifies(db, setup):
    task_id = setup["task"]["task_id"]
    task = tasks.move_to_next_step(db, task_id, users_for_role, 2)
    assert (task["current_step_name"], [u["userID"] for u in task["users"]], task["status"]) == (
        "Sign-off", [1], "in_progress")
    task = tasks.move_to_next_step(db, task_id, users_for_role, 2)
    assert task["status"] == "completed" and task["completed_at"] is not None
    mail = db.execute("SELECT template, recipient, context->>'ticket_subject' FROM email_outbox"
                      " WHERE template = 'task_completed'").fetchall()
    assert mail == [("task_completed", "ana@example.com", "Laptop dead")]
    for action in (lambda: tasks.complete_task(db, task_id),
                   lambda: tasks.move_to_next_step(db, task_id, users_for_role, 2),
                   lambda: tasks.assign_user(db, task_id, 50)):
        with pytest.raises(TaskError, match="is completed"):
            action()


def test_completing_a_cancelled_task_is_refused(db, setup):
    task_id = setup["task"]["task_id"]
    db.execute("UPDATE tasks SET status = 'cancelled', status_reason = 'duplicate' WHERE task_id = %s", (task_id,))
    with pytest.raises(TaskError, match="cannot go from cancelled to completed: cancelled is final"):
        tasks.complete_task(db, task_id)
    assert _snapshot(db, task_id)[1] == "cancelled"
    assert db.execute("SELECT count(*) FROM email_outbox WHERE template = 'task_completed'").fetchone()[0] == 0


def test_workflow_statistics_count_by_status_and_time_to_complete(db, setup):
    task_id = setup["task"]["task_id"]
    tasks.complete_task(db, task_id)
    db.execute("UPDATE tasks SET created_at = completed_at - interval '90 minutes' WHERE task_id = %s", (task_id,))
    [stats] = tasks.workflow_statistics(db)
    assert (stats["workflow_name"], stats["total"], stats["by_status"]["completed"], stats["by_status"]["pending"],
            stats["mean_seconds_to_complete"]) == ("Laptop repair", 1, 1, 0, 5400.0)


def test_the_completion_email_renders(db, setup):
    from ticketflow.outbox import render

    tasks.complete_task(db, setup["task"]["task_id"])
    context = db.execute("SELECT context FROM email_outbox WHERE template = 'task_completed'").fetchone()[0]
    subject, text, html = render("task_completed", context, "UTC")
    assert subject == f"Ticket #{setup['ticket']} is done: Laptop dead"
    assert '"Laptop dead", was completed on' in text and "(Laptop repair)" in text and "<em>Laptop dead</em>" in html


def _row(db, task_id):
    return db.execute("SELECT status, status_reason, users, current_step_id, fetched_at, updated_at, completed_at"
                      " FROM tasks WHERE task_id = %s", (task_id,)).fetchone()


def test_a_task_is_held_resumed_and_cancelled_with_its_reasons(db, setup):
    task_id = setup["task"]["task_id"]
    held = tasks.hold_task(db, task_id, "waiting for the replacement screen")
    assert (held["status"], held["status_reason"]) == ("on_hold", "waiting for the replacement screen")
    with pytest.raises(TaskError, match=f"task {task_id} is on_hold already"):
        tasks.hold_task(db, task_id)
    resumed = tasks.update_task(db, task_id, {"status": "in_progress"})
    assert (resumed["status"], resumed["status_reason"]) == ("in_progress", None)  # the hold's reason goes with it
    cancelled = tasks.cancel_task(db, task_id, "duplicate of ticket 12")
    assert (cancelled["status"], cancelled["status_reason"]) == ("cancelled", "duplicate of ticket 12")
    before = _row(db, task_id)
    for action, message in [
        (lambda: tasks.cancel_task(db, task_id, "again"), f"task {task_id} is cancelled already"),
        (lambda: tasks.hold_task(db, task_id), f"task {task_id} cannot go from cancelled to on_hold: cancelled is"),
        (lambda: tasks.update_task(db, task_id, {"status": "pending"}), "cannot go from cancelled to pending"),
        (lambda: tasks.update_task(db, task_id, {"users": []}), "is cancelled: its users and step cannot change"),
        (lambda: tasks.complete_task(db, task_id), "cannot go from cancelled to completed"),
    ]:
        with pytest.raises(TaskError, match=message):
            action()
    assert _row(db, task_id) == before


#: From each status, the statuses a task may go to (the seed's lifecycle; completed and cancelled are final).
MOVES = {"pending": {"in_progress", "on_hold", "completed", "cancelled"},
         "in_progress": {"on_hold", "completed", "cancelled"},
         "on_hold": {"pending", "in_progress", "completed", "cancelled"},
         "completed": set(), "cancelled": set()}


@pytest.mark.parametrize("start", sorted(MOVES))
def test_every_status_goes_only_where_the_lifecycle_allows_and_a_refusal_says_where_it_could(db, setup, start):
    task_id = setup["task"]["task_id"]
    for target in sorted(set(tasks.TASK_STATUSES) - {start}):
        db.execute("ALTER TABLE tasks DISABLE TRIGGER tasks_status_transition")  # put it there, however it got there
        db.execute("UPDATE tasks SET status = %s, status_reason = %s, completed_at = NULL WHERE task_id = %s",
                   (start, "set up" if start in ("on_hold", "cancelled") else None, task_id))
        db.execute("ALTER TABLE tasks ENABLE TRIGGER tasks_status_transition")
        before = _row(db, task_id)
        change = {"status": target, **({"status_reason": "why"} if target == "cancelled" else {})}
        if target in MOVES[start]:
            assert tasks.update_task(db, task_id, change)["status"] == target
        else:
            hint = f"{start} is final" if not MOVES[start] else f"from {start} it can go to "
            with pytest.raises(TaskError, match=f"task {task_id} cannot go from {start} to {target}: {hint}"):
                tasks.update_task(db, task_id, change)
            assert _row(db, task_id) == before
            with pytest.raises(psycopg.errors.CheckViolation):  # the rule is the database's, for every writer
                db.execute("UPDATE tasks SET status = %s WHERE task_id = %s", (target, task_id))


def test_a_task_is_cancelled_only_with_a_reason_and_only_held_or_cancelled_tasks_have_one(db, setup):
    task_id = setup["task"]["task_id"]
    before = _row(db, task_id)
    for reason in ("", " \t\n", None):
        with pytest.raises(TaskError, match="a cancelled task needs a reason"):
            tasks.cancel_task(db, task_id, reason)
    with pytest.raises(TaskError, match="only a task on hold or cancelled has a status_reason"):
        tasks.update_task(db, task_id, {"status_reason": "no reason to have one"})
    with pytest.raises(TaskError, match="a reason is at most 1000 characters"):
        tasks.hold_task(db, task_id, "x" * 1001)
    assert _row(db, task_id) == before
    with pytest.raises(psycopg.errors.CheckViolation):
        db.execute("UPDATE tasks SET status = 'cancelled' WHERE task_id = %s", (task_id,))


def test_an_edit_sets_the_step_users_and_fetched_at_in_one_go(db, setup):
    task_id, (first_step, second_step) = setup["task"]["task_id"], setup["steps"]
    kept = setup["task"]["users"][0]
    fetched = datetime(2026, 3, 4, 9, 30, tzinfo=UTC)
    task = tasks.update_task(db, task_id, {
        "current_step_id": second_step, "fetched_at": fetched,
        "users": [{"userID": kept["userID"], "status": "on_hold"},
                  {"userID": 41, "status": "assigned", "role": "Lead", "username": "ana", "email": "ana@example.org"}]})
    assert (task["current_step_id"], task["current_step_name"], task["fetched_at"], task["status"]) == (
        second_step, "Sign-off", fetched, "pending")
    assert task["users"][0] == {**kept, "status": "on_hold"}  # a kept user keeps role and when they were assigned
    assert task["users"][1]["assigned_on"].endswith("Z") and task["users"][1]["username"] == "ana"
    assert task["assigned_users_count"] == 2 and task["updated_at"] > setup["task"]["updated_at"]
    assert tasks.update_task(db, task_id, {"fetched_at": None})["fetched_at"] is None
    started = tasks.update_task(db, task_id, {"users": [{"userID": 41, "status": "in_progress"}]})
    assert started["status"] == "in_progress"  # as when one user goes in progress
    assert tasks.update_task(db, task_id, {"current_step_id": first_step})["current_step_id"] == first_step


def test_an_edit_refused_changes_nothing(db, setup):
    task_id = setup["task"]["task_id"]
    other = db.execute("INSERT INTO workflows (name, department, category) VALUES ('Other', 'IT', 'X') RETURNING id"
                       ).fetchone()[0]
    foreign_step = db.execute("INSERT INTO steps (workflow_id, name, role_name, step_order) VALUES (%s, 'Elsewhere',"
                              " 'Tech', 1) RETURNING id", (other,)).fetchone()[0]
    before = _row(db, task_id)
    for change, message in [
        ({"current_step_id": foreign_step}, f"current_step_id {foreign_step} is not a step of workflow"
                                            f" {setup['workflow']}, the task's"),
        ({"current_step_id": 999_999}, "current_step_id 999999 is not a step of workflow"),
        ({"users": [{"userID": 3}, {"userID": 3}]}, "user 3 is listed twice"),
        ({"users": [{"userID": 0}]}, "userID must be a positive integer"),
        ({"users": [{"userID": 5, "status": "sleeping"}]}, "user status must be one of"),
        ({"status": "done"}, "status must be one of"),
        ({"ticket_id": 1}, "ticket_id cannot be edited"),
        ({"fetched_at": datetime(2026, 1, 1, tzinfo=UTC), "status": "cancelled"}, "a cancelled task needs a reason"),
    ]:
        with pytest.raises(TaskError, match=message):
            tasks.update_task(db, task_id, change)
        assert _row(db, task_id) == before, change
    assert tasks.update_task(db, task_id, {})["updated_at"] == before[5]  # nothing asked, nothing written


def test_completing_by_an_edit_runs_the_end_logic(db, setup):
    task_id = setup["task"]["task_id"]
    tasks.hold_task(db, task_id, "parts")
    done = tasks.update_task(db, task_id, {"status": "completed"})
    assert (done["status"], done["status_reason"]) == ("completed", None) and done["completed_at"] is not None
    assert db.execute("SELECT recipient FROM email_outbox WHERE template = 'task_completed'").fetchall() == [
        ("ana@example.com",)]
    assert tasks.update_task(db, task_id, {"status": "completed"})["completed_at"] == done["completed_at"]


def test_assigned_users_by_status_and_reads_never_write_fetched_at(db, setup):
    task_id = setup["task"]["task_id"]
    tasks.update_user_status(db, task_id, 6, "in_progress")
    assert [u["userID"] for u in tasks.assigned_users_by_status(db, task_id)] == [3, 6]
    assert [u["userID"] for u in tasks.assigned_users_by_status(db, task_id, "in_progress")] == [6]
    assert tasks.assigned_users_by_status(db, task_id, "completed") == []
    with pytest.raises(TaskError, match="user status must be one of"):
        tasks.assigned_users_by_status(db, task_id, "sleeping")
    with pytest.raises(TaskNotFound):
        tasks.assigned_users_by_status(db, 999_999)
    tasks.get_task(db, task_id)
    tasks.list_tasks(db)
    assert _row(db, task_id)[4] is None
