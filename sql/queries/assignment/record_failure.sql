-- A ticket that cannot get a task yet keeps its reason and is retried later,
-- with exponential backoff (30 s doubling, at most an hour). The exponent is
-- capped before power(): 2^attempts overflows a double after 1023 attempts, about
-- 42 days of hourly retries for a ticket no workflow serves.
UPDATE tickets
SET allocation_error = %(error)s,
    allocation_attempts = allocation_attempts + 1,
    next_allocation_at = clock_timestamp() + make_interval(secs => least(30 * power(2, least(allocation_attempts, 7)), 3600))
WHERE id = %(ticket_id)s
