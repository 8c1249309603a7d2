"""The TDX queue against real PostgreSQL and the TDX stand-in over real HTTP: every action, exactly once."""

import logging
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from devstack.standins import RateLimit, TdxData, TdxStandIn
from ticketflow.settings import PROJECT_ROOT
from ticketflow.tdx.client import TdxClient, TdxError, TdxSettings
from ticketflow.tdx.config import ConfigError, parse_config
from ticketflow.tdx.log import action_stats, clear_failed_actions, recent_activity, ticket_actions
from ticketflow.tdx.queue import outstanding, process_tickets, report_rows
from ticketflow.tdx.tokens import DatabaseTokenStore

BEID, KEY = "test-beid", "test-web-services-key-0123456789"
FEED = "POST 46/tickets/{id}/feed"


def ticket(ticket_id, title="Printer jams", description="", requestor=None, status=1):
    return {"ID": ticket_id, "Title": title, "Description": description, "RequestorUid": requestor,
            "StatusID": status, "StatusName": "New", "ResponsibleUid": None, "ResponsibleGroupID": None}


def asset(asset_id, name, serial, owner=None, status=1):
    return {"ID": asset_id, "Name": name, "SerialNumber": serial, "StatusID": status, "FormID": 2448,
            "OwningCustomerID": owner}


def world(*tickets, assets=(), feeds=None, report_columns=("Title", "StatusName")):
    return TdxData(
        reports={1: [{"TicketID": t["ID"], **{c: t.get(c) for c in report_columns}} for t in tickets]},
        tickets={t["ID"]: t for t in tickets}, assets={a["ID"]: a for a in assets}, feeds=dict(feeds or {}))


@pytest.fixture
def tdx():
    """Starts a TDX stand-in over the given data; stopped after the test."""
    started = []

    def start(data, rate_limit=None, **options):
        stand_in = TdxStandIn(BEID, KEY, data, rate_limit=rate_limit or RateLimit(10_000, 60), **options).start()
        started.append(stand_in)
        return stand_in

    yield start
    for stand_in in started:
        stand_in.stop()


def client_for(stand_in, **options):
    return TdxClient(TdxSettings(stand_in.api_url, BEID, KEY),
                     **{"backoff_seconds": 0.05, "reset_margin": 0.2, **options})


def config(*actions, **extra):
    return parse_config({"actions": list(actions), **extra})


def run_queue(conn, stand_in, queue_config, run_id="run-1", dry_run=False, client=None):
    """One queue run as the DAG does it: report, outstanding tickets, then every one of them."""
    client = client or client_for(stand_in)
    rows = report_rows(client.report(1), queue_config.condition_columns)
    todo = outstanding(conn, rows, queue_config)
    return process_tickets(conn, client, queue_config, {t: rows.get(t) for t in todo}, run_id, dry_run)


def log_rows(conn):
    return conn.execute("SELECT ticket_id, action_type, status, error_message FROM meta.daemon_action_log"
                        " ORDER BY ticket_id, executed_at, action_id").fetchall()


def bodies(stand_in, ticket_id):
    return [entry["Body"] for entry in stand_in.data.feeds.get(ticket_id, [])]


COMMENT = {"type": "comment", "comment_text": "We are on it.\nThanks & regards", "is_private": True}


def test_comment_is_posted_once_with_a_hidden_marker_and_not_again(db, tdx):
    stand_in = tdx(world(ticket(1), ticket(2)))
    queue = config(COMMENT)
    [first, second] = run_queue(db, stand_in, queue)
    assert first.count("completed") == second.count("completed") == 1
    [body] = bodies(stand_in, 1)
    action_id = queue.actions[0].action_id
    assert body == f"We are on it.<br>Thanks &amp; regards<!-- ticketflow-action:{action_id} -->"
    [entry] = stand_in.data.feeds[1]
    assert entry["IsPrivate"] and entry["IsRichHtml"]
    assert run_queue(db, stand_in, queue, "run-2") == []
    assert len(bodies(stand_in, 1)) == len(bodies(stand_in, 2)) == 1
    assert [r[2] for r in log_rows(db)] == ["completed", "completed"]


