-- Primary keys and unique constraints/indexes (valid, non-partial) of the given relations.
SELECT con.conrelid::bigint, con.contype::text,
       array_agg(a.attname ORDER BY k.ord) AS columns
FROM pg_constraint con
CROSS JOIN LATERAL unnest(con.conkey) WITH ORDINALITY AS k(attnum, ord)
JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum
WHERE con.conrelid = ANY(%(oids)s::oid[]) AND con.contype IN ('p', 'u')
GROUP BY con.conrelid, con.oid, con.contype
UNION ALL
SELECT i.indrelid::bigint, 'u', array_agg(a.attname ORDER BY k.ord)
FROM pg_index i
CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
WHERE i.indrelid = ANY(%(oids)s::oid[]) AND i.indisunique AND i.indisvalid AND i.indpred IS NULL
  AND NOT EXISTS (SELECT 1 FROM pg_constraint con WHERE con.conindid = i.indexrelid)
GROUP BY i.indrelid, i.indexrelid
