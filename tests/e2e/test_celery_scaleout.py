"""Every published DAG on the CeleryExecutor with a real Redis and two workers, then workers killed mid-task."""

import mailbox
import signal
import time
from collections import Counter
from urllib.parse import quote

import psycopg
import pytest
import requests

from devstack.stack import TDX_BEID, TDX_WEB_SERVICES_KEY
from devstack.standins import deliveries
from tests.support import eventually
from ticketflow.tdx.client import TdxClient, TdxSettings

pytestmark = [pytest.mark.e2e, pytest.mark.celery]
ROLE = "IT Support Technician"  # the stand-in TTS answers [3, 6, 9]
MANUAL_REPORT = 1002  # the TDX stand-in's report that no scheduled run reads
SCHEDULED = ("recurring_tickets", "reservation_lifecycle", "event_lifecycle", "tdx_ticket_queue")
OUTAGE_SECONDS = 45


@pytest.fixture(scope="module")
def world(celery_stack):
    """What each DAG has to do: a due template, a workflow, a reservation and an event past their time."""
    with psycopg.connect(celery_stack.app_db_url, autocommit=True) as conn:
        workflow = conn.execute("INSERT INTO workflows (name, department, category, is_published, status)"
                                " VALUES ('Hardware', 'IT', 'Hardware', true, 'deployed') RETURNING id").fetchone()[0]
        conn.execute("INSERT INTO steps (workflow_id, name, role_name, step_order) VALUES (%s, 'Fix', %s, 1)",
                     (workflow, ROLE))
        template = conn.execute(
            "INSERT INTO tickets (subject, department, category, is_recurring, recurrence_interval,"
            " recurrence_every, next_occurrence) VALUES ('Check the backups', 'IT', 'Hardware', true, 'daily', 1,"
            " now() - interval '1 hour') RETURNING id").fetchone()[0]
        customer = conn.execute("INSERT INTO customers (username, first_name, last_name, email) VALUES"
                                " ('lee', 'Lee', 'Ng', 'lee@example.com') RETURNING id").fetchone()[0]
        reservation = conn.execute("INSERT INTO reservations (customer_id, start_time) VALUES"
                                   " (%s, now() - interval '40 minutes') RETURNING id", (customer,)).fetchone()[0]
        conn.execute("UPDATE reservations SET status = 'confirmed' WHERE id = %s", (reservation,))
        event = conn.execute("INSERT INTO events (title, start_date, end_date) VALUES ('Town hall',"
                             " now() - interval '3 hours', now() - interval '1 hour') RETURNING id").fetchone()[0]
        conn.execute("UPDATE events SET status = 'confirmed' WHERE id = %s", (event,))
    return {"template": template, "reservation": reservation, "event": event}


def _received_by(stack, worker: str) -> int:
    return (stack.logs / f"{worker}.log").read_text(errors="replace").count("] received")


def test_every_contract_dag_runs_to_success_on_two_celery_workers(celery_stack, celery_api, world):
    api, db_url = celery_api, celery_stack.app_db_url
    runs = {dag_id: api.trigger(dag_id, **({"conf": {"report_id": MANUAL_REPORT, "dry_run": False}}
                                           if dag_id == "tdx_ticket_queue" else {}))["dag_run_id"]
            for dag_id in SCHEDULED}
    intake = api.trigger("ticket_intake", conf={"subject": "Laptop will not boot", "department": "IT",
                                                "category": "Hardware", "external_id": "CELERY-1"})["dag_run_id"]
    for dag_id, run_id in [*runs.items(), ("ticket_intake", intake)]:
        assert api.wait_for_run(dag_id, run_id, timeout=240)["state"] == "success", dag_id

    with psycopg.connect(db_url, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM tickets WHERE recurring_parent_id = %s",
                            (world["template"],)).fetchone()[0] == 1
        assert conn.execute("SELECT status FROM reservations WHERE id = %s",
                            (world["reservation"],)).fetchone()[0] == "completed"
        assert conn.execute("SELECT status FROM events WHERE id = %s", (world["event"],)).fetchone()[0] == "completed"
        assert conn.execute("SELECT count(*) FROM meta.daemon_action_log WHERE status = 'completed'").fetchone()[0] > 0
        # The continuous DAGs: every new ticket gets its task, every queued email goes out.
        eventually(lambda: conn.execute("SELECT bool_and(is_task_allocated) AND count(*) = 2 FROM tickets"
                                   " WHERE NOT is_recurring").fetchone()[0], seconds=120,
                   what="tasks for both new tickets")
        eventually(lambda: conn.execute("SELECT count(*) > 0 AND bool_and(status = 'sent') FROM email_outbox"
                                   ).fetchone()[0], seconds=120, what="every email sent")
    for dag_id in ("ticket_task_assignment", "notifications"):
        eventually(lambda dag_id=dag_id: any(r["state"] == "success" for r in api.runs(dag_id)), seconds=120,
                   what=f"a successful {dag_id} run")
    box = mailbox.Maildir(str(celery_stack.mailbox), create=False)
    assert any(box.get_message(key)["To"] == "lee@example.com" for key in box.keys())
    assert all(_received_by(celery_stack, worker) > 0 for worker in celery_stack.worker_names), \
        "both Celery workers should have run tasks"


