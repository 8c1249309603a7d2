"""How long input text may be, column by column: the bounds the database enforces (migration 0013).

Every way in checks them first and names the field (the API's bodies, the
DAGs' Params, intake's validation), so a refusal is a clear 4xx or a run that
fails before writing, never a constraint error. The customers' limits are the
seed's (Django's user model); the others were chosen to fit any real value
with room to spare. `tests/integration/test_input_bounds.py` holds the
migration to this table.
"""

from __future__ import annotations

#: Characters (PostgreSQL's char_length) per text column reached by input, by table.
COLUMN_LENGTHS: dict[str, dict[str, int]] = {
    "tickets": {"subject": 500, "description": 100_000, "external_id": 255, "department": 200, "category": 200,
                "sub_category": 200, "priority": 20, "status": 50, "requester_email": 254,
                "recurrence_rule": 2000},
    "workflows": {"name": 200, "department": 200, "category": 200, "sub_category": 200},
    "steps": {"name": 200, "role_name": 200},
    "events": {"title": 200},
    "customers": {"username": 150, "first_name": 150, "last_name": 150, "email": 254},
    "email_outbox": {"recipient": 254},
}

#: A recurring template's subject leaves room for the " (YYYY-MM-DD)" each of its tickets adds to it.
TEMPLATE_SUBJECT = COLUMN_LENGTHS["tickets"]["subject"] - len(" (2026-01-31)")
#: A person's user name and email address wherever they are stored (Django's limits; RFC 5321's path).
USERNAME = COLUMN_LENGTHS["customers"]["username"]
EMAIL = COLUMN_LENGTHS["customers"]["email"]
#: A role of the people directory (TTS), as steps and task assignments name it.
ROLE_NAME = COLUMN_LENGTHS["steps"]["role_name"]
#: Users on one task: far more than any step assigns (TICKETFLOW_MAX_ASSIGNMENTS), few enough that reading and
#: rewriting a task's users stays cheap.
TASK_USERS = 100
#: Why a task is on hold or was cancelled (migration 0015's tasks_status_reason_length).
TASK_STATUS_REASON = 1000


def column_length(table: str, column: str) -> int:
    return COLUMN_LENGTHS[table][column]
