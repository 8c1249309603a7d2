-- The users just assigned take one new turn together: they are now the most recently assigned.
INSERT INTO role_rotation AS r (role_name, user_id, last_turn, assignments)
SELECT %(role)s, u, (SELECT nextval('role_rotation_turn')), 1 FROM unnest(%(users)s::bigint[]) AS u
ON CONFLICT (role_name, user_id) DO UPDATE SET last_turn = EXCLUDED.last_turn, assignments = r.assignments + 1
