-- Row-level security of the given tables: enabled, forced, whether it applies to the connecting
-- role right now (row_security_active), and the policies by command.
SELECT n.nspname || '.' || c.relname AS table_name, c.relrowsecurity, c.relforcerowsecurity,
       row_security_active(c.oid) AS active_for_me,
       coalesce((SELECT array_agg(pol.polname || ' (' || pol.polcmd::text || ')' ORDER BY pol.polname)
                 FROM pg_policy pol WHERE pol.polrelid = c.oid), '{}') AS policies,
       current_user::text
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname || '.' || c.relname = ANY(%(tables)s::text[]) AND c.relrowsecurity
ORDER BY 1
