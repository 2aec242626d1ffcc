-- Single-column CHECK constraints and enum labels of the given table's columns: the values the
-- tool writes into a column are compared with them before any write.
SELECT a.attname, 'check' AS kind, con.conname AS name, pg_get_constraintdef(con.oid) AS definition, NULL::text[] AS labels
FROM pg_constraint con
JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = con.conkey[1]
WHERE con.conrelid = %(table)s::regclass AND con.contype = 'c' AND cardinality(con.conkey) = 1
UNION ALL
SELECT a.attname, 'enum', t.typname, NULL, array_agg(e.enumlabel ORDER BY e.enumsortorder)
FROM pg_attribute a
JOIN pg_type t ON t.oid = a.atttypid AND t.typtype = 'e'
JOIN pg_enum e ON e.enumtypid = t.oid
WHERE a.attrelid = %(table)s::regclass AND a.attnum > 0 AND NOT a.attisdropped
GROUP BY a.attname, t.typname
ORDER BY 1, 2
