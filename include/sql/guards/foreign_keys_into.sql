-- Foreign keys of other tables that reference the given tables (schema.table), with their rules.
SELECT src_n.nspname || '.' || src.relname AS referencing, con.conname,
       ref_n.nspname || '.' || ref.relname AS referenced, pg_get_constraintdef(con.oid) AS definition
FROM pg_constraint con
JOIN pg_class src ON src.oid = con.conrelid
JOIN pg_namespace src_n ON src_n.oid = src.relnamespace
JOIN pg_class ref ON ref.oid = con.confrelid
JOIN pg_namespace ref_n ON ref_n.oid = ref.relnamespace
WHERE con.contype = 'f' AND ref_n.nspname || '.' || ref.relname = ANY(%(tables)s::text[])
  AND con.conrelid <> con.confrelid
ORDER BY 1, 2
