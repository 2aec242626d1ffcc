-- Columns of the given relations, in order, with their base type (schema, name, category) for
-- composing casts through psycopg.sql.Identifier. max_length is the varchar/char limit, if any.
SELECT a.attrelid::bigint, a.attname, format_type(a.atttypid, a.atttypmod), a.atttypid::bigint,
       a.attnotnull, a.atthasdef, a.attgenerated <> '' OR a.attidentity <> '',
       CASE WHEN a.atttypid IN ('varchar'::regtype, 'bpchar'::regtype) AND a.atttypmod > 4
            THEN a.atttypmod - 4 END,
       tn.nspname, t.typname, t.typcategory::text
FROM pg_attribute a
JOIN pg_type t ON t.oid = a.atttypid
JOIN pg_namespace tn ON tn.oid = t.typnamespace
WHERE a.attrelid = ANY(%(oids)s::oid[]) AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attrelid, a.attnum
