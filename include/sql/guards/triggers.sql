-- User triggers on the given tables (schema.table), with the source of their function, so the
-- guards can say what each would do to the tool's statements. The tool's own freeze trigger is left out.
SELECT n.nspname || '.' || c.relname AS table_name, t.tgname, t.tgtype::int, t.tgenabled::text,
       p.oid::regprocedure::text AS function, p.prosrc
FROM pg_trigger t
JOIN pg_class c ON c.oid = t.tgrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_proc p ON p.oid = t.tgfoid
WHERE NOT t.tgisinternal
  AND t.tgname <> 'ple_ctb_frozen'
  AND n.nspname || '.' || c.relname = ANY(%(tables)s::text[])
ORDER BY 1, 2
