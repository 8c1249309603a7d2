"""Ticket intake: incoming tickets, validated, inserted or updated by their external id, one or a batch at once.

Two doors share this module: the `ticket_intake` DAG (one ticket per run: the
UI's trigger form, single REST triggers) and the plugin's `POST
/ticketflow/tickets` (up to `MAX_BATCH` tickets per request, one
transaction). Both validate with `problems()` against `TICKET_SCHEMA`, the
JSON schema the DAG's Params and the API's OpenAPI document show, and both
write with one set-based statement (`intake/upsert_tickets`). Every insert
statement into `tickets` wakes assignment (the `tickets_notify` trigger's NOTIFY).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import jsonschema
import psycopg

from ticketflow import queries
from ticketflow.db import one
from ticketflow.limits import column_length

PRIORITIES = ["low", "medium", "high", "urgent"]
REQUIRED = ("subject", "department", "category")
OPTIONAL = ("external_id", "description", "sub_category", "priority", "requester_email")
MAX_BATCH = 1000
#: PostgreSQL text cannot hold NUL; the other patterns refuse it too. Blank means controls and Unicode spaces
#: only, spelt out: regex engines (Python's, the browser's, schemathesis') disagree on what `\s` matches.
_SPACE = r"\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
_TEXT = r"^[^\x00]*$"
_NOT_BLANK = rf"^[^\x00]*[^{_SPACE}][^\x00]*$"
EMAIL_PATTERN = rf"^[^@{_SPACE}]+@[^@{_SPACE}]+\.[^@{_SPACE}]+$"
_PATTERN_PROBLEM = {_TEXT: "must not contain NUL characters", _NOT_BLANK: "must not be blank",
                    EMAIL_PATTERN: "is not an email address"}


def _text(name: str, description: str, pattern: str = _TEXT) -> dict[str, Any]:
    return {"type": "string" if name in REQUIRED else ["null", "string"], "pattern": pattern,
            "maxLength": column_length("tickets", name), "description": description}


#: The JSON schema of each field, shared by the DAG's Params (the trigger form, REST validation), the API's
#: OpenAPI document and `problems()`; text is bounded by its column (migration 0013).
FIELD_SCHEMAS: dict[str, dict] = {
    "subject": _text("subject", "Short summary of the request.", _NOT_BLANK),
    "department": _text("department", "Department the ticket belongs to (workflow matching).", _NOT_BLANK),
    "category": _text("category", "Category (workflow matching).", _NOT_BLANK),
    "external_id": _text("external_id", "The sender's id: a second ticket with it updates the first.", _NOT_BLANK),
    "description": _text("description", "Full text of the request."),
    "sub_category": _text("sub_category", "Sub-category (exact workflow match)."),
    "priority": {"type": ["null", "string"], "enum": [None, *PRIORITIES],
                 "maxLength": column_length("tickets", "priority"), "description": "low, medium, high or urgent."},
    "requester_email": _text("requester_email", "Who asked.", EMAIL_PATTERN),
}

#: One ticket, as `problems()` checks it.
TICKET_SCHEMA: dict[str, Any] = {"type": "object", "properties": FIELD_SCHEMAS, "required": list(REQUIRED),
                                 "additionalProperties": False}
_VALIDATOR = jsonschema.Draft202012Validator(TICKET_SCHEMA)


class InvalidTicket(ValueError):
    """A ticket that must not be written: `problems` lists (field, message), the message says it all."""

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = problems
        super().__init__("; ".join(message for _, message in problems))


class InvalidBatch(ValueError):
    """Tickets of a batch that must not be written: (index, field, message) for each problem."""

    def __init__(self, problems: list[tuple[int, str, str]]):
        self.problems = problems
        super().__init__("; ".join(f"ticket {index}: {message}" for index, _, message in problems))


class IdempotencyKeyReused(ValueError):
    """An Idempotency-Key sent again with a different request."""


def _problem(name: str, value: Any, error: jsonschema.ValidationError) -> str:
    if name in REQUIRED and (value is None or error.validator == "pattern" and not str(value).strip()):
        return f"{name} is required"
    if error.validator == "type":
        return f"{name} must be text"
    if error.validator == "enum":
        return f"{name} must be one of {', '.join(PRIORITIES)}"
    if error.validator == "maxLength":
        return f"{name} is longer than {error.validator_value} characters"
    return f"{name} {_PATTERN_PROBLEM.get(str(error.validator_value), 'is not valid')}"


def problems(fields: Any) -> list[tuple[str, str]]:
    """What is wrong with one incoming ticket against `TICKET_SCHEMA`, as (field, message) in the schema's field
    order; empty when nothing is."""
    if not isinstance(fields, dict):
        return [("", "a ticket must be a JSON object")]
    found = [(name, f"{name} is required") for name in REQUIRED if name not in fields]
    found += [(name, f"unknown field: {name}") for name in sorted(set(fields) - set(FIELD_SCHEMAS))]
    for error in _VALIDATOR.iter_errors(fields):
        if error.path:  # `required` and `additionalProperties` are the object's, said above
            name = str(error.path[0])
            found.append((name, _problem(name, fields[name], error)))
    order = {name: position for position, name in enumerate(FIELD_SCHEMAS)}
    return sorted(dict.fromkeys(found), key=lambda problem: order.get(problem[0], len(order)))


def validate(fields: dict) -> dict:
    """The ticket's columns from the incoming fields; a clear error for anything wrong, before any write."""
    found = problems(fields)
    if found:
        raise InvalidTicket(found)
    ticket = {name: fields.get(name) for name in (*REQUIRED, *OPTIONAL)}
    ticket["description"] = ticket["description"] or ""
    ticket["priority"] = ticket["priority"] or "medium"
    return ticket


