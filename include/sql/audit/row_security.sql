-- Would row-level security hide rows of %(table)s from the current role for %(command)s
-- (r SELECT, a INSERT, w UPDATE, d DELETE)? True when RLS applies to this role and no policy
-- covers the command: the statement would then change nothing, silently.
SELECT c.relrowsecurity
       AND NOT (r.rolsuper OR r.rolbypassrls)
       AND (c.relforcerowsecurity OR NOT pg_has_role(current_user, c.relowner, 'USAGE'))
       AND NOT EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid AND p.polcmd::text IN (%(command)s, '*'))
FROM pg_class c, pg_roles r
WHERE c.oid = %(table)s::regclass AND r.rolname = current_user
