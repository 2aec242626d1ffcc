-- The registry's rows for the given schema-qualified names: name, leaf type, frozen.
SELECT format('%%s.%%s', table_schema, table_name) AS name, leaf_type, coalesce(is_frozen, false) AS frozen
FROM ctb.table_registry
WHERE format('%%s.%%s', table_schema, table_name) = ANY (%(names)s)