def _running_task_dags(api) -> set[str]:
    instances = api.get("dags/~/dagRuns/~/taskInstances", state="running", limit=100)["task_instances"]
    return {ti["dag_id"] for ti in instances}


def _blocked_by(conn, pid: int) -> int:
    return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))",
                        (pid,)).fetchone()[0]


def test_workers_killed_mid_task_lose_nothing_and_double_nothing(celery_stack, celery_api, world):
    """Both workers are SIGKILLed while a task of each of four DAGs is inside its transaction.

    The test holds SHARE locks on the tables those tasks write, so each blocks mid-transaction (the
    recurring batch after claiming its templates, the assignment after creating a task, the TDX batch at
    its claim, the sender after SMTP took the message). After the heartbeat timeout the scheduler fails
    the tasks, the retries run on the restarted workers, and every effect exists exactly once.
    """
    api, stack = celery_api, celery_stack
    tdx = TdxClient(TdxSettings(f"http://127.0.0.1:{stack.ports.tdx}/TDWebApi/api", TDX_BEID, TDX_WEB_SERVICES_KEY))
    report_tickets = [row["TicketID"] for row in tdx.report(MANUAL_REPORT)["DataRows"]]
    feeds_before = {ticket: len(tdx.feed(ticket)) for ticket in report_tickets}
    with psycopg.connect(stack.app_db_url, autocommit=True) as conn:
        templates = [row[0] for row in conn.execute(
            "INSERT INTO tickets (subject, department, category, is_recurring, recurrence_interval,"
            " recurrence_every, next_occurrence) SELECT 'Recurring ' || g, 'IT', 'Hardware', true, 'daily', 1,"
            " now() - interval '1 hour' FROM generate_series(1, 200) AS g RETURNING id")]
        new_tickets = [row[0] for row in conn.execute(
            "INSERT INTO tickets (subject, department, category, next_allocation_at) SELECT 'New ' || g, 'IT',"
            " 'Hardware', now() + interval '20 seconds' FROM generate_series(1, 20) AS g RETURNING id")]
        with conn.transaction():
            conn.execute("INSERT INTO reservations (customer_id, start_time, status) SELECT id, now() + interval"
                         " '1 day', 'confirmed' FROM customers, generate_series(1, 5)")
            conn.execute("UPDATE email_outbox SET next_attempt_at = clock_timestamp() + interval '20 seconds'"
                         " WHERE status = 'queued'")
        conn.execute("TRUNCATE meta.daemon_action_log")

        locker = psycopg.connect(stack.app_db_url)
        locker.execute("LOCK TABLE tickets, email_outbox, meta.daemon_action_log IN SHARE MODE")
        runs = {"recurring_tickets": api.trigger("recurring_tickets")["dag_run_id"],
                "tdx_ticket_queue": api.trigger("tdx_ticket_queue", conf={"report_id": MANUAL_REPORT,
                                                                          "dry_run": False})["dag_run_id"]}
        targets = {*runs, "ticket_task_assignment", "notifications"}
        eventually(lambda: targets <= _running_task_dags(api) and _blocked_by(conn, locker.info.backend_pid) >= 4,
              seconds=180, what="a task of each DAG blocked inside its transaction")

        for worker in stack.worker_names:
            stack.kill(worker, signal.SIGKILL)
        for worker in stack.worker_names:
            stack.restart(worker)
        locker.rollback()
        locker.close()

        for dag_id, run_id in runs.items():
            assert api.wait_for_run(dag_id, run_id, timeout=600)["state"] == "success", dag_id
        eventually(lambda: conn.execute("SELECT count(*) FROM tasks WHERE ticket_id = ANY(%s)",
                                   (new_tickets,)).fetchone()[0] == len(new_tickets), seconds=300,
              what="a task for every new ticket")
        eventually(lambda: conn.execute("SELECT bool_and(status = 'sent') FROM email_outbox").fetchone()[0],
              seconds=300, what="every email sent")

        occurrences = dict(conn.execute("SELECT recurring_parent_id, count(*) FROM tickets"
                                        " WHERE recurring_parent_id = ANY(%s) GROUP BY 1", (templates,)).fetchall())
        assert occurrences == {template: 1 for template in templates}
        assert conn.execute("SELECT try_number, status FROM automation_runs WHERE dag_id = 'recurring_tickets'"
                            " AND run_id = %s", (runs["recurring_tickets"],)).fetchone() == (2, "success")
        assert conn.execute("SELECT count(*) FROM tasks WHERE ticket_id = ANY(%s)",
                            (new_tickets,)).fetchone()[0] == len(new_tickets)
        assert conn.execute("SELECT count(*) FROM meta.daemon_action_log WHERE status = 'pending'").fetchone()[0] == 0
        sent_ids = {row[0] for row in conn.execute("SELECT smtp_message_id FROM email_outbox")}
    assert {ticket: len(tdx.feed(ticket)) for ticket in report_tickets} == feeds_before
    box = mailbox.Maildir(str(stack.mailbox), create=False)
    kept = [box.get_message(key)["Message-ID"] for key in box.keys()]
    assert sorted(kept) == sorted(sent_ids)  # every message once
    sent_twice = [message for message, times in Counter(d["message_id"] for d in deliveries(stack.mailbox)).items()
                  if times > 1]
    assert len(sent_twice) <= 1  # at most the one SMTP had taken when its worker was killed


