-- Demo data for `make run`: loaded once, into an empty database.
-- Times are relative to the load so the lifecycle DAGs have work on the first run.

INSERT INTO workflows (name, department, category, sub_category, is_published, status, end_logic) VALUES
    ('Laptop repair',        'IT',         'Hardware', 'Laptop', true,  'deployed', 'notification'),
    ('Hardware triage',      'IT',         'Hardware', NULL,     true,  'deployed', 'none'),
    ('Room maintenance',     'Facilities', 'Rooms',    NULL,     true,  'deployed', 'notification'),
    ('Software (draft)',     'IT',         'Software', NULL,     false, 'draft',    'none');

INSERT INTO steps (workflow_id, name, role_name, step_order)
SELECT w.id, s.name, s.role_name, s.step_order
FROM workflows w
JOIN (VALUES
    ('Laptop repair',    'Diagnose',        'IT Support Technician',  1),
    ('Laptop repair',    'Repair',          'IT Support Technician',  2),
    ('Laptop repair',    'Sign-off',        'Service Desk Lead',      3),
    ('Hardware triage',  'Triage',          'IT Support Technician',  1),
    ('Room maintenance', 'Inspect',         'Facilities Coordinator', 1),
    ('Room maintenance', 'Fix',             'Facilities Coordinator', 2)
) AS s (workflow, name, role_name, step_order) ON s.workflow = w.name;

INSERT INTO tickets (external_id, subject, description, department, category, sub_category, priority, requester_email) VALUES
    ('DEMO-1', 'Laptop will not boot',        'Black screen after update', 'IT',         'Hardware', 'Laptop', 'high',   'ana@example.com'),
    ('DEMO-2', 'Second monitor flickers',     '',                          'IT',         'Hardware', 'Monitor','medium', 'ben@example.com'),
    ('DEMO-3', 'Meeting room B light broken', '',                          'Facilities', 'Rooms',    NULL,     'low',    'cy@example.com');

INSERT INTO tickets (subject, description, department, category, priority, requester_email,
                     is_recurring, recurrence_interval, recurrence_every, recurrence_timezone,
                     recurrence_start, next_occurrence) VALUES
    ('Weekly server room check', 'Walk through and log temperatures', 'IT', 'Hardware', 'medium', 'ops@example.com',
     true, 'weekly', 1, 'America/Toronto',
     date_trunc('hour', now()) + interval '1 hour', date_trunc('hour', now()) + interval '1 hour');

INSERT INTO customers (username, first_name, last_name, email) VALUES
    ('ana', 'Ana', 'Silva', 'ana@example.com'),
    ('ben', '',    '',      'ben@example.com');

INSERT INTO reservations (customer_id, start_time, status)
SELECT c.id, now() + r.start_offset, r.status
FROM customers c
JOIN (VALUES
    ('ana', interval '-2 hours', 'confirmed'),
    ('ana', interval '1 day',    'pending'),
    ('ben', interval '2 days',   'confirmed')
) AS r (username, start_offset, status) ON r.username = c.username;

INSERT INTO events (title, start_date, end_date, status) VALUES
    ('Onboarding session (ended)', now() - interval '3 hours', now() - interval '1 hour', 'ongoing'),
    ('Patch night (ended)',        now() - interval '2 days',  now() - interval '2 days' + interval '2 hours', 'confirmed'),
    ('Town hall',                  now() + interval '1 day',   now() + interval '1 day 2 hours', 'confirmed'),
    ('Planning (draft)',           now() + interval '3 days',  NULL, 'draft');
