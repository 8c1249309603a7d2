-- Incoming tickets, written as one set: %(tickets)s is a JSON array of validated
-- tickets, each with its `ordinal` in the request. A ticket is created, or
-- updates the ticket that has its external_id. A ticket without an external_id
-- may carry an intake_key (the DAG run that brought it): a retry finds the ticket
-- its first try created instead of creating another. New ids are drawn up front,
-- so each created row is matched to its ordinal (RETURNING cannot name the
-- source row). The batch must not repeat an external_id (the caller refuses that).
-- One row per incoming ticket, in order: ordinal, ticket id, created.
-- The insert wakes assignment: tickets_notify sends a NOTIFY at commit.
WITH incoming AS MATERIALIZED (
    -- ids drawn after the sort: created tickets are numbered in the request's order
    SELECT arrived.*, nextval(pg_get_serial_sequence('tickets', 'id')) AS new_id
    FROM (SELECT t.*, known.id AS known_id
          FROM jsonb_to_recordset(%(tickets)s::jsonb) AS t (
              ordinal integer, external_id text, intake_key text, subject text, description text, department text,
              category text, sub_category text, priority text, requester_email text)
          LEFT JOIN tickets known ON known.intake_key = t.intake_key
          ORDER BY t.ordinal) AS arrived
),
written AS (
    INSERT INTO tickets AS k (id, external_id, intake_key, subject, description, department, category,
                              sub_category, priority, requester_email)
    SELECT new_id, external_id, intake_key, subject, description, department, category, sub_category, priority,
           requester_email
    FROM incoming
    WHERE known_id IS NULL
    ORDER BY ordinal
    ON CONFLICT (external_id) WHERE external_id IS NOT NULL DO UPDATE SET
        subject = EXCLUDED.subject, description = EXCLUDED.description, department = EXCLUDED.department,
        category = EXCLUDED.category, sub_category = EXCLUDED.sub_category, priority = EXCLUDED.priority,
        requester_email = EXCLUDED.requester_email, updated_at = clock_timestamp()
    RETURNING k.id, k.external_id, k.xmax = 0 AS created
)
SELECT i.ordinal, w.id, true FROM incoming i JOIN written w ON w.created AND w.id = i.new_id
UNION ALL
SELECT i.ordinal, w.id, false FROM incoming i JOIN written w ON NOT w.created AND w.external_id = i.external_id
UNION ALL
SELECT i.ordinal, i.known_id, true FROM incoming i WHERE i.known_id IS NOT NULL
ORDER BY 1
