-- Single-column foreign keys that reference %(table)s (%(column)s): (table, column, whether the
-- referencing column is alone a primary key or unique key of its table).
SELECT n.nspname || '.' || c.relname, a.attname,
       EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = con.conrelid AND i.indisunique
               AND i.indnkeyatts = 1 AND i.indkey[0] = con.conkey[1])
FROM pg_constraint con
JOIN pg_class c ON c.oid = con.conrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = con.conkey[1]
JOIN pg_attribute r ON r.attrelid = con.confrelid AND r.attnum = con.confkey[1]
WHERE con.contype = 'f' AND con.confrelid = %(table)s::regclass AND r.attname = %(column)s
  AND cardinality(con.conkey) = 1
ORDER BY 1
