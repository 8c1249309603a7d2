"""What the plugin reads: the health report from the audit tables, and the seed's event listings."""

from datetime import UTC, datetime, timedelta

import pytest
from psycopg.rows import dict_row

from ticketflow import clock, events
from ticketflow.web import dashboard
from ticketflow.web.health import AUTOMATIONS, ParkedTemplates, health_report, parked_templates

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def _audit_run(db, dag_id, run_id, started_ago, status="success", processed=1, changed=1, seconds=2.0,
               error=None):
    started = NOW - started_ago
    db.execute("INSERT INTO automation_runs (dag_id, run_id, due_at, started_at, finished_at, processed, changed,"
               " status, error) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
               (dag_id, run_id, started, started, None if status == "running" else started + timedelta(seconds=seconds),
                processed, changed, status, error))


def test_each_automation_shows_its_last_run_and_its_runs_and_failures_over_24_hours_and_7_days(db):
    _audit_run(db, "event_lifecycle", "old", timedelta(days=8))
    _audit_run(db, "event_lifecycle", "three_days", timedelta(days=3), status="error", error="boom")
    _audit_run(db, "event_lifecycle", "yesterday", timedelta(hours=23), status="error", error="disk full")
    _audit_run(db, "event_lifecycle", "an_hour_ago", timedelta(hours=1), processed=7, changed=3, seconds=4.5)
    _audit_run(db, "event_lifecycle", "future", timedelta(hours=-1))  # after `now`: not seen yet
    _audit_run(db, "recurring_tickets", "running", timedelta(minutes=1), status="running")
    _audit_run(db, "someone_elses_dag", "x", timedelta(hours=2))

    report = health_report(db, now=NOW)

    by_dag = {a.dag_id: a for a in report.automations}
    assert list(by_dag) == [*AUTOMATIONS, "someone_elses_dag"]
    events_health = by_dag["event_lifecycle"]
    assert (events_health.last_run_id, events_health.last_status, events_health.label) == (
        "an_hour_ago", "success", "Event lifecycle")
    assert (events_health.runs_24h, events_health.failures_24h, events_health.runs_7d,
            events_health.failures_7d) == (2, 1, 3, 2)
    assert [(p.run_id, p.status, p.processed, p.changed, p.duration_seconds) for p in events_health.runs] == [
        ("three_days", "error", 1, 1, 2.0), ("yesterday", "error", 1, 1, 2.0), ("an_hour_ago", "success", 7, 3, 4.5)]
    running = by_dag["recurring_tickets"]
    assert running.last_status == "running" and running.runs[0].duration_seconds is None
    quiet = by_dag["tdx_ticket_queue"]
    assert (quiet.last_status, quiet.runs_7d, quiet.runs) == (None, 0, [])


def test_charts_keep_only_the_latest_runs(db):
    db.execute("INSERT INTO automation_runs (dag_id, run_id, due_at, started_at, finished_at, status)"
               " SELECT 'notifications', 'run' || g, %(now)s, %(now)s - g * interval '1 minute',"
               " %(now)s - g * interval '1 minute' + interval '1 second', 'success'"
               " FROM generate_series(1, 300) AS g", {"now": NOW})
    report = health_report(db, now=NOW, runs_per_chart=50)
    notifications = next(a for a in report.automations if a.dag_id == "notifications")
    assert notifications.runs_24h == 300 and len(notifications.runs) == 50
    assert notifications.runs[0].run_id == "run50" and notifications.runs[-1].run_id == "run1"


def test_the_backlog_shows_the_oldest_waiting_ticket_unsent_email_and_failed_tdx_actions(db):
    empty = health_report(db, now=NOW).backlog
    assert (empty["unallocated_tickets"], empty["oldest_ticket_id"], empty["emails_queued"], empty["emails_dead"],
            empty["tdx_failed_actions"]) == (0, None, 0, 0, 0)

    db.execute("INSERT INTO tickets (subject, department, category, created_at, is_task_allocated) VALUES"
               " ('served', 'IT', 'Hardware', %(now)s - interval '9 days', true),"
               " ('recent', 'IT', 'Hardware', %(now)s - interval '5 minutes', false),"
               " ('waiting longest', 'IT', 'Hardware', %(now)s - interval '2 hours', false)", {"now": NOW})
    db.execute("UPDATE tickets SET allocation_error = 'no users for role' WHERE subject = 'waiting longest'")
    db.execute("INSERT INTO email_outbox (dedup_key, template, recipient, context, status, last_error) VALUES"
               " ('a', 'event_reminder', 'a@x', '{}', 'queued', NULL), ('b', 'event_reminder', 'b@x', '{}', 'queued',"
               " NULL), ('c', 'event_reminder', 'c@x', '{}', 'dead', 'mailbox full')")
    db.execute("INSERT INTO meta.daemon_action_log (ticket_id, action_type, action_id, action_hash, status,"
               " error_message, executed_at) VALUES"
               " (1, 'comment', 'comment:a:v1', 'a', 'failed', 'older', %(now)s - interval '1 hour'),"
               " (1, 'assignment', 'assignment:b:v1', 'b', 'failed', 'TDX said 403', %(now)s),"
               " (2, 'comment', 'comment:a:v1', 'a', 'failed', 'x', %(now)s - interval '2 hours'),"
               " (3, 'comment', 'comment:a:v1', 'a', 'completed', NULL, %(now)s)", {"now": NOW})

    backlog = health_report(db, now=NOW).backlog
    assert backlog["unallocated_tickets"] == 2 and backlog["oldest_ticket_subject"] == "waiting longest"
    assert backlog["oldest_ticket_wait_seconds"] == pytest.approx(7200)
    assert backlog["oldest_ticket_error"] == "no users for role"
    assert (backlog["emails_queued"], backlog["emails_dead"]) == (2, 1)
    assert (backlog["tdx_failed_actions"], backlog["tdx_failed_tickets"], backlog["tdx_last_error"]) == (
        3, 2, "TDX said 403")


