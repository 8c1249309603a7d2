"""The task lifecycle library against real PostgreSQL: each action, and every refusal changing nothing."""

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
    db.execute("UPDATE tasks SET status = 'cancelled' WHERE task_id = %s", (task_id,))
    with pytest.raises(TaskError, match="is cancelled: it cannot be completed"):
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
