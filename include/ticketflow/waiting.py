"""Waiting for work without holding a worker slot: a deferrable sensor and its trigger.

`WaitForRows` checks once on the worker; if there is nothing to do it defers
to `RowsReadyTrigger`, which runs in the triggerer: it LISTENs on a
PostgreSQL channel (the tables' triggers NOTIFY it) and re-checks on every
notification, at the latest every `poll_seconds` (a lost notification only
costs latency) and when the earliest scheduled item falls due. The trigger
only reads (a readiness query may take a momentary share lock to skip rows
another transaction holds): triggers may run twice.

The readiness query is a file under sql/queries/ returning one row:
(ready boolean, seconds_until_next numeric or NULL).

With a `plan`, the sensor's XCom is what `plan` reads once there is work
(say, the units a mapped task expands over), on the worker, in the same task:
no extra task between the wake-up and the work.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import psycopg
from airflow.sdk import BaseHook, BaseOperator
from airflow.sdk.exceptions import AirflowSkipException
from airflow.triggers.base import BaseTrigger, TriggerEvent
from psycopg import sql
from psycopg.conninfo import make_conninfo

from ticketflow import queries
from ticketflow.db import one, one_async

#: Unless the connection says otherwise: give up connecting after 10 s, and notice a silently dropped
#: connection within about a minute instead of TCP's quarter of an hour.
_LIBPQ_DEFAULTS = {"connect_timeout": 10, "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3}


def _conninfo(conn_id: str) -> str:
    """libpq parameters of an Airflow connection, its extras (sslmode, options, ...) included as PostgresHook does."""
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    conn = BaseHook.get_connection(conn_id)
    extras = {k: v for k, v in conn.extra_dejson.items() if k not in PostgresHook.ignored_extra_options}
    return make_conninfo(host=conn.host, port=conn.port or 5432, user=conn.login, password=conn.password or None,
                         dbname=conn.schema, **{**_LIBPQ_DEFAULTS, **extras})


class RowsReadyTrigger(BaseTrigger):
    def __init__(self, conn_id: str, channel: str, ready_query: str, poll_seconds: float, max_wait_seconds: float):
        super().__init__()
        self.conn_id, self.channel, self.ready_query = conn_id, channel, ready_query
        self.poll_seconds, self.max_wait_seconds = poll_seconds, max_wait_seconds

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{type(self).__module__}.{type(self).__qualname__}",
                {"conn_id": self.conn_id, "channel": self.channel, "ready_query": self.ready_query,
                 "poll_seconds": self.poll_seconds, "max_wait_seconds": self.max_wait_seconds})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_wait_seconds
        conninfo = await asyncio.to_thread(_conninfo, self.conn_id)
        query = queries.load(self.ready_query)
        async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
            await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
            while True:
                ready, seconds_until_next = await one_async(await conn.execute(query))
                if ready:
                    yield TriggerEvent({"ready": True})
                    return
                remaining = deadline - loop.time()
                if remaining <= 0:
                    yield TriggerEvent({"ready": False})
                    return
                wait = min(self.poll_seconds, remaining)
                if seconds_until_next is not None:
                    wait = max(0.05, min(wait, float(seconds_until_next)))
                async for _ in conn.notifies(timeout=wait, stop_after=1):
                    pass


class WaitForRows(BaseOperator):
    """Succeeds when the readiness query says there is work; skips (downstream too) after `max_wait_seconds`.

    Returns True, or with `plan` what `plan(connection)` returns then.
    """

    def __init__(self, *, conn_id: str, channel: str, ready_query: str, poll_seconds: float = 30,
                 max_wait_seconds: float = 3600, plan: Callable[[psycopg.Connection], Any] | None = None, **kwargs):
        super().__init__(**kwargs)
        self.conn_id, self.channel, self.ready_query = conn_id, channel, ready_query
        self.poll_seconds, self.max_wait_seconds = poll_seconds, max_wait_seconds
        self.plan = plan

    def _work(self, conn: psycopg.Connection) -> Any:
        return True if self.plan is None else self.plan(conn)

    def execute(self, context) -> Any:
        with psycopg.connect(_conninfo(self.conn_id), autocommit=True) as conn:
            if one(conn.execute(queries.load(self.ready_query)))[0]:
                return self._work(conn)
        # The timeout is the scheduler's backstop should the trigger itself stall (execution_timeout does
        # not cover a deferral in Airflow 3.3); the trigger normally answers at max_wait_seconds.
        self.defer(trigger=RowsReadyTrigger(self.conn_id, self.channel, self.ready_query, self.poll_seconds,
                                            self.max_wait_seconds),
                   method_name="execute_complete", timeout=timedelta(seconds=self.max_wait_seconds + 300))

    def execute_complete(self, context, event: dict) -> Any:
        if not event.get("ready"):
            raise AirflowSkipException(f"nothing to do after waiting {self.max_wait_seconds:.0f}s")
        if self.plan is None:
            return True
        with psycopg.connect(_conninfo(self.conn_id), autocommit=True) as conn:
            return self.plan(conn)
