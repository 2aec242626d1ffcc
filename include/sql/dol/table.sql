-- A DOL table as it stands: row-level security and owner (NULL row: the table does not exist).
SELECT c.relrowsecurity, c.relforcerowsecurity, pg_get_userbyid(c.relowner)
FROM pg_class c
WHERE c.oid = to_regclass(%(table)s) AND c.relkind IN ('r', 'p')
