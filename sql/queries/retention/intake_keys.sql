-- One batch of bulk intake's Idempotency-Keys used before the cut-off, in key
-- order after (%(after_user)s, %(after_key)s). A key only has to outlive the
-- retries of the request that sent it (clients retry within minutes or hours);
-- once it is gone, the same key and tickets sent again are a new request,
-- which upserts by external_id as any request does. Returns the keys deleted.
WITH doomed AS (
    SELECT r.requested_by, r.idempotency_key
    FROM intake_requests r
    WHERE (r.requested_by, r.idempotency_key) > (%(after_user)s, %(after_key)s)
      AND r.created_at < %(cutoff)s
    ORDER BY r.requested_by, r.idempotency_key
    LIMIT %(batch_size)s
    FOR UPDATE SKIP LOCKED
)
DELETE FROM intake_requests r
USING doomed d
WHERE (r.requested_by, r.idempotency_key) = (d.requested_by, d.idempotency_key)
RETURNING r.requested_by, r.idempotency_key
