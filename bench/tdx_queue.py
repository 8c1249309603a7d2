"""TDX report queue: a report of 2,000 tickets with three actions each, first run and steady state.

The TDX stand-in (real HTTP on 127.0.0.1) enforces a rate limit per API
method; the queue runs as the DAG does: one report call and one query find
the tickets with work, then batches of 100 are processed by 4 workers at once
(the `tdx_api` pool's slots), each with its own client, connection and the
shared token cache, as separate task processes would be. The actions are
add_asset (every ticket names its computer), a comment, and the summary.

Prints TDX calls per ticket, wall time and 429 answers for both runs, then
one JSON object on its last line. Targets: the steady state makes exactly one
TDX call in total, and the first run never meets the rate limit (0 429s).
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing

import psycopg
from _support import scratch_database

from devstack.standins import RateLimit, TdxData, TdxStandIn
from ticketflow.settings import TDX_POOL_SLOTS
from ticketflow.tdx.client import TdxClient, TdxSettings
from ticketflow.tdx.config import parse_config
from ticketflow.tdx.queue import in_batches, outstanding, process_tickets, report_rows
from ticketflow.tdx.tokens import DatabaseTokenStore

TICKETS = 2_000
BATCH_SIZE = 100
MAX_MAP_LENGTH = 1024  # Airflow's default [core] max_map_length, as the DAG reads it
#: Calls per method per window: the stand-in's limit for this benchmark (TDX's own is about 60 a minute).
LIMIT = RateLimit(calls=600, window_seconds=5)
BEID, KEY = "bench-beid", "bench-web-services-key"
CONFIG = parse_config({"batch_size": BATCH_SIZE, "actions": [
    {"type": "add_asset"},
    {"type": "comment", "comment_text": "Thanks, we have your request.", "is_private": False},
    {"type": "summary_comment"},
]})


def tdx_world() -> TdxData:
    tickets = {i: {"ID": i, "Title": f"Laptop IC-EHLB{i:04d}-F16 will not boot", "Description": "",
                   "RequestorUid": f"u-{i}", "StatusID": 1} for i in range(1, TICKETS + 1)}
    assets = {i: {"ID": i, "Name": f"IC-EHLB{i:04d}-F16", "SerialNumber": f"SN{i:06d}", "StatusID": 1}
              for i in range(1, TICKETS + 1)}
    return TdxData(reports={1: [{"TicketID": i, "Title": t["Title"]} for i, t in tickets.items()]},
                   tickets=tickets, assets=assets)


def client(url: str, settings: TdxSettings) -> tuple[psycopg.Connection, TdxClient]:
    conn = psycopg.connect(url, autocommit=True)
    return conn, TdxClient(settings, token_store=DatabaseTokenStore(conn, settings))


def one_run(url: str, stand_in: TdxStandIn, settings: TdxSettings, run_id: str) -> dict:
    calls_before, throttled_before = len(stand_in.calls), stand_in.throttled()
    started = time.perf_counter()
    conn, planner = client(url, settings)
    with closing(conn):
        rows = report_rows(planner.report(1), CONFIG.condition_columns)
        batches = in_batches(outstanding(conn, rows, CONFIG), CONFIG.batch_size, max_batches=MAX_MAP_LENGTH)

    def work(batch: list[int]) -> int:
        conn, worker = client(url, settings)
        with closing(conn):
            outcomes = process_tickets(conn, worker, CONFIG, {t: rows.get(t, {}) for t in batch}, run_id)
        return sum(o.count("completed") for o in outcomes)

    with ThreadPoolExecutor(TDX_POOL_SLOTS) as pool:
        completed = sum(pool.map(work, batches))
    seconds = time.perf_counter() - started
    calls = len(stand_in.calls) - calls_before
    return {"seconds": round(seconds, 2), "tdx_calls": calls, "calls_per_ticket": round(calls / TICKETS, 3),
            "throttled_429": stand_in.throttled() - throttled_before, "actions_completed": completed,
            "batches": len(batches)}


def main() -> None:
    stand_in = TdxStandIn(BEID, KEY, tdx_world(), rate_limit=LIMIT).start()
    settings = TdxSettings(stand_in.api_url, BEID, KEY)
    try:
        with scratch_database() as url:
            first = one_run(url, stand_in, settings, "first")
            print(f"first run:    {first['seconds']:7.2f} s, {first['tdx_calls']} TDX calls "
                  f"({first['calls_per_ticket']} per ticket), {first['throttled_429']} answered 429, "
                  f"{first['actions_completed']} actions completed in {first['batches']} batches", flush=True)
            steady = one_run(url, stand_in, settings, "steady")
            print(f"steady state: {steady['seconds']:7.2f} s, {steady['tdx_calls']} TDX call(s) in total, "
                  f"{steady['throttled_429']} answered 429", flush=True)
            with closing(psycopg.connect(url)) as conn:
                feed_posts = len(stand_in.calls_to("POST 46/tickets/{id}/feed"))
                logged = conn.execute("SELECT count(*) FROM meta.daemon_action_log").fetchone()[0]
    finally:
        stand_in.stop()
    print(json.dumps({
        "benchmark": "tdx_queue", "tickets": TICKETS, "actions_per_ticket": len(CONFIG.actions),
        "rate_limit": f"{LIMIT.calls} calls per {LIMIT.window_seconds} s per method", "workers": TDX_POOL_SLOTS,
        "first_run": first, "steady_state": steady, "feed_posts": feed_posts, "log_rows": logged,
        "steady_state_one_call": steady["tdx_calls"] == 1, "first_run_within_limit": first["throttled_429"] == 0,
    }))
    # Every action once: 2 feed posts (comment, summary) and 3 log rows per ticket, whatever the timing.
    if (feed_posts, logged) != (2 * TICKETS, 3 * TICKETS) or steady["tdx_calls"] != 1:
        raise SystemExit(f"wrong result: {feed_posts} feed posts, {logged} log rows, "
                         f"{steady['tdx_calls']} steady-state calls")


if __name__ == "__main__":
    main()
