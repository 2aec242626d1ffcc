-- For each command the import runs on a DOL table: may the current role run it (privilege), does
-- row-level security let it through (superuser, BYPASSRLS, owner without FORCE), which policies
-- exist, and whether a permissive policy for the command (or ALL) applies to the role.
WITH t AS (
    SELECT c.oid, c.relowner, c.relforcerowsecurity, n.nspname, c.relname
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.oid = %(table)s::regclass
), me AS (
    SELECT r.rolname, r.rolsuper, r.rolbypassrls FROM pg_roles r WHERE r.rolname = current_user
)
SELECT command,
       me.rolname::text,
       has_table_privilege(t.oid, command),
       me.rolsuper OR me.rolbypassrls OR (pg_has_role(t.relowner, 'USAGE') AND NOT t.relforcerowsecurity),
       (SELECT string_agg(format('%%s (%%s for %%s)', p.policyname, p.cmd, array_to_string(p.roles, ',')), ', ' ORDER BY p.policyname)
          FROM pg_policies p WHERE p.schemaname = t.nspname AND p.tablename = t.relname),
       EXISTS (
           SELECT 1 FROM pg_policies p
           WHERE p.schemaname = t.nspname AND p.tablename = t.relname AND p.permissive = 'PERMISSIVE'
             AND p.cmd IN (command, 'ALL')
             AND ('public' = ANY (p.roles)
                  OR EXISTS (SELECT 1 FROM unnest(p.roles) r WHERE r <> 'public' AND pg_has_role(r, 'MEMBER')))
       )
FROM t, me, unnest(%(commands)s::text[]) AS command
