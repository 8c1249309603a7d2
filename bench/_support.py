"""What the benchmarks share: a scratch, migrated database on the embedded (or the configured) server, roles for
the TTS stand-in, and a CPU meter."""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import psutil
import psycopg
from psycopg import sql

sys.path[:0] = [str(Path(__file__).resolve().parents[1] / "include"), str(Path(__file__).resolve().parents[1])]

from devstack import free_port  # noqa: E402
from devstack.postgres import EmbeddedPostgres  # noqa: E402
from ticketflow.migrate import migrate  # noqa: E402
from ticketflow.settings import PROJECT_ROOT  # noqa: E402


@contextmanager
def scratch_database(durable: bool = False) -> Iterator[str]:
    """A migrated database that exists for the benchmark only (`durable`: PostgreSQL's default fsync)."""
    server = None
    base = os.environ.get("TICKETFLOW_DATABASE_URL")
    if not base:
        server = EmbeddedPostgres(PROJECT_ROOT / ".local" / ("bench-pg-durable" if durable else "bench-pg"),
                                  free_port(), durable=durable)
        server.start()
        base = server.url()
    name = f"ticketflow_bench_{uuid.uuid4().hex[:8]}"
    with closing(psycopg.connect(base, autocommit=True)) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = base.rsplit("/", 1)[0] + "/" + name
    try:
        migrate(url)
        yield url
    finally:
        with closing(psycopg.connect(base, autocommit=True)) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        if server:
            server.stop()


def assignment_roles(count: int, users: int = 5) -> dict[str, list[int]]:
    """`count` roles of `users` users each, for a TTS stand-in: the benchmarks spread tickets over roles."""
    return {f"Bench role {index}": list(range(100 * index + 1, 100 * index + 1 + users)) for index in range(count)}


class CpuMeter:
    """How busy the machine's CPUs were between `start()` and `stop()`, and how much of it each process group took.

    Groups are named process trees (a component of the local stack and everything it started, PostgreSQL and its
    backends); a tree's CPU time includes its children that ended (reaped), so short-lived task processes count.
    "other" is what the machine did outside every group: other users of a shared machine. Figures are percent of
    the whole machine (100 = every core busy the whole time).
    """

    def __init__(self, groups: dict[str, list[int]], alone: dict[str, int] | None = None):
        """`alone`: processes measured without their children (this script, whose children are the groups)."""
        self.groups, self.alone = groups, alone or {}

    @staticmethod
    def _tree_seconds(pid: int, children: bool = True) -> float:
        try:
            root = psutil.Process(pid)
            processes = [root, *root.children(recursive=True)] if children else [root]
        except psutil.NoSuchProcess:
            return 0.0
        total = 0.0
        for process in processes:
            try:
                times = process.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system + (times.children_user + times.children_system if children else 0)
        return total

    def _sample(self) -> tuple[float, Any, dict[str, float]]:
        return (time.monotonic(), psutil.cpu_times(),
                {**{name: sum(self._tree_seconds(pid) for pid in pids) for name, pids in self.groups.items()},
                 **{name: self._tree_seconds(pid, children=False) for name, pid in self.alone.items()}})

    def start(self) -> None:
        self._started = self._sample()

    def stop(self) -> dict:
        (began, machine_before, groups_before), (ended, machine_after, groups_after) = self._started, self._sample()
        cores = psutil.cpu_count() or 1
        capacity = (ended - began) * cores
        busy = (sum(machine_after) - sum(machine_before)) - (machine_after.idle - machine_before.idle) - (
            getattr(machine_after, "iowait", 0) - getattr(machine_before, "iowait", 0))
        shares = {name: round(100 * (groups_after[name] - groups_before[name]) / capacity, 1) for name in groups_after}
        return {"cores": cores, "busy_percent": round(100 * busy / capacity, 1),
                "by_group_percent": {**shares, "other": round(100 * busy / capacity - sum(shares.values()), 1)}}