def _due_templates(conn, count: int, label: str) -> list[int]:
    return [row[0] for row in conn.execute(
        "INSERT INTO tickets (subject, department, category, is_recurring, recurrence_interval, recurrence_every,"
        " next_occurrence) SELECT %s || g, 'IT', 'Hardware', true, 'daily', 1, now() - interval '1 hour'"
        " FROM generate_series(1, %s) AS g RETURNING id", (label, count))]


def _occurrences(conn, templates: list[int]) -> dict[int, int]:
    return dict(conn.execute("SELECT recurring_parent_id, count(*) FROM tickets WHERE recurring_parent_id = ANY(%s)"
                             " GROUP BY 1", (templates,)).fetchall())


def _run_state(api, stack, dag_id, run_id) -> str | None:
    stack.revive()  # as compose's `restart: always` would
    try:
        return api.get(f"dags/{dag_id}/dagRuns/{quote(run_id, safe='')}")["state"]
    except requests.RequestException:  # the API server is coming back
        return None


def test_scheduler_redis_and_postgres_restarts_lose_nothing_and_double_nothing(celery_stack, celery_api):
    api, stack = celery_api, celery_stack
    with psycopg.connect(stack.app_db_url, autocommit=True) as conn:
        # The scheduler is down while runs are triggered: they wait, queued, and run once it is back.
        stack.kill("scheduler", signal.SIGTERM)
        templates = _due_templates(conn, 50, "while the scheduler was down ")
        queued = api.trigger("recurring_tickets")["dag_run_id"]
        time.sleep(5)
        assert api.get(f"dags/recurring_tickets/dagRuns/{quote(queued, safe='')}")["state"] == "queued"
        stack.restart("scheduler")
        assert api.wait_for_run("recurring_tickets", queued, timeout=240)["state"] == "success"
        assert _occurrences(conn, templates) == {template: 1 for template in templates}

        # Redis restarts while a task waits in its queue (no worker is up to take it); only a Redis of our own.
        if stack.own_redis:
            api.wait_for_quiet_window("recurring_tickets", 300)
            for worker in stack.worker_names:
                stack.kill(worker, signal.SIGTERM)
            try:
                templates = _due_templates(conn, 50, "while Redis restarted ")
                waiting = api.trigger("recurring_tickets")["dag_run_id"]
                waiting_path = f"dags/recurring_tickets/dagRuns/{quote(waiting, safe='')}/taskInstances"
                eventually(lambda: {ti["state"] for ti in api.get(waiting_path)["task_instances"]} == {"queued"},
                           seconds=120, what="the task queued in Redis")
                stack.kill("redis", signal.SIGTERM)
                stack.restart("redis")
            finally:  # the module's later tests need the workers, whatever happened here
                for worker in stack.worker_names:
                    stack.restart(worker)
            assert api.wait_for_run("recurring_tickets", waiting, timeout=300)["state"] == "success"
            assert _occurrences(conn, templates) == {template: 1 for template in templates}

        # PostgreSQL restarts while a batch is inside its transaction.
        templates = _due_templates(conn, 50, "while PostgreSQL restarted ")
        locker = psycopg.connect(stack.app_db_url)
        locker.execute("LOCK TABLE tickets IN SHARE MODE")
        during = api.trigger("recurring_tickets")["dag_run_id"]
        eventually(lambda: _blocked_by(conn, locker.info.backend_pid) >= 1, seconds=120, what="the batch blocked")
    stack.postgres.stop()
    stack.postgres.start()
    locker.close()  # its server is gone: the batch's transaction with it
    state = eventually(lambda: (s := _run_state(api, stack, "recurring_tickets", during)) in ("success", "failed")
                       and s,
                  seconds=600, what="the run to end, one way or the other")
    if state == "failed":  # visibly: rerun it
        api.clear("recurring_tickets", during)
        assert api.wait_for_run("recurring_tickets", during, timeout=300)["state"] == "success"
    with psycopg.connect(stack.app_db_url, autocommit=True) as conn:
        assert _occurrences(conn, templates) == {template: 1 for template in templates}
        assert conn.execute("SELECT status FROM automation_runs WHERE run_id = %s", (during,)).fetchone() == (
            "success",)


