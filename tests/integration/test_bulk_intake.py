"""Bulk intake against real PostgreSQL: one transaction per batch, the DAG's validation, idempotency keys."""

from contextlib import closing

import psycopg
import pytest

from ticketflow.intake import (
    MAX_BATCH,
    IdempotencyKeyReused,
    InvalidBatch,
    receive_batch,
    receive_ticket,
    validate_batch,
)


def _ticket(n, **fields):
    return {"subject": f"Ticket {n}", "department": "IT", "category": "Hardware", **fields}


def _tickets(db):
    return db.execute("SELECT id, external_id, subject, priority, description FROM tickets ORDER BY id").fetchall()


def test_a_batch_creates_new_tickets_and_updates_known_external_ids_in_one_go(db):
    known = receive_ticket(db, _ticket(0, external_id="EXT-7"), "ticket_intake/run0")["ticket_id"]
    batch = [_ticket(1), _ticket(2, external_id="EXT-7", priority="urgent"), _ticket(3, external_id="EXT-8"),
             _ticket(4, description="Screen is dark")]

    response, repeated = receive_batch(db, batch, "admin")

    assert not repeated and (response["created"], response["updated"]) == (3, 1)
    assert [(r["index"], r["action"]) for r in response["tickets"]] == [
        (0, "created"), (1, "updated"), (2, "created"), (3, "created")]
    assert response["tickets"][1]["ticket_id"] == known
    rows = {row[0]: row[1:] for row in _tickets(db)}
    assert len(rows) == 4
    assert rows[known] == ("EXT-7", "Ticket 2", "urgent", "")
    by_index = {r["index"]: rows[r["ticket_id"]] for r in response["tickets"]}
    assert by_index[0] == (None, "Ticket 1", "medium", "")  # the DAG's defaults
    assert by_index[2][:2] == ("EXT-8", "Ticket 3") and by_index[3][3] == "Screen is dark"


def test_a_batch_of_a_thousand_is_written_in_order(db):
    response, _ = receive_batch(db, [_ticket(n) for n in range(MAX_BATCH)], "admin")
    ids = [r["ticket_id"] for r in response["tickets"]]
    assert response["created"] == MAX_BATCH and ids == sorted(ids)
    subjects = dict(db.execute("SELECT id, subject FROM tickets").fetchall())
    assert all(subjects[ticket_id] == f"Ticket {n}" for n, ticket_id in enumerate(ids))


def test_one_bad_ticket_refuses_the_whole_batch_naming_each_index_and_field(db):
    batch = [_ticket(0), _ticket(1, subject="  "), _ticket(2), _ticket(3, priority="asap", colour="red"),
             _ticket(4, external_id="EXT-1"), _ticket(5, external_id="EXT-1"), "not an object"]
    with pytest.raises(InvalidBatch) as refused:
        receive_batch(db, batch, "admin", idempotency_key="key-1")
    assert refused.value.problems == [
        (1, "subject", "subject is required"),
        (3, "priority", "priority must be one of low, medium, high, urgent"),
        (3, "colour", "unknown field: colour"),
        (5, "external_id", "external_id 'EXT-1' is also ticket 4 of this batch"),
        (6, "", "a ticket must be a JSON object"),
    ]
    assert _tickets(db) == [] and db.execute("SELECT count(*) FROM intake_requests").fetchone()[0] == 0

    # The key was not spent: the corrected batch goes through with it.
    response, repeated = receive_batch(db, [_ticket(0)], "admin", idempotency_key="key-1")
    assert not repeated and response["created"] == 1


def test_the_dag_and_the_batch_refuse_the_same_tickets_with_the_same_words(db):
    from ticketflow.intake import InvalidTicket

    for bad in (_ticket(0, requester_email="ana@example"), _ticket(0, sub_category="x\x00"),
                {"department": "IT", "category": "X"}, _ticket(0, department=None), _ticket(0, subject="s" * 501)):
        with pytest.raises(InvalidTicket) as dag_refusal:
            receive_ticket(db, bad, "ticket_intake/bad")
        with pytest.raises(InvalidBatch) as batch_refusal:
            validate_batch([bad])
        assert str(dag_refusal.value) == "; ".join(message for _, _, message in batch_refusal.value.problems)
    assert _tickets(db) == []


def test_a_repeated_idempotency_key_returns_the_first_answer_and_writes_nothing(db):
    batch = [_ticket(1), _ticket(2, external_id="EXT-2")]
    first, repeated = receive_batch(db, batch, "admin", idempotency_key="import-2026-12-02")
    assert not repeated
    db.execute("UPDATE tickets SET subject = 'edited since'")  # a replay must not write the batch again

    again, repeated = receive_batch(db, [dict(reversed(t.items())) for t in batch], "admin",
                                    idempotency_key="import-2026-12-02")  # same JSON, other key order
    assert repeated and again == first
    assert [row[2] for row in _tickets(db)] == ["edited since", "edited since"]

    with pytest.raises(IdempotencyKeyReused, match="sent before with other tickets"):
        receive_batch(db, [_ticket(3)], "admin", idempotency_key="import-2026-12-02")
    assert len(_tickets(db)) == 2

    other_user, repeated = receive_batch(db, batch, "integration-bot", idempotency_key="import-2026-12-02")
    assert not repeated and other_user["created"] == 1 and other_user["updated"] == 1  # keys are per user


def test_the_same_key_sent_twice_at_once_writes_once(db, run_concurrently):
    batch = [_ticket(n) for n in range(50)]
    answers = run_concurrently(["first", "second"],
                               lambda conn, name: receive_batch(conn, batch, "admin", idempotency_key="race"))
    (one_answer, one_repeated), (other_answer, other_repeated) = answers.values()
    assert one_answer == other_answer and sorted([one_repeated, other_repeated]) == [False, True]
    assert db.execute("SELECT count(*) FROM tickets").fetchone()[0] == 50


def test_a_failure_while_writing_leaves_no_ticket_and_no_key(db):
    db.execute("""
        CREATE FUNCTION fail_ticket() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN IF NEW.subject = 'Ticket 2' THEN RAISE EXCEPTION 'simulated crash'; END IF; RETURN NEW; END $$;
        CREATE TRIGGER fail_ticket BEFORE INSERT ON tickets FOR EACH ROW EXECUTE FUNCTION fail_ticket();
    """)
    try:
        with pytest.raises(psycopg.errors.RaiseException):
            receive_batch(db, [_ticket(1), _ticket(2), _ticket(3)], "admin", idempotency_key="k")
        assert _tickets(db) == [] and db.execute("SELECT count(*) FROM intake_requests").fetchone()[0] == 0
    finally:
        db.execute("DROP TRIGGER fail_ticket ON tickets; DROP FUNCTION fail_ticket()")


def test_each_batch_wakes_assignment_once_at_commit(db, app_db_url):
    with closing(psycopg.connect(app_db_url, autocommit=True)) as listener:
        listener.execute("LISTEN ticketflow_tickets")
        receive_batch(db, [_ticket(n) for n in range(100)], "admin")
        woken = list(listener.notifies(timeout=2))
    assert [n.channel for n in woken] == ["ticketflow_tickets"]
