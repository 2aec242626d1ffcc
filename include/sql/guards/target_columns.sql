-- What an INSERT gives each column of the given table that it does not name, and what it checks
-- beyond attnotnull: the DEFAULT expression (none for a generated or identity column), the
-- generation expression of a STORED generated column and the columns it reads, whether it is an
-- identity column, whether its type is a domain that refuses NULL (at any level of a domain over
-- a domain: attnotnull is false for those), and the type under all its domains (a NULL cast to it
-- is counted, not refused).
WITH RECURSIVE chain AS (
    SELECT a.attnum, t.oid, t.typtype, t.typnotnull, t.typbasetype, t.typname::text AS domain_name, 0 AS depth
    FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
    WHERE a.attrelid = %(table)s::regclass AND a.attnum > 0 AND NOT a.attisdropped
  UNION ALL
    SELECT c.attnum, t.oid, t.typtype, t.typnotnull, t.typbasetype, t.typname::text, c.depth + 1
    FROM chain c JOIN pg_type t ON t.oid = c.typbasetype
    WHERE c.typtype = 'd'
)
SELECT a.attname::text,
       CASE WHEN a.attgenerated = '' THEN pg_get_expr(d.adbin, d.adrelid) END AS default_expression,
       CASE WHEN a.attgenerated <> '' THEN pg_get_expr(d.adbin, d.adrelid) END AS generation_expression,
       coalesce((SELECT array_agg(r.attname::text ORDER BY r.attnum) FROM pg_depend dep
                 JOIN pg_attribute r ON r.attrelid = dep.refobjid AND r.attnum = dep.refobjsubid
                 WHERE dep.classid = 'pg_class'::regclass AND dep.objid = a.attrelid AND dep.objsubid = a.attnum
                   AND dep.refclassid = 'pg_class'::regclass AND dep.refobjid = a.attrelid
                   AND dep.refobjsubid > 0 AND dep.refobjsubid <> a.attnum), '{}') AS generation_reads,
       a.attidentity <> '' AS identity,
       (SELECT c.domain_name FROM chain c WHERE c.attnum = a.attnum AND c.typtype = 'd' AND c.typnotnull
        ORDER BY c.depth LIMIT 1) AS not_null_domain,
       (SELECT bn.nspname::text FROM chain c JOIN pg_type bt ON bt.oid = c.oid
        JOIN pg_namespace bn ON bn.oid = bt.typnamespace WHERE c.attnum = a.attnum AND c.typtype <> 'd') AS base_schema,
       (SELECT bt.typname::text FROM chain c JOIN pg_type bt ON bt.oid = c.oid
        WHERE c.attnum = a.attnum AND c.typtype <> 'd') AS base_name
FROM pg_attribute a
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attrelid = %(table)s::regclass AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
