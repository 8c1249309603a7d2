-- Is a queued message due now, and if not, in how many seconds is the next one?
SELECT EXISTS (SELECT 1 FROM email_outbox WHERE status = 'queued' AND next_attempt_at <= clock_timestamp()),
       extract(epoch FROM (SELECT min(next_attempt_at) FROM email_outbox WHERE status = 'queued')
                          - clock_timestamp())
