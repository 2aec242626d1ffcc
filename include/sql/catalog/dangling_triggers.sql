-- Enabled triggers whose function writes into or reads from a schema-qualified table that does not
-- exist (dropped since the function was written): every statement that fires them fails. A name
-- counts when its schema exists (NEW.x, OLD.x and record fields never match a schema).
SELECT DISTINCT n.nspname || '.' || c.relname AS table_name, t.tgname::text, p.oid::regprocedure::text AS function,
       lower(m[1]) || '.' || lower(m[2]) AS missing
FROM pg_trigger t
JOIN pg_class c ON c.oid = t.tgrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_proc p ON p.oid = t.tgfoid
CROSS JOIN LATERAL regexp_matches(
    p.prosrc, '(?:insert\s+into|update|delete\s+from|from|join)\s+"?([a-z_][a-z0-9_]*)"?\s*\.\s*"?([a-z_][a-z0-9_]*)"?', 'gi'
) AS m
WHERE NOT t.tgisinternal AND t.tgenabled <> 'D'
  AND EXISTS (SELECT 1 FROM pg_namespace s WHERE s.nspname = lower(m[1]))
  AND to_regclass(format('%%I.%%I', lower(m[1]), lower(m[2]))) IS NULL
ORDER BY 1, 2, 4