def test_status_change_and_assignment_act_once_and_skip_tickets_already_there(db, tdx):
    stand_in = tdx(world(ticket(1), ticket(2, status=5)))
    stand_in.data.tickets[1]["ResponsibleGroupID"] = 77
    queue = config({"type": "status_change", "new_status_id": 5, "status_name": "In Progress"},
                   {"type": "assignment", "responsible_group_id": 77, "label": "Desktop Support"},
                   {"type": "summary_comment"})
    run_queue(db, stand_in, queue)
    assert stand_in.data.tickets[1]["StatusID"] == stand_in.data.tickets[2]["StatusID"] == 5
    assert stand_in.data.tickets[2]["ResponsibleGroupID"] == 77
    assert [(r[0], r[1], r[2]) for r in log_rows(db)] == [
        (1, "status_change", "completed"), (1, "assignment", "skipped"), (1, "summary_comment", "completed"),
        (2, "status_change", "skipped"), (2, "assignment", "completed"), (2, "summary_comment", "completed")]
    assert "1. Changed status to In Progress<!--" in bodies(stand_in, 1)[-1]
    assert "1. Assigned to Desktop Support<!--" in bodies(stand_in, 2)[-1]
    assert len(stand_in.calls_to("PATCH 46/tickets/{id}")) == 1
    assert run_queue(db, stand_in, queue, "run-2") == []


def test_add_asset_three_phases(db, tdx):
    stand_in = tdx(world(
        ticket(1, "Laptop IC-EHLB760-F16 will not boot", "Also L-C02XJ0AXJGH5 and LSAF-D30H6J3"),
        ticket(2, "Monitor flickers", requestor="u-2"),
        ticket(3, "Printer jams", requestor="u-3"),
        ticket(4, "Mailbox full", requestor="u-4"),
        ticket(5, "Fix ZZ-NOTREAL99 please", requestor="u-3"),
        assets=[asset(11, "IC-EHLB760-F16", "5CG1"), asset(12, "L-C02XJ0AXJGH5", "C02XJ0AXJGH5"),
                asset(13, "LSAF-D30H6J3", "D30H6J3", status=9),  # retired: not active
                asset(21, "psyc-amiemgT01", "R8YWA0LX6ZE", owner="u-2"),
                asset(31, "CHEM-SMALD1X", "SER1", owner="u-3"),
                asset(41, "A-ONE11111", "S41", owner="u-4"), asset(42, "A-TWO22222", "S42", owner="u-4")],
        feeds={2: [{"ID": 1, "Body": "<p>It is the one with S/N <b>R8YWA0LX6ZE</b></p>"}]}))
    queue = config({"type": "add_asset"}, {"type": "summary_comment"})
    run_queue(db, stand_in, queue)
    assert stand_in.data.ticket_assets == {1: [11, 12], 2: [21], 3: [31]}
    summary = {t: bodies(stand_in, t)[-1].split("<!--")[0] for t in (1, 2, 3)}
    assert summary[1] == ("\N{ROBOT FACE} Automated Actions Summary<br><br>1. Added 2 assets: IC-EHLB760-F16, "
                          "L-C02XJ0AXJGH5. Reason: Computer name found in ticket title; "
                          "Computer name found in ticket description")
    assert summary[2].endswith("Added 1 asset: psyc-amiemgT01. Reason: Serial number found in ticket conversation")
    assert summary[3].endswith("Added 1 asset: CHEM-SMALD1X. Reason: Requestor's only asset")
    log = {r[0]: r for r in log_rows(db) if r[1] == "add_asset"}
    assert log[4][2] == log[5][2] == "skipped"  # two assets owned; an identifier that matched nothing
    assert 4 not in stand_in.data.feeds and 5 not in stand_in.data.feeds  # nothing to summarize


