-- Views and materialized views that read one of %(tables)s (schema.table).
SELECT DISTINCT dv.oid::regclass::text AS view_name, t.name AS table_name
FROM unnest(%(tables)s::text[]) AS t(name)
JOIN pg_class tc ON tc.oid = to_regclass(t.name)
JOIN pg_depend d ON d.refobjid = tc.oid AND d.classid = 'pg_rewrite'::regclass
JOIN pg_rewrite r ON r.oid = d.objid
JOIN pg_class dv ON dv.oid = r.ev_class AND dv.oid <> tc.oid
ORDER BY 1, 2
