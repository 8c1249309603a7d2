-- Each outbox message's own key, the local part of its Message-ID: the same on
-- every attempt (a resend is recognisably the same message) and unique across
-- databases and deployments (a row id starts again after a reset; a UUID does not).
-- depends: 0005_tdx_queue

ALTER TABLE email_outbox ADD COLUMN message_key uuid NOT NULL DEFAULT gen_random_uuid();