def test_add_asset_respects_its_limits(db, tdx):
    stand_in = tdx(world(
        ticket(1, "Move IC-AAAA111-F1, IC-BBBB222-F2 and IC-CCCC333-F3"),
        ticket(2, "Printer jams", requestor="u-2"),
        assets=[asset(1, "IC-AAAA111-F1", "S1"), asset(2, "IC-BBBB222-F2", "S2"), asset(3, "IC-CCCC333-F3", "S3"),
                asset(4, "LSA-OWNED99", "S4", owner="u-2"), asset(5, "LSA-OTHER88", "S5")]))
    stand_in.data.ticket_assets[2] = [5]
    run_queue(db, stand_in, config({"type": "add_asset", "max_assets_to_add": 2}))
    assert stand_in.data.ticket_assets[1] == [1, 2]
    assert stand_in.data.ticket_assets[2] == [5]  # skip_if_requestor_asset_exists
    assert ticket_actions(db, 2)[0]["metadata"]["description"] == \
        "no identifiers found; the ticket already has assets"


def test_changed_content_or_version_runs_again_and_the_summary_reports_only_the_new(db, tdx):
    stand_in = tdx(world(ticket(1)))
    run_queue(db, stand_in, config({"type": "comment", "comment_text": "Hello"}))
    run_queue(db, stand_in, config({"type": "comment", "comment_text": "Hello"}), "run-2")
    assert len(bodies(stand_in, 1)) == 1
    run_queue(db, stand_in, config({"type": "comment", "comment_text": "Hello World"}), "run-3")
    run_queue(db, stand_in, config({"type": "comment", "comment_text": "Hello World", "version": "v2"}), "run-4")
    assert [b.split("<!--")[0] for b in bodies(stand_in, 1)] == ["Hello", "Hello World", "Hello World"]

    status = {"type": "status_change", "new_status_id": 2, "status_name": "Open"}
    run_queue(db, stand_in, config(status, {"type": "summary_comment"}), "run-5")
    run_queue(db, stand_in, config(status, {**status, "new_status_id": 3, "status_name": "Waiting"},
                                   {"type": "summary_comment"}), "run-6")
    summaries = [b for b in bodies(stand_in, 1) if "Automated Actions Summary" in b]
    assert [s.split("<br><br>")[1].split("<!--")[0] for s in summaries] == [
        "1. Changed status to Open", "1. Changed status to Waiting"]


def test_conditions_select_tickets_from_the_report_row_and_reach_them_later(db, tdx):
    stand_in = tdx(world(ticket(1), ticket(2)))
    stand_in.data.reports[1][1]["StatusName"] = "Closed"
    queue = config({**COMMENT, "when": {"StatusName": ["New", "Open"]}})
    run_queue(db, stand_in, queue)
    assert 1 in stand_in.data.feeds and 2 not in stand_in.data.feeds
    assert [r[0] for r in log_rows(db)] == [1]
    db.execute("UPDATE meta.daemon_action_log SET status = 'pending'")  # as if killed before settling
    stand_in.data.reports[1][0]["StatusName"] = "Closed"  # no longer matching: still finished, not redone
    del stand_in.data.reports[1][0]  # and gone from the report altogether
    run_queue(db, stand_in, queue, "after-crash")
    assert [r[2] for r in log_rows(db)] == ["completed"] and len(bodies(stand_in, 1)) == 1
    stand_in.data.reports[1].insert(0, {"TicketID": 1, "StatusName": "Closed"})
    stand_in.data.reports[1][1]["StatusName"] = "Open"
    run_queue(db, stand_in, queue, "run-2")
    assert len(bodies(stand_in, 1)) == len(bodies(stand_in, 2)) == 1
    with pytest.raises(ConfigError, match="report 1 has no column PriorityName"):
        run_queue(db, stand_in, config({**COMMENT, "when": {"PriorityName": "High"}}))


