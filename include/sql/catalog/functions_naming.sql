-- Functions whose source text names one of %(tables)s (schema.table): a SET SCHEMA or RENAME does
-- not rewrite function bodies: they resolve the old name when they run (the compatibility view
-- at it, plugins/ple/reorg/compat.py, or nothing).
SELECT p.oid::regprocedure::text AS function, t.name AS table_name
FROM pg_proc p
JOIN pg_namespace n ON n.oid = p.pronamespace
CROSS JOIN unnest(%(tables)s::text[]) AS t(name)
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND p.prosrc ~* ('\m' || replace(t.name, '.', '\s*\.\s*') || '\M')
ORDER BY 1, 2
