-- Is a ticket waiting for a task now, and if not, in how many seconds is the next retry due?
-- A ticket another transaction holds (a manual create_task_for_ticket waiting on
-- TTS) is not work yet: counting it would start run after run that serve nothing.
SELECT EXISTS (SELECT 1 FROM tickets
               WHERE NOT is_task_allocated AND NOT is_recurring AND NOT archived
                 AND (next_allocation_at IS NULL OR next_allocation_at <= clock_timestamp())
               FOR SHARE SKIP LOCKED),
       extract(epoch FROM (SELECT min(next_allocation_at) FROM tickets
                           WHERE NOT is_task_allocated AND NOT is_recurring AND NOT archived)
                          - clock_timestamp())