def test_a_ticket_that_left_the_report_gets_its_pending_action_finished_and_nothing_new(db, tdx):
    stand_in = tdx(world(ticket(1), ticket(2)))
    queue = config(COMMENT, {"type": "status_change", "new_status_id": 5, "status_name": "In Progress"})
    comment_id = queue.actions[0].action_id
    run_queue(db, stand_in, config(COMMENT))
    db.execute("UPDATE meta.daemon_action_log SET status = 'pending' WHERE ticket_id = 1")  # killed before settling
    stand_in.data.tickets[1]["StatusID"] = 9  # closed meanwhile, so it left the report
    del stand_in.data.reports[1][0]

    outcomes = {o.ticket_id: o for o in run_queue(db, stand_in, queue, "after-crash")}
    assert [a["action_id"] for a in outcomes[1].actions] == [comment_id]
    assert stand_in.data.tickets[1]["StatusID"] == 9  # not reopened by an action it was never due
    assert stand_in.data.tickets[2]["StatusID"] == 5  # in the report: due, done
    assert [r[:3] for r in log_rows(db)] == [(1, "comment", "completed"), (2, "comment", "completed"),
                                             (2, "status_change", "completed")]
    assert len(bodies(stand_in, 1)) == 1

    stand_in.data.reports[1].insert(0, {"TicketID": 1, "Title": "Printer jams", "StatusName": "Closed"})
    run_queue(db, stand_in, queue, "back-in-the-report")
    assert stand_in.data.tickets[1]["StatusID"] == 5


def test_dry_run_reads_only_and_writes_nothing(db, tdx):
    stand_in = tdx(world(ticket(1, "Laptop IC-EHLB760-F16 dead"), ticket(2, requestor="u-2", status=4),
                         assets=[asset(11, "IC-EHLB760-F16", "S1"), asset(21, "LSA-ONLY0001", "S2", owner="u-2")]))
    queue = config({"type": "add_asset"}, {"type": "status_change", "new_status_id": 4}, COMMENT,
                   {"type": "summary_comment"})
    outcomes = run_queue(db, stand_in, queue, dry_run=True)
    assert log_rows(db) == []
    assert {c.method for c in stand_in.calls} - {"GET"} == {"POST"}
    assert {c.path.split("/")[-1] for c in stand_in.calls if c.method == "POST"} == {"loginadmin", "search"}
    assert stand_in.data.ticket_assets == {} and stand_in.data.feeds == {}
    plan = {o.ticket_id: o.actions for o in outcomes}
    assert plan[1][0]["status"] == "would_do"
    assert plan[1][0]["assets"] == [{"id": 11, "name": "IC-EHLB760-F16", "identifier": "IC-EHLB760-F16",
                                     "reason": "Computer name found in ticket title"}]
    assert plan[2][0]["assets"][0]["reason"] == "Requestor's only asset"
    assert [a["status"] for a in plan[2]] == ["would_do", "would_skip", "would_do", "would_do"]
    assert plan[2][1]["description"] == "already in status 4"
    assert "2. Changed status to status 4" in plan[1][-1]["text"]


def test_a_crash_between_the_tdx_call_and_the_log_write_posts_no_second_comment(db, tdx, app_db_url, tmp_path):
    """A real process, killed with SIGKILL after TDX took the comment and before it answered."""
    stand_in = tdx(world(ticket(1)))
    posted = threading.Event()
    release = threading.Event()

    def hold(call):
        if call.path.endswith("/feed"):
            posted.set()
            release.wait(30)

    stand_in.after_apply = hold
    script = tmp_path / "worker.py"
    script.write_text(textwrap.dedent(f"""
        import psycopg
        from ticketflow.tdx.client import TdxClient, TdxError, TdxSettings
        from ticketflow.tdx.config import parse_config
        from ticketflow.tdx.queue import process_tickets
        conn = psycopg.connect({app_db_url!r}, autocommit=True)
        client = TdxClient(TdxSettings({stand_in.api_url!r}, {BEID!r}, {KEY!r}))
        process_tickets(conn, client, parse_config({{"actions": [{COMMENT!r}]}}), {{1: {{}}}}, "doomed-run")
    """))
    worker = subprocess.Popen([sys.executable, str(script)], env={"PYTHONPATH": str(PROJECT_ROOT / "include")})
    try:
        assert posted.wait(30), "the worker never posted"
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
    finally:
        release.set()
        worker.kill()
    stand_in.after_apply = None
    assert [(r[2]) for r in log_rows(db)] == ["pending"]
    assert len(bodies(stand_in, 1)) == 1

    [outcome] = run_queue(db, stand_in, config(COMMENT), "next-run")
    assert outcome.actions[0]["status"] == "completed" and outcome.actions[0]["reconciled"] is True
    assert len(bodies(stand_in, 1)) == 1
    assert log_rows(db)[0][2] == "completed"
    assert len(stand_in.calls_to(FEED)) == 1


