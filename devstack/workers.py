"""Which Celery worker of a local stack ran which task instance, read from the workers' logs.

Every component of the local stack reports its host as 127.0.0.1 (see
`devstack.logserver`), so a task instance's `hostname` cannot tell two
workers on one machine apart. Each worker logs the task instances it runs
("Executing workload in Celery: ... TaskInstance(id=UUID('...')"), and the
REST API gives each task instance's `id`: together they say which worker ran it.
"""

from __future__ import annotations

import re

from devstack.stack import LocalStack

_EXECUTING = re.compile(r"Executing workload in Celery: .*?TaskInstance\w*\(id=UUID\('([0-9a-f-]{36})'\)")


def workers_by_task_instance(stack: LocalStack) -> dict[str, str]:
    """Task instance id (as the REST API gives it) -> the name of the worker that ran it (its last try)."""
    ran_by: dict[str, str] = {}
    for worker in stack.worker_names:
        for match in _EXECUTING.finditer((stack.logs / f"{worker}.log").read_text(errors="replace")):
            ran_by[match.group(1)] = worker
    return ran_by
