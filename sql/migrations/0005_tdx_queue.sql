-- TDX report queue: when each action row was claimed, the indexes the queue
-- reads by, the seed's two monitoring views, and the shared TDX token cache.
-- depends: 0004_task_assignment

ALTER TABLE meta.daemon_action_log
    ADD COLUMN claimed_at timestamptz,
    ADD COLUMN dag_run_id text;

COMMENT ON COLUMN meta.daemon_action_log.status IS
    'pending: claimed, TDX may or may not have acted (reconciled by looking at the ticket before acting again); '
    'completed | skipped (nothing to do) | failed (TDX refused; cleared by clear_failed_actions to retry).';

CREATE INDEX daemon_action_log_unsettled ON meta.daemon_action_log (ticket_id) WHERE status IN ('pending', 'failed');
CREATE INDEX daemon_action_log_executed ON meta.daemon_action_log (executed_at DESC);

-- The seed's monitoring views, same names and meaning.
CREATE VIEW meta.daemon_recent_activity AS
SELECT log_id, ticket_id, action_type, action_id, status, executed_at, error_message, metadata, dag_run_id
FROM meta.daemon_action_log
WHERE executed_at > now() - interval '24 hours'
ORDER BY executed_at DESC;

CREATE VIEW meta.daemon_activity_summary AS
SELECT action_type, status, count(*) AS actions, count(DISTINCT ticket_id) AS tickets,
       min(executed_at) AS first_executed_at, max(executed_at) AS last_executed_at
FROM meta.daemon_action_log
GROUP BY action_type, status;

-- One TDX login shared by every task process. The token is stored encrypted
-- with a key derived from the WebServicesKey, so the table is worth nothing
-- to a reader who does not already hold that key.
CREATE TABLE meta.tdx_token_cache (
    account          text PRIMARY KEY,
    token_ciphertext bytea NOT NULL,
    expires_at       timestamptz NOT NULL,
    saved_at         timestamptz NOT NULL DEFAULT now()
);