def test_a_lost_answer_is_looked_up_before_the_comment_is_sent_again(db, tdx):
    stand_in = tdx(world(ticket(1), ticket(2)))

    dropped = []

    def drop_first_answer(call):
        if call.path.endswith("/feed") and not dropped:
            dropped.append(call)
            raise ConnectionAbortedError("the answer is lost after TDX acted")

    stand_in.after_apply = drop_first_answer
    outcomes = run_queue(db, stand_in, config(COMMENT))  # no answer, but the marker is there: done
    assert [o.actions[0]["reconciled"] for o in outcomes] == [True, False]
    assert len(bodies(stand_in, 1)) == len(bodies(stand_in, 2)) == 1

    stand_in.after_apply = None
    stand_in.fail_next(FEED, 503)  # refused before acting: looked up, not found, sent again
    stand_in.data.reports[1].append({"TicketID": 3})
    stand_in.data.tickets[3] = ticket(3)
    [outcome] = run_queue(db, stand_in, config(COMMENT), "run-2")
    assert outcome.actions[0]["status"] == "completed" and len(bodies(stand_in, 3)) == 1


def test_overlapping_runs_never_act_twice_on_a_ticket(tdx, db, run_concurrently):
    stand_in = tdx(world(*[ticket(i) for i in range(1, 21)]))
    stand_in.after_apply = lambda call: time.sleep(0.01)
    queue = config(COMMENT, {"type": "status_change", "new_status_id": 3}, {"type": "summary_comment"})
    results = run_concurrently(["a", "b", "c"], lambda conn, name: run_queue(conn, stand_in, queue, f"run-{name}"))
    assert all(len(bodies(stand_in, i)) == 3 for i in range(1, 21)), "comment, status change, summary"
    assert len(stand_in.calls_to(FEED)) == 60
    done = sum(o.count("completed") for outcomes in results.values() for o in outcomes)
    assert done == 60
    assert db.execute("SELECT count(*) FROM meta.daemon_action_log WHERE status = 'completed'").fetchone()[0] == 60


def test_tdx_errors_fail_the_action_with_its_answer_and_clearing_retries_it(db, tdx):
    stand_in = tdx(world(ticket(1), ticket(2)))
    stand_in.fail_next("GET 46/tickets/{id}", 500, 502)  # transient: retried with backoff
    stand_in.fail_next(FEED, 403)  # refused: the action fails, the next ticket goes on
    queue = config({"type": "status_change", "new_status_id": 3})
    run_queue(db, stand_in, queue)
    rows = log_rows(db)
    assert rows[0][2] == "failed" and "answered 403" in rows[0][3] and "Failure on demand (403)" in rows[0][3]
    assert rows[1][2] == "completed"
    assert run_queue(db, stand_in, queue, "run-2") == []  # failed stays failed until cleared
    assert action_stats(db)["by_status"] == {"completed": 1, "failed": 1}
    assert clear_failed_actions(db, ticket_id=2) == 0
    assert clear_failed_actions(db, ticket_id=1) == 1
    run_queue(db, stand_in, queue, "run-3")
    assert [r[2] for r in log_rows(db)] == ["completed", "completed"]
    assert {r["ticket_id"] for r in recent_activity(db)} == {1, 2}


