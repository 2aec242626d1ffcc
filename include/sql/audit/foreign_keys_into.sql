-- Foreign keys that reference %(table)s: the referencing table (ARRAY[schema, name]: any name stays
-- one identifier each), its columns and the referenced
-- columns (in key order), and the ON DELETE rule (a no action, r restrict, c cascade, n set null,
-- d set default).
SELECT con.conname,
       ARRAY[n.nspname::text, c.relname::text],
       array(SELECT a.attname FROM unnest(con.conkey) WITH ORDINALITY k(attnum, i)
             JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum ORDER BY k.i)::text[],
       array(SELECT a.attname FROM unnest(con.confkey) WITH ORDINALITY k(attnum, i)
             JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.attnum ORDER BY k.i)::text[],
       con.confdeltype::text
FROM pg_constraint con
JOIN pg_class c ON c.oid = con.conrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE con.contype = 'f' AND con.confrelid = %(table)s::regclass
ORDER BY 1
