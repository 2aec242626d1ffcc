-- Indexes and owned sequences of a table (they move with it on SET SCHEMA and may need a rename
-- to keep their names unique in the target schema and in step with the table's new name).
SELECT 'index' AS kind, i.relname
FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
WHERE x.indrelid = %(oid)s
UNION ALL
SELECT 'sequence', s.relname
FROM pg_depend d JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
WHERE d.refobjid = %(oid)s AND d.classid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
ORDER BY 1, 2