def test_clearing_every_tickets_failures_is_said_explicitly(db):
    db.execute("INSERT INTO meta.daemon_action_log (ticket_id, action_type, action_id, action_hash, status)"
               " VALUES (1, 'comment', 'c:1', 'h', 'failed'), (2, 'comment', 'c:1', 'h', 'failed'),"
               " (3, 'comment', 'c:1', 'h', 'completed')")
    for ambiguous in ({}, {"ticket_id": None}, {"ticket_id": 1, "all_tickets": True}):
        with pytest.raises(ValueError, match="give a ticket_id"):
            clear_failed_actions(db, **ambiguous)
    assert action_stats(db)["by_status"] == {"failed": 2, "completed": 1}
    assert clear_failed_actions(db, all_tickets=True) == 2
    assert action_stats(db)["by_status"] == {"completed": 1}


def test_429_storms_are_waited_out_and_lose_or_double_nothing(db, tdx, run_concurrently):
    stand_in = tdx(world(*[ticket(i) for i in range(1, 13)]), rate_limit=RateLimit(4, 1))
    queue = config(COMMENT)
    clients = {name: client_for(stand_in, pace=False) for name in "ab"}  # no pacing: meet the 429s
    run_concurrently(list(clients), lambda conn, name: run_queue(conn, stand_in, queue, name, client=clients[name]))
    assert stand_in.throttled() > 0
    assert stand_in.throttled() == sum(c.throttled for c in clients.values())
    assert all(len(bodies(stand_in, i)) == 1 for i in range(1, 13))
    assert [r[2] for r in log_rows(db)] == ["completed"] * 12


def test_a_429_waits_until_the_reset_date_plus_five_seconds(tdx):
    stand_in = tdx(world(ticket(1)), rate_limit=RateLimit(60, 2))
    client = client_for(stand_in, reset_margin=5.0)
    client.report(1)
    stand_in.fail_next("GET reports/{id}", 429)
    started = time.monotonic()
    client.report(1)
    [throttled, retried] = stand_in.calls_to("GET reports/{id}")[1:]
    assert throttled.status == 429 and retried.status == 200
    assert retried.at - throttled.at >= 5.0
    assert time.monotonic() - started < 5.0 + 3


def test_a_low_remaining_budget_slows_the_client_down_before_any_429(tdx):
    stand_in = tdx(world(ticket(1)), rate_limit=RateLimit(5, 2))
    client = client_for(stand_in)
    started = time.monotonic()
    for _ in range(12):
        client.ticket(1)
    assert stand_in.throttled() == 0 and client.throttled == 0
    assert time.monotonic() - started >= 4  # 12 calls at 5 per 2 s need three windows


def test_the_token_is_shared_encrypted_and_renewed_on_401(db, tdx):
    stand_in = tdx(world(ticket(1)))
    settings = TdxSettings(stand_in.api_url, BEID, KEY)
    first = TdxClient(settings, token_store=DatabaseTokenStore(db, settings))
    first.ticket(1)
    second = TdxClient(settings, token_store=DatabaseTokenStore(db, settings))
    second.ticket(1)
    assert len(stand_in.calls_to("POST auth/loginadmin")) == 1
    [stored] = db.execute("SELECT token_ciphertext FROM meta.tdx_token_cache").fetchone()
    token = next(iter(stand_in._tokens))
    assert token.encode() not in bytes(stored) and KEY.encode() not in bytes(stored)

    stand_in.revoke_tokens()
    second.ticket(1)
    assert len(stand_in.calls_to("POST auth/loginadmin")) == 2
    wrong_key = TdxSettings(stand_in.api_url, BEID, "another-key")
    assert DatabaseTokenStore(db, wrong_key).load() is None