def test_tts_tdx_and_smtp_down_for_a_while_then_the_backlog_drains_on_its_own(celery_stack, celery_api, world):
    """The stand-ins process (TTS, TDX and SMTP) is killed; work arrives; OUTAGE_SECONDS later it is back.

    Long enough for every kind of work to fail at least once (each ticket's first assignment attempt and
    its retry, the sender's session, the TDX batch and its retry); the drain then depends on the backoffs only.
    """
    api, stack = celery_api, celery_stack
    with psycopg.connect(stack.app_db_url, autocommit=True) as conn:
        conn.execute("TRUNCATE meta.daemon_action_log")
        stack.kill("standins", signal.SIGKILL)
        down_at = time.monotonic()
        tickets = [row[0] for row in conn.execute(
            "INSERT INTO tickets (subject, department, category) SELECT 'during the outage ' || g, 'IT', 'Hardware'"
            " FROM generate_series(1, 10) AS g RETURNING id")]
        conn.execute("INSERT INTO reservations (customer_id, start_time, status) SELECT id, now() + interval '2 days',"
                     " 'confirmed' FROM customers, generate_series(1, 3)")
        time.sleep(OUTAGE_SECONDS / 3)
        tdx_run = api.trigger("tdx_ticket_queue", conf={"report_id": MANUAL_REPORT, "dry_run": False})["dag_run_id"]
        time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - down_at)))

        # Down: nothing went out, nothing was lost, and each failure says why.
        waiting = conn.execute("SELECT count(*), count(*) FILTER (WHERE allocation_error LIKE 'TTS unreachable%%')"
                               " FROM tickets WHERE id = ANY(%s) AND NOT is_task_allocated", (tickets,)).fetchone()
        assert waiting == (10, 10)
        assert conn.execute("SELECT count(*) FROM email_outbox WHERE status = 'queued'").fetchone()[0] > 0
        assert conn.execute("SELECT count(*) FROM email_outbox WHERE status = 'dead'").fetchone()[0] == 0

        stack.restart("standins")
        eventually(lambda: conn.execute("SELECT bool_and(is_task_allocated) FROM tickets WHERE id = ANY(%s)",
                                   (tickets,)).fetchone()[0], seconds=420, what="every ticket assigned")
        eventually(lambda: conn.execute("SELECT bool_and(status = 'sent') FROM email_outbox").fetchone()[0],
              seconds=420, what="every email sent")
        assert api.wait_for_run("tdx_ticket_queue", tdx_run, timeout=420)["state"] == "success"
        assert conn.execute("SELECT count(*) FROM meta.daemon_action_log WHERE status IN ('pending', 'failed')"
                            ).fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM tasks WHERE ticket_id = ANY(%s)", (tickets,)).fetchone()[0] == 10


