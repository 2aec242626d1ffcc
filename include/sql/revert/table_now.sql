-- A table's schema and name now, found by OID wherever it has moved; no row if it is gone, or if
-- %(column)s is given and the table no longer has that column (dropped or renamed).
SELECT n.nspname, c.relname
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.oid = %(oid)s
  AND (%(column)s::text IS NULL
       OR EXISTS (SELECT 1 FROM pg_attribute a
                  WHERE a.attrelid = c.oid AND a.attname = %(column)s AND NOT a.attisdropped))