def validate_batch(batch: list) -> list[dict]:
    """Every ticket's columns, or InvalidBatch with every problem of every ticket (an external_id twice too)."""
    found: list[tuple[int, str, str]] = []
    tickets: list[dict] = []
    first_with: dict[str, int] = {}
    for index, fields in enumerate(batch):
        ticket_problems = problems(fields)
        found += [(index, name, message) for name, message in ticket_problems]
        if ticket_problems:
            continue
        tickets.append(validate(fields))
        external_id = tickets[-1]["external_id"]
        if external_id is not None and first_with.setdefault(external_id, index) != index:
            found.append((index, "external_id", f"external_id {external_id!r} is also ticket {first_with[external_id]}"
                                                " of this batch"))
    if found:
        raise InvalidBatch(found)
    return tickets


def upsert_tickets(conn: psycopg.Connection, tickets: list[dict], intake_key: str | None = None) -> list[dict]:
    """Write validated tickets with one statement, in the caller's transaction: each is created, or updates the
    ticket with its external_id. `intake_key` (one ticket without an external_id) makes a retry find the ticket
    its first try created. One `{"ticket_id", "action"}` per ticket, in order."""
    rows = [{**ticket, "ordinal": index, "intake_key": None if ticket["external_id"] else intake_key}
            for index, ticket in enumerate(tickets)]
    written = conn.execute(queries.load("intake/upsert_tickets"), {"tickets": json.dumps(rows)}).fetchall()
    return [{"ticket_id": ticket_id, "action": "created" if created else "updated"}
            for _, ticket_id, created in written]


def receive_ticket(conn: psycopg.Connection, fields: dict, intake_key: str) -> dict:
    """Insert the ticket, or update the one with the same external_id (the DAG's door).

    `intake_key` (the DAG run's id) makes a retry of the same intake find the
    ticket it already created instead of creating another.
    """
    ticket = validate(fields)
    with conn.transaction():
        [result] = upsert_tickets(conn, [ticket], intake_key)
    return result


def request_sha256(batch: list) -> str:
    """The fingerprint of a request's tickets: the same JSON, whatever its key order or spacing."""
    return hashlib.sha256(json.dumps(batch, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def receive_batch(conn: psycopg.Connection, batch: list, requested_by: str,
                  idempotency_key: str | None = None) -> tuple[dict, bool]:
    """A batch in one transaction (the API's door): every ticket written, or none. Returns the answer and
    whether it is a repeat: a key `requested_by` already sent with the same tickets returns the first answer
    and writes nothing; with other tickets it raises IdempotencyKeyReused. A refused batch keeps no key."""
    with conn.transaction():
        if idempotency_key is not None:
            fingerprint = request_sha256(batch)
            claimed = conn.execute(
                "INSERT INTO intake_requests (requested_by, idempotency_key, request_sha256) VALUES (%s, %s, %s)"
                " ON CONFLICT DO NOTHING RETURNING true", (requested_by, idempotency_key, fingerprint)).fetchone()
            if claimed is None:  # a concurrent first request holds the key until it commits, then we read it
                sent_before, response = one(conn.execute(
                    "SELECT request_sha256, response FROM intake_requests WHERE requested_by = %s"
                    " AND idempotency_key = %s", (requested_by, idempotency_key)))
                if sent_before != fingerprint:
                    raise IdempotencyKeyReused(f"Idempotency-Key {idempotency_key!r} was sent before with other"
                                               " tickets; use a new key for a new request")
                return response, True
        results = upsert_tickets(conn, validate_batch(batch))
        response = {"tickets": [{"index": index, **result} for index, result in enumerate(results)],
                    "created": sum(r["action"] == "created" for r in results),
                    "updated": sum(r["action"] == "updated" for r in results)}
        if idempotency_key is not None:
            conn.execute("UPDATE intake_requests SET response = %s WHERE requested_by = %s AND idempotency_key = %s",
                         (json.dumps(response), requested_by, idempotency_key))
    return response, False
