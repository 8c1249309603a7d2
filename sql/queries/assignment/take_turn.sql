-- The users just assigned take their turns one after another, in the order they
-- were chosen: the first chosen becomes the least recent of them, so with several
-- users per task the rotation still goes round the whole role (as the seed's index did).
INSERT INTO role_rotation AS r (role_name, user_id, last_turn, assignments)
SELECT %(role)s, u, nextval('role_rotation_turn'), 1
FROM unnest(%(users)s::bigint[]) WITH ORDINALITY AS a (u, chosen_order)
ORDER BY chosen_order
ON CONFLICT (role_name, user_id) DO UPDATE SET last_turn = EXCLUDED.last_turn, assignments = r.assignments + 1
