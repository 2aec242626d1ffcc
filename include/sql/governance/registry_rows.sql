-- The owner's registry as it stands (ctb.table_registry), for reconcile's evidence about tables
-- that are gone: the registry remembers what existed when it was written.
SELECT format('%%s.%%s', table_schema, table_name) AS name, to_jsonb(r.*) AS entry
FROM ctb.table_registry r