@pytest.fixture
def event_world(db):
    ids = {}
    for status in ("draft", "confirmed", "ongoing", "completed", "cancelled", "archived"):
        ids[status] = db.execute("INSERT INTO events (title, start_date, end_date, status) VALUES"
                                 " (%s, %s, %s, 'draft') RETURNING id",
                                 (f"{status} event", NOW, NOW + timedelta(hours=2))).fetchone()[0]
    for status, path in {"confirmed": ["confirmed"], "ongoing": ["confirmed", "ongoing"],
                         "completed": ["confirmed", "ongoing", "completed"], "cancelled": ["cancelled"],
                         "archived": ["confirmed", "ongoing", "completed", "archived"]}.items():
        for step in path:
            db.execute("UPDATE events SET status = %s WHERE id = %s", (step, ids[status]))
    ids["customer"] = db.execute("INSERT INTO customers (username, email) VALUES ('ana', 'ana@example.org')"
                                 " RETURNING id").fetchone()[0]
    for status in ("confirmed", "completed", "archived", "cancelled"):
        db.execute("INSERT INTO event_attendees (event_id, customer_id) VALUES (%s, %s)",
                   (ids[status], ids["customer"]))
    return ids


def test_the_listing_leaves_out_completed_cancelled_and_archived_events_and_pages(db, event_world):
    db.execute("UPDATE events SET start_date = start_date - interval '1 hour' WHERE id = %s", (event_world["ongoing"],))
    rows, total = events.discoverable_events(db, limit=50, offset=0)
    assert total == 3 and [r["status"] for r in rows] == ["ongoing", "draft", "confirmed"]  # soonest first, then id
    page, total = events.discoverable_events(db, limit=2, offset=2)
    assert total == 3 and len(page) == 1


def test_any_event_can_be_retrieved_by_id_and_an_unknown_one_is_not_found(db, event_world):
    assert events.get_event(db, event_world["completed"])["status"] == "completed"
    with pytest.raises(events.EventNotFound, match="event 999999 does not exist"):
        events.get_event(db, 999_999)


def test_my_events_include_completed_ones_unless_asked_not_to(db, event_world):
    mine = events.attendee_events(db, event_world["customer"])
    assert {e["status"] for e in mine} == {"confirmed", "completed", "archived", "cancelled"}
    current = events.attendee_events(db, event_world["customer"], include_completed=False)
    assert {e["status"] for e in current} == {"confirmed", "cancelled"}
    with pytest.raises(events.EventNotFound, match="customer 424242 does not exist"):
        events.attendee_events(db, 424_242)


def test_the_dashboard_shows_a_user_only_the_automations_and_tiles_of_dags_they_may_read(db):
    _audit_run(db, "event_lifecycle", "seen", timedelta(hours=1))
    _audit_run(db, "recurring_tickets", "hidden", timedelta(hours=1))
    page = dashboard.render(db, {"event_lifecycle", "notifications"}, NOW)
    assert 'data-dag-id="event_lifecycle"' in page and 'data-run-id="seen"' in page
    assert 'data-dag-id="recurring_tickets"' not in page and "hidden" not in page
    assert 'data-tile="emails"' in page
    assert 'data-tile="unallocated"' not in page and 'data-tile="tdx-failed"' not in page


HOSTILE = "<script>alert(1)</script><img src=x onerror=alert(2)>"


