-- The owner's drift audit (company-lifecycle-cl scripts/ctb-drift-audit.sh, 14 classes) for the
-- classes the catalog and ctb.table_registry can answer, each named as the owner names it:
-- (class, name, detail). Read from pg_catalog rather than information_schema (which shows only what
-- the role may touch). The classes that need the owner's column_registry.yml (ORPHAN_TABLE,
-- GHOST_TABLE, REGISTRY_DESYNC, COLUMN_DRIFT) are not here: that file is not in the database.
-- VENDOR_REF_VIOLATION reads ctb.promotion_paths, which may not exist: governance/vendor_refs.sql.
WITH base AS (  -- Surface A: the owner's "DB tables" (BASE TABLE, schema ctb left out as the owner does)
    SELECT n.nspname AS table_schema, c.relname AS table_name
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p')
      AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast', 'ctb') AND n.nspname NOT LIKE 'pg\_temp%%'
), governed AS (  -- registered tables that exist (any relation of that name, as the owner checks)
    SELECT r.table_schema, r.table_name, r.leaf_type, c.oid
    FROM ctb.table_registry r
    JOIN pg_namespace n ON n.nspname = r.table_schema
    JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = r.table_name AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
), json_columns AS (
    SELECT g.table_schema, g.table_name, g.leaf_type, a.attname::text AS column_name
    FROM governed g
    JOIN pg_attribute a ON a.attrelid = g.oid AND a.attnum > 0 AND NOT a.attisdropped
    WHERE a.atttypid IN ('json'::regtype, 'jsonb'::regtype)
)
SELECT 'ROGUE_TABLE' AS class, format('%%s.%%s', b.table_schema, b.table_name) AS name,
       'exists in DB but NOT in ctb.table_registry' AS detail
FROM base b
WHERE NOT EXISTS (SELECT 1 FROM ctb.table_registry r WHERE r.table_schema = b.table_schema AND r.table_name = b.table_name)
UNION ALL
SELECT 'PHANTOM_TABLE', format('%%s.%%s', r.table_schema, r.table_name), 'in ctb.table_registry but NOT in DB'
FROM ctb.table_registry r
WHERE NOT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE n.nspname = r.table_schema AND c.relname = r.table_name AND c.relkind IN ('r', 'p'))
UNION ALL
SELECT 'IMMUTABILITY_MISSING', format('%%s.%%s', g.table_schema, g.table_name), 'no trg_ctb_immutability_* trigger (§8)'
FROM governed g
WHERE g.leaf_type <> 'ERROR'
  AND NOT EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgrelid = g.oid AND NOT t.tgisinternal
                  AND t.tgname LIKE 'trg\_ctb\_immutability\_%%')
UNION ALL
SELECT 'RAW_COLUMNS_MISSING', format('%%s.%%s', g.table_schema, g.table_name), format('missing required column %%L (§8.2)', req)
FROM governed g
CROSS JOIN unnest(ARRAY['ingestion_batch_id', 'vendor_source', 'bridge_version', 'supersedes_batch_id', 'created_at']) AS req
WHERE g.leaf_type = 'STAGING'
  AND NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = g.oid AND a.attname = req AND NOT a.attisdropped)
UNION ALL
SELECT 'RAW_VIEW_MISSING', format('%%s.%%s', g.table_schema, g.table_name),
       format('no companion view %%s.%%s_active (§8.4)', g.table_schema, g.table_name)
FROM governed g
WHERE g.leaf_type = 'STAGING'
  AND NOT EXISTS (SELECT 1 FROM pg_class v JOIN pg_namespace n ON n.oid = v.relnamespace
                  WHERE n.nspname = g.table_schema AND v.relname = g.table_name || '_active' AND v.relkind = 'v')
UNION ALL
SELECT 'JSON_IN_RAW', format('%%s.%%s', j.table_schema, j.table_name), format('JSON column %%I in a RAW table (§9.3)', j.column_name)
FROM json_columns j
WHERE j.leaf_type = 'STAGING' AND j.table_name NOT LIKE 'vendor\_claude\_%%'
UNION ALL
SELECT 'JSON_IN_DOWNSTREAM', format('%%s.%%s', j.table_schema, j.table_name),
       format('JSON column %%I in a %%s table (§9.4)', j.column_name, j.leaf_type)
FROM json_columns j
WHERE j.leaf_type IN ('CANONICAL', 'MV', 'REGISTRY', 'ERROR')
UNION ALL
SELECT 'BRIDGE_NO_VERSION', format('ctb.%%s', p.proname), 'missing BRIDGE_VERSION constant (§9.2)'
FROM pg_proc p
JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = 'ctb' AND p.proname LIKE '%%bridge%%' AND p.proname NOT LIKE 'validate\_%%'
  AND p.prosrc NOT LIKE '%%BRIDGE_VERSION CONSTANT TEXT%%'
UNION ALL
SELECT 'SUPERUSER_CONNECTION', current_user::text, 'connected as a superuser: the governance layer is inert for it (§10)'
FROM pg_roles
WHERE rolname = current_user AND rolsuper
UNION ALL  -- not one of the owner's classes: the owner's Surface A leaves schema ctb out, so its own
           -- unregistered governance tables appear in none of them
SELECT 'UNREGISTERED_CTB_TABLE', format('ctb.%%s', c.relname),
       'in schema ctb and NOT in ctb.table_registry (the owner''s audit does not look at schema ctb)'
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'ctb' AND c.relkind IN ('r', 'p')
  AND NOT EXISTS (SELECT 1 FROM ctb.table_registry r WHERE r.table_schema = 'ctb' AND r.table_name = c.relname)
ORDER BY 1, 2, 3
