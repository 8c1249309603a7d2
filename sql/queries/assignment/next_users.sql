-- Round-robin over the users TTS named for a role: the least recently assigned
-- first (never assigned before anyone; ties in TTS's order), up to the limit.
-- A user TTS names twice (say, through two groups) counts once.
-- The caller holds the role's advisory lock, so concurrent batches take turns
-- instead of handing out the same slot.
SELECT a.u AS user_id
FROM (SELECT u, min(tts_order) AS tts_order
      FROM unnest(%(users)s::bigint[]) WITH ORDINALITY AS named (u, tts_order)
      GROUP BY u) AS a
LEFT JOIN role_rotation r ON r.role_name = %(role)s AND r.user_id = a.u
ORDER BY r.last_turn NULLS FIRST, a.tts_order
LIMIT %(limit)s
