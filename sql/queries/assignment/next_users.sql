-- Round-robin over the users TTS named for a role: the least recently assigned
-- first (never assigned before anyone; ties in TTS's order), up to the limit.
-- The caller holds the role's advisory lock, so concurrent batches take turns
-- instead of handing out the same slot.
SELECT u AS user_id
FROM unnest(%(users)s::bigint[]) WITH ORDINALITY AS a (u, tts_order)
LEFT JOIN role_rotation r ON r.role_name = %(role)s AND r.user_id = a.u
ORDER BY r.last_turn NULLS FIRST, a.tts_order
LIMIT %(limit)s
