-- Every CHECK constraint of the given table (any shape, NOT VALID ones too: PostgreSQL enforces
-- those on new rows), with its expression as PostgreSQL prints it (unqualified column names) and
-- the columns it reads: the tool evaluates each one over the rows a merge would write.
SELECT con.conname,
       pg_get_expr(con.conbin, con.conrelid) AS expression,
       array_agg(a.attname::text ORDER BY a.attnum) AS columns
FROM pg_constraint con
JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = ANY (con.conkey)
WHERE con.conrelid = %(table)s::regclass AND con.contype = 'c'
GROUP BY con.oid, con.conname, con.conbin, con.conrelid
ORDER BY con.conname
