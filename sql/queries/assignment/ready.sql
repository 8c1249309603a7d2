-- Is a ticket waiting for a task now, and if not, in how many seconds is the next retry due?
SELECT EXISTS (SELECT 1 FROM tickets
               WHERE NOT is_task_allocated AND NOT is_recurring AND NOT archived
                 AND (next_allocation_at IS NULL OR next_allocation_at <= clock_timestamp())),
       extract(epoch FROM (SELECT min(next_allocation_at) FROM tickets
                           WHERE NOT is_task_allocated AND NOT is_recurring AND NOT archived)
                          - clock_timestamp())