def test_steady_state_is_one_tdx_call_and_one_query_for_the_report(db, tdx, monkeypatch):
    stand_in = tdx(world(*[ticket(i, f"Laptop IC-EHLB{i:03d}-F1") for i in range(1, 51)],
                         assets=[asset(i, f"IC-EHLB{i:03d}-F1", f"S{i}") for i in range(1, 51)]))
    settings = TdxSettings(stand_in.api_url, BEID, KEY)
    queue = config({"type": "add_asset"}, COMMENT, {"type": "summary_comment"})
    run_queue(db, stand_in, queue, client=TdxClient(settings, token_store=DatabaseTokenStore(db, settings)))
    assert len(stand_in.calls_to(FEED)) == 100

    statements = []
    original = type(db).execute
    monkeypatch.setattr(type(db), "execute", lambda self, query, *a, **k: (statements.append(query),
                                                                         original(self, query, *a, **k))[1])
    before = len(stand_in.calls)
    client = TdxClient(settings, token_store=DatabaseTokenStore(db, settings))
    assert run_queue(db, stand_in, queue, "steady", client=client) == []
    assert [c.path for c in stand_in.calls[before:]] == ["/TDWebApi/api/reports/1"]
    report_queries = [q for q in statements if "daemon_action_log" in q]
    assert len(report_queries) == 1 and len(statements) == 2  # the report's state, and the shared token


def test_report_rows_with_a_bad_ticket_id_are_skipped_with_a_log_line(caplog):
    report = {"ID": 7, "DisplayedColumns": [{"ColumnName": "TicketID"}, {"ColumnName": "Title"}],
              "DataRows": [{"TicketID": 1, "Title": "a"}, {"TicketID": "12x", "Title": "b"},
                           {"TicketID": None}, {"TicketID": True}, {"TicketID": "3"}, {"TicketID": 0},
                           {"TicketID": -4}, {"TicketID": "2147483648"}, {"TicketID": 2147483647}]}
    with caplog.at_level(logging.WARNING):
        rows = report_rows(report, {"Title"})
    assert rows == {1: {"Title": "a"}, 3: {"Title": None}, 2147483647: {"Title": None}}
    assert "report 7 row 2 skipped: TicketID '12x' is not a TDX ticket id (1..2147483647)" in caplog.text
    assert "report 7 row 8 skipped: TicketID '2147483648' is not a TDX ticket id" in caplog.text
    assert caplog.text.count("is not a TDX ticket id") == 6


def test_neither_the_key_nor_the_token_reaches_the_logs(db, tdx, caplog):
    stand_in = tdx(world(ticket(1, "Laptop IC-EHLB760-F16"), assets=[asset(11, "IC-EHLB760-F16", "S")]))
    stand_in.fail_next("GET 46/tickets/{id}", 503)
    stand_in.fail_next(FEED, 400)
    with caplog.at_level(logging.DEBUG):
        run_queue(db, stand_in, config({"type": "add_asset"}, COMMENT, {"type": "summary_comment"}))
        stand_in.revoke_tokens()
        run_queue(db, stand_in, config({**COMMENT, "version": "v2"}), "run-2")
    assert len(stand_in.issued_tokens) == 2 and "failed" in caplog.text  # one per run: the first was revoked
    secrets = [KEY, *stand_in.issued_tokens]
    everything = caplog.text + repr([r.args for r in caplog.records]) + repr(log_rows(db))
    assert not [s for s in secrets if s in everything]


def test_a_refused_login_is_a_clear_error_and_caches_nothing(db, tdx):
    stand_in = tdx(world(ticket(1)))
    settings = TdxSettings(stand_in.api_url, BEID, "wrong-key")
    with pytest.raises(TdxError, match="auth/loginadmin answered 401: check the BEID and WebServicesKey"):
        TdxClient(settings, token_store=DatabaseTokenStore(db, settings)).ticket(1)
    assert db.execute("SELECT count(*) FROM meta.tdx_token_cache").fetchone()[0] == 0
