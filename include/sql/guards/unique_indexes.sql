-- Unique indexes of a table other than its primary key (merge.lint counts that one) and the
-- tool's provenance index: each key as PostgreSQL prints it (a column name or an expression), the
-- predicate of a partial index,
-- whether NULLs count as equal (NULLS NOT DISTINCT, PostgreSQL 15+; read through to_jsonb so the
-- query runs on older servers) and every column the index reads (keys, expressions, predicate).
SELECT ic.relname::text AS index_name,
       (SELECT array_agg(pg_get_indexdef(i.indexrelid, k, true) ORDER BY k)
        FROM generate_series(1, i.indnkeyatts) AS k) AS keys,
       pg_get_expr(i.indpred, i.indrelid) AS predicate,
       coalesce((to_jsonb(i) ->> 'indnullsnotdistinct')::boolean, false) AS nulls_not_distinct,
       coalesce((SELECT array_agg(DISTINCT a.attname::text) FROM pg_attribute a
                 WHERE a.attrelid = i.indrelid AND a.attnum > 0
                   AND (a.attnum = ANY (i.indkey::int2[])
                        OR EXISTS (SELECT 1 FROM pg_depend dep
                                   WHERE dep.classid = 'pg_class'::regclass AND dep.objid = i.indexrelid
                                     AND dep.refobjid = i.indrelid AND dep.refobjsubid = a.attnum))), '{}') AS reads
FROM pg_index i
JOIN pg_class ic ON ic.oid = i.indexrelid
WHERE i.indrelid = %(table)s::regclass AND i.indisunique AND NOT i.indisprimary
  AND ic.relname NOT LIKE '%%ctb_provenance'
ORDER BY 1
