-- A ticket that cannot get a task yet keeps its reason and is retried later,
-- with exponential backoff (30 s doubling, at most an hour).
UPDATE tickets
SET allocation_error = %(error)s,
    allocation_attempts = allocation_attempts + 1,
    next_allocation_at = clock_timestamp() + make_interval(secs => least(30 * power(2, allocation_attempts), 3600))
WHERE id = %(ticket_id)s
