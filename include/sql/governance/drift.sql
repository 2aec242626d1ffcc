-- Registry and catalog disagreeing, as the owner's drift audit reports it: registered tables that
-- do not exist, and base tables (outside the system schemas) that are not registered.
SELECT 'registered, not in the catalog' AS drift, format('%%s.%%s', r.table_schema, r.table_name) AS name
FROM ctb.table_registry r
WHERE to_regclass(format('%%I.%%I', r.table_schema, r.table_name)) IS NULL
UNION ALL
SELECT 'in the catalog, not registered', format('%%s.%%s', n.nspname, c.relname)
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
  AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') AND n.nspname NOT LIKE 'pg_temp%%'
  AND NOT EXISTS (SELECT 1 FROM ctb.table_registry r WHERE r.table_schema = n.nspname AND r.table_name = c.relname)
ORDER BY 1, 2
