-- tickets_unallocated (0001) is covered by tickets_waiting_for_task (0004):
-- every reader of unallocated tickets also excludes templates and archived
-- tickets, so only the narrower index is used. The wider one still cost an
-- entry for every new ticket and for every advance of a recurring template.
-- depends: 0006_outbox_message_key

DROP INDEX IF EXISTS tickets_unallocated;
