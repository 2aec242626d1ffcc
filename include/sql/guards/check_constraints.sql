-- Every CHECK constraint of the given table (any shape, NOT VALID ones too: PostgreSQL enforces
-- those on new rows), with its expression as PostgreSQL prints it (unqualified column names), the
-- columns it reads (none for a CHECK that reads no column) and whether it reads the whole row: the
-- tool evaluates each one over the rows a merge would write.
SELECT con.conname,
       pg_get_expr(con.conbin, con.conrelid) AS expression,
       coalesce(array_agg(a.attname::text ORDER BY a.attnum) FILTER (WHERE a.attnum > 0), '{}') AS columns,
       0 = ANY (con.conkey) AS whole_row
FROM pg_constraint con
LEFT JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = ANY (con.conkey)
WHERE con.conrelid = %(table)s::regclass AND con.contype = 'c'
GROUP BY con.oid, con.conname, con.conbin, con.conrelid, con.conkey
ORDER BY con.conname
