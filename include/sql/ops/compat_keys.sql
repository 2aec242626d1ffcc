-- A table's unique indexes on plain columns (p: its primary key, u: any other) and its foreign keys
-- (f): name, kind, columns, referenced table, referenced columns. What a FOLD compatibility view
-- checks an INSERT against, as the table did (plugins/ple/reorg/compat.py).
SELECT i.indexrelid::regclass::text, CASE WHEN i.indisprimary THEN 'p' ELSE 'u' END,
       ARRAY(SELECT a.attname::text FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(n, o)
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n ORDER BY k.o),
       NULL::text, ARRAY[]::text[]
FROM pg_index i
WHERE i.indrelid = %(oid)s AND i.indisunique AND i.indexprs IS NULL AND i.indpred IS NULL
UNION ALL
SELECT c.conname::text, 'f',
       ARRAY(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY AS k(n, o)
             JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.o),
       (SELECT format('%%s.%%s', n.nspname, r.relname) FROM pg_class r JOIN pg_namespace n ON n.oid = r.relnamespace
        WHERE r.oid = c.confrelid),
       ARRAY(SELECT a.attname::text FROM unnest(c.confkey) WITH ORDINALITY AS k(n, o)
             JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n ORDER BY k.o)
FROM pg_constraint c
WHERE c.conrelid = %(oid)s AND c.contype = 'f'
ORDER BY 1
