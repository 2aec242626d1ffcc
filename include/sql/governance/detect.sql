-- The owner's CTB governance layer, if this database has it: the registry table's columns and the
-- enabled event triggers whose function reads it (the DDL gate: CREATE/ALTER/DROP TABLE refused
-- for a table the registry does not list, ALTER refused for one it marks frozen).
SELECT (SELECT array_agg(a.attname::text ORDER BY a.attnum)
        FROM pg_attribute a
        WHERE a.attrelid = to_regclass('ctb.table_registry') AND a.attnum > 0 AND NOT a.attisdropped) AS columns,
       (SELECT array_agg(e.evtname::text ORDER BY e.evtname)
        FROM pg_event_trigger e
        JOIN pg_proc p ON p.oid = e.evtfoid
        WHERE e.evtenabled <> 'D' AND p.prosrc ILIKE '%%table_registry%%') AS triggers
WHERE to_regclass('ctb.table_registry') IS NOT NULL