def test_text_from_tickets_tdx_and_the_audit_is_escaped_on_the_dashboard(db):
    """Every place the page shows stored text: the waiting ticket's subject and allocation error, the latest TDX
    error, an automation's last error and its run id (in a link and a tooltip)."""
    db.execute("INSERT INTO tickets (subject, department, category, allocation_error, created_at)"
               " VALUES (%s, %s, 'HW', %s, %s)",
               (f"subject {HOSTILE}", f"department {HOSTILE}", f"allocation {HOSTILE}", NOW - timedelta(hours=1)))
    db.execute("INSERT INTO meta.daemon_action_log (ticket_id, action_type, action_id, action_hash, status,"
               " error_message, executed_at) VALUES (9, 'comment', 'c:1', 'h', 'failed', %s, %s)",
               (f"tdx {HOSTILE}", NOW - timedelta(minutes=5)))
    _audit_run(db, "event_lifecycle", 'run "><svg onload=alert(3)>', timedelta(minutes=3), status="error",
               error=f"audit {HOSTILE}")
    _template(db, "parked", f"parked {HOSTILE}", timedelta(hours=1), NOW)
    page = dashboard.render(db, set(AUTOMATIONS), NOW)
    for shown in ("subject", "allocation", "tdx", "audit", "parked"):
        assert f"{shown} &lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;" in page, shown
    assert "<script" not in page and "<img" not in page and "<svg onload" not in page
    assert "/runs/run%20%22%3E%3Csvg%20onload%3Dalert%283%29%3E" in page  # the run's link, URL-encoded
    assert 'title="run &#34;&gt;&lt;svg onload=alert(3)&gt;"' in page


def _template(db, subject, reason, parked_ago, now, is_recurring=True, archived=False, paused=False):
    return db.execute("INSERT INTO tickets (subject, department, category, is_recurring, recurrence_interval,"
                      " next_occurrence, recurrence_error, updated_at, archived, paused_at)"
                      " VALUES (%s, 'IT', 'Backups', %s, 'daily', %s, %s, %s, %s, %s) RETURNING id",
                      (subject, is_recurring, now + timedelta(days=1), reason, now - parked_ago, archived,
                       now if paused else None)).fetchone()[0]


def test_the_dashboard_counts_parked_templates_by_reason_and_points_to_where_they_are_fixed(db):
    """A parked template makes no ticket until someone edits its schedule, so the tile says how many there are,
    why, which ones and since when; archived, paused and healthy templates and plain tickets are not counted."""
    now = clock.utc_now()
    fortnightly = "RRULE: unknown frequency FORTNIGHTLY"
    by_rrule = [_template(db, f"rrule {hours}", fortnightly, timedelta(hours=hours), now) for hours in (1, 3, 2)]
    by_zone = _template(db, "zone", "unknown time zone Mars/Olympus_Mons", timedelta(days=2), now)
    _template(db, "archived", fortnightly, timedelta(days=9), now, archived=True)
    _template(db, "healthy", None, timedelta(days=9), now)
    _template(db, "not a template", fortnightly, timedelta(days=9), now, is_recurring=False)
    _template(db, "paused while parked", fortnightly, timedelta(days=9), now, paused=True)  # paused, not parked

    parked = health_report(db, now).parked
    assert parked.total == 4 and parked.other_reasons == 0
    assert [(r.reason, r.templates, r.template_ids) for r in parked.reasons] == [
        (fortnightly, 3, [by_rrule[1], by_rrule[2], by_rrule[0]]),  # most templates first, longest parked first
        ("unknown time zone Mars/Olympus_Mons", 1, [by_zone])]
    assert parked.reasons[0].waiting_seconds == pytest.approx(3 * 3600, abs=1)
    assert parked.reasons[1].waiting_seconds == pytest.approx(2 * 86400, abs=1)

    with db.cursor(row_factory=dict_row) as cur:
        first = parked_templates(cur, now, reasons=1, ids_per_reason=2)
    assert (first.total, first.other_reasons, first.reasons[0].template_ids) == (4, 1, [by_rrule[1], by_rrule[2]])

    page = dashboard.render(db, {"recurring_tickets"}, now)
    tile = page[page.index('data-tile="parked-templates"'):]
    tile = tile[:tile.index("</section>")]
    assert '<div class="tile alert" data-tile="parked-templates">' in page
    assert '<div class="figure" data-count="parked">4</div>' in tile
    assert f'data-parked-reason="{fortnightly}"><span data-count="templates">3</span>' in tile
    assert f"(#{by_rrule[1]}, #{by_rrule[2]}, #{by_rrule[0]}; oldest 3 h 0 min)" in tile
    assert 'href="recurring-tickets?state=parked"' in tile
    assert 'data-tile="parked-templates"' not in dashboard.render(db, {"event_lifecycle"}, now)


def test_with_no_parked_template_the_tile_says_so_calmly(db):
    now = clock.utc_now()
    _template(db, "healthy", None, timedelta(days=1), now)
    assert health_report(db, now).parked == ParkedTemplates(0, [], 0)
    page = dashboard.render(db, {"recurring_tickets"}, now)
    assert '<div class="tile" data-tile="parked-templates">' in page
    assert '<div class="figure" data-count="parked">0</div>' in page and "every live template is scheduled" in page