def test_a_backlog_is_assigned_by_task_instances_on_both_workers(celery_stack, celery_api):
    """3,000 tickets over the stand-in's three roles: three `assign_tasks` instances, spread over the workers,
    and each role's rotation exact."""
    from devstack.standins import DEMO_ROLES
    from devstack.workers import workers_by_task_instance

    api, stack = celery_api, celery_stack
    with psycopg.connect(stack.app_db_url, autocommit=True) as conn:
        for role in DEMO_ROLES:
            workflow = conn.execute("INSERT INTO workflows (name, department, category, is_published, status)"
                                    " VALUES (%s, 'Spread', %s, true, 'deployed') RETURNING id", (role, role)
                                    ).fetchone()[0]
            conn.execute("INSERT INTO steps (workflow_id, name, role_name, step_order) VALUES (%s, 'Do', %s, 1)",
                         (workflow, role))
        since = conn.execute("SELECT now()").fetchone()[0]
        tickets = [row[0] for row in conn.execute(
            "INSERT INTO tickets (subject, department, category) SELECT 'spread ' || g, 'Spread',"
            " (%s::text[])[1 + g %% 3] FROM generate_series(1, 3000) AS g RETURNING id", (list(DEMO_ROLES),))]
        eventually(lambda: conn.execute("SELECT count(*) FROM tasks WHERE ticket_id = ANY(%s)",
                                        (tickets,)).fetchone()[0] == len(tickets), seconds=240,
                   what="a task for each of the 3,000 tickets")
        for role, users in DEMO_ROLES.items():
            turns = [user["userID"] for (assigned,) in conn.execute(
                "SELECT k.users FROM tasks k JOIN tickets t ON t.id = k.ticket_id WHERE t.category = %s"
                " ORDER BY k.task_id", (role,)) for user in assigned]
            assert turns == [users[i % len(users)] for i in range(len(turns))], role  # round after round

    def units():
        found = api.get("dags/ticket_task_assignment/dagRuns/~/taskInstances", task_id="assign_tasks",
                        start_date_gte=since.isoformat(), limit=100)["task_instances"]
        return all(ti["state"] in ("success", "failed", "skipped") for ti in found) and found
    instances = eventually(units, seconds=60, what="the assign_tasks instances to finish")
    assert {ti["state"] for ti in instances} == {"success"}
    assert len(instances) >= 3, [ti["rendered_map_index"] for ti in instances]
    ran_by = eventually(lambda: (found := workers_by_task_instance(stack)).keys() >= {ti["id"] for ti in instances}
                        and found, seconds=30, what="each instance in a worker's log")
    assert {ran_by[ti["id"]] for ti in instances} == set(stack.worker_names), \
        [(ti["rendered_map_index"], ran_by[ti["id"]]) for ti in instances]
