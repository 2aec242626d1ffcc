-- Tables, partitioned tables, views and materialized views of the user schemas.
-- %(schemas)s NULL means every user schema.
SELECT n.nspname, c.relname, c.oid::bigint, c.relfilenode::bigint, c.relkind::text,
       c.reltuples::bigint, obj_description(c.oid, 'pg_class')
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'm')
  AND NOT c.relispartition
  -- the reorganization's compatibility views at old names, and the rows written through a FOLD view
  -- (plugins/ple/reorg/compat.py), are not the tables
  AND NOT (c.relkind = 'v' AND coalesce(obj_description(c.oid, 'pg_class'), '') LIKE 'ple\_ctb compat view:%%')
  AND NOT (c.relkind = 'r' AND coalesce(obj_description(c.oid, 'pg_class'), '') LIKE 'ple\_ctb compat writes:%%')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
  AND n.nspname NOT LIKE 'pg_temp%%'
  AND (%(schemas)s::text[] IS NULL OR n.nspname = ANY(%(schemas)s::text[]))
ORDER BY 1, 2
