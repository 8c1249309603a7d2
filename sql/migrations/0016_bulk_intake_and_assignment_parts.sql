-- Tickets at volume. Bulk intake (POST /ticketflow/tickets) remembers each
-- Idempotency-Key it was sent with the request's hash and its answer, so a
-- repeat returns the first answer and writes nothing. Assignment runs as one
-- mapped task per group of roles: the run's audit row counts its parts, and
-- the part that finishes last closes it. Meanwhile each part adds its units to
-- a row of its own, so parts committing at once never queue on the run's row,
-- and moves those totals to the run's row when it ends.
-- depends: 0011_zone_names_postgresql_reads_as_abbreviations

CREATE TABLE intake_requests (
    requested_by    text NOT NULL,
    idempotency_key text NOT NULL,
    request_sha256  text NOT NULL,
    response        jsonb,
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (requested_by, idempotency_key)
);

COMMENT ON TABLE intake_requests IS
    'One row per Idempotency-Key a user sent to POST /ticketflow/tickets, written in the request''s own '
    'transaction: a refused or failed request leaves none. response is the answer a repeat gets back.';

ALTER TABLE automation_runs
    ADD COLUMN parts integer CHECK (parts > 0),
    ADD COLUMN parts_done integer[] NOT NULL DEFAULT '{}';

COMMENT ON COLUMN automation_runs.parts IS
    'A run done by several mapped tasks (NULL: one task): how many; parts_done lists those that finished, '
    'and the run is closed when every part has.';

CREATE TABLE automation_run_parts (
    dag_id    text NOT NULL,
    run_id    text NOT NULL,
    part      integer NOT NULL,
    processed integer NOT NULL DEFAULT 0,
    changed   integer NOT NULL DEFAULT 0,
    skipped   integer NOT NULL DEFAULT 0,
    details   jsonb NOT NULL DEFAULT '{}',
    PRIMARY KEY (dag_id, run_id, part)
);

COMMENT ON TABLE automation_run_parts IS
    'What a part of a running run has done and not yet added to its automation_runs row (it does when it ends).';

-- Adds up many units'' details at once, as ticketflow_merge_totals adds one.
CREATE AGGREGATE ticketflow_sum_totals(jsonb) (SFUNC = ticketflow_merge_totals, STYPE = jsonb, INITCOND = '{}');
