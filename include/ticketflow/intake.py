"""Ticket intake: one incoming ticket, validated, inserted or updated by its external id."""

from __future__ import annotations

import re

import psycopg

from ticketflow.db import one
from ticketflow.limits import column_length

PRIORITIES = ["low", "medium", "high", "urgent"]
REQUIRED = ("subject", "department", "category")
OPTIONAL = ("external_id", "description", "sub_category", "priority", "requester_email")
EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
_EMAIL = re.compile(EMAIL_PATTERN)
_NOT_BLANK = r"\S"

#: The JSON schema of each field, shared by the DAG's Params (the trigger form, REST validation);
#: text is bounded by its column (migration 0013).
_SCHEMAS: dict[str, dict] = {
    "subject": {"type": "string", "pattern": _NOT_BLANK, "description": "Short summary of the request."},
    "department": {"type": "string", "pattern": _NOT_BLANK,
                   "description": "Department the ticket belongs to (workflow matching)."},
    "category": {"type": "string", "pattern": _NOT_BLANK, "description": "Category (workflow matching)."},
    "external_id": {"type": ["null", "string"], "pattern": _NOT_BLANK,
                    "description": "The sender's id: a second ticket with it updates the first."},
    "description": {"type": ["null", "string"], "description": "Full text of the request."},
    "sub_category": {"type": ["null", "string"], "description": "Sub-category (exact workflow match)."},
    "priority": {"type": ["null", "string"], "enum": [None, *PRIORITIES],
                 "description": "low, medium, high or urgent."},
    "requester_email": {"type": ["null", "string"], "pattern": EMAIL_PATTERN, "description": "Who asked."},
}
FIELD_SCHEMAS = {name: {**schema, "maxLength": column_length("tickets", name)} for name, schema in _SCHEMAS.items()}


class InvalidTicket(ValueError):
    pass


def validate(fields: dict) -> dict:
    """The ticket's columns from the incoming fields; a clear error for anything wrong, before any write."""
    unknown = set(fields) - set(REQUIRED) - set(OPTIONAL)
    if unknown:
        raise InvalidTicket(f"unknown fields: {', '.join(sorted(unknown))}")
    problems = [f"{name} is required" for name in REQUIRED if not str(fields.get(name) or "").strip()]
    for name, value in fields.items():
        if value is not None and not isinstance(value, str):
            problems.append(f"{name} must be text")
        elif value is not None and len(value) > FIELD_SCHEMAS[name]["maxLength"]:
            problems.append(f"{name} is longer than {FIELD_SCHEMAS[name]['maxLength']} characters")
        elif value is not None and "\x00" in value:
            problems.append(f"{name} contains a NUL character")
    if fields.get("priority") not in (None, *PRIORITIES):
        problems.append(f"priority must be one of {', '.join(PRIORITIES)}")
    email = fields.get("requester_email")
    if isinstance(email, str) and email and not _EMAIL.match(email):
        problems.append("requester_email is not an email address")
    if problems:
        raise InvalidTicket("; ".join(problems))
    ticket = {name: fields.get(name) for name in (*REQUIRED, *OPTIONAL)}
    ticket["description"] = ticket["description"] or ""
    ticket["priority"] = ticket["priority"] or "medium"
    ticket["external_id"] = ticket["external_id"] or None
    return ticket


_UPSERT = """
INSERT INTO tickets (external_id, subject, description, department, category, sub_category, priority, requester_email)
VALUES (%(external_id)s, %(subject)s, %(description)s, %(department)s, %(category)s, %(sub_category)s,
        %(priority)s, %(requester_email)s)
ON CONFLICT (external_id) WHERE external_id IS NOT NULL DO UPDATE SET
    subject = EXCLUDED.subject, description = EXCLUDED.description, department = EXCLUDED.department,
    category = EXCLUDED.category, sub_category = EXCLUDED.sub_category, priority = EXCLUDED.priority,
    requester_email = EXCLUDED.requester_email, updated_at = clock_timestamp()
RETURNING id, xmax = 0 AS inserted
"""


_INSERT_ONCE = """
WITH new AS (
    INSERT INTO tickets (intake_key, subject, description, department, category, sub_category, priority,
                         requester_email)
    VALUES (%(intake_key)s, %(subject)s, %(description)s, %(department)s, %(category)s, %(sub_category)s,
            %(priority)s, %(requester_email)s)
    ON CONFLICT (intake_key) WHERE intake_key IS NOT NULL DO NOTHING
    RETURNING id
)
SELECT id, true FROM new
UNION ALL
SELECT id, true FROM tickets WHERE intake_key = %(intake_key)s AND NOT EXISTS (SELECT 1 FROM new)
"""


def receive_ticket(conn: psycopg.Connection, fields: dict, intake_key: str) -> dict:
    """Insert the ticket, or update the one with the same external_id. New ones wait for a task (NOTIFY).

    `intake_key` (the DAG run's id) makes a retry of the same intake find the
    ticket it already created instead of creating another.
    """
    ticket = validate(fields)
    statement = _UPSERT if ticket["external_id"] else _INSERT_ONCE
    with conn.transaction():
        ticket_id, inserted = one(conn.execute(statement, {**ticket, "intake_key": intake_key}))
    return {"ticket_id": ticket_id, "action": "created" if inserted else "updated"}
