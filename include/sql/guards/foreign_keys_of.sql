-- The foreign keys of the given table (the references its own rows make): the columns, the
-- referenced table and its columns in the same order. A merge's rows are checked against them.
SELECT con.conname,
       array_agg(a.attname::text ORDER BY k.ord) AS columns,
       format('%%I.%%I', rn.nspname, rc.relname) AS referenced,
       array_agg(ra.attname::text ORDER BY k.ord) AS referenced_columns,
       con.confmatchtype = 'f' AS match_full
FROM pg_constraint con
CROSS JOIN LATERAL unnest(con.conkey, con.confkey) WITH ORDINALITY AS k(attnum, refnum, ord)
JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum
JOIN pg_attribute ra ON ra.attrelid = con.confrelid AND ra.attnum = k.refnum
JOIN pg_class rc ON rc.oid = con.confrelid
JOIN pg_namespace rn ON rn.oid = rc.relnamespace
WHERE con.conrelid = %(table)s::regclass AND con.contype = 'f'
GROUP BY con.oid, con.conname, rn.nspname, rc.relname, con.confmatchtype
ORDER BY con.conname
