-- What others built on parts of the table %(oid)s that are about to be dropped: the objects that
-- depend on its columns %(columns)s or on its constraints %(constraints)s (and their indexes):
-- views, foreign keys, indexes, checks, triggers, policies. What goes with those parts as their
-- own is left out: a column's default and owned sequence, the constraints being dropped themselves
-- and their indexes (internal dependencies). Each as a readable, schema-qualified name.
WITH dropped AS (
    SELECT 'pg_class'::regclass AS classid, a.attrelid AS objid, a.attnum::int AS objsubid
    FROM pg_attribute AS a
    WHERE a.attrelid = %(oid)s AND a.attname = ANY (%(columns)s::text[]) AND NOT a.attisdropped
    UNION ALL
    SELECT 'pg_constraint'::regclass, c.oid, 0
    FROM pg_constraint AS c
    WHERE c.conrelid = %(oid)s AND c.conname = ANY (%(constraints)s::text[])
    UNION ALL
    SELECT 'pg_class'::regclass, c.conindid, 0
    FROM pg_constraint AS c
    WHERE c.conrelid = %(oid)s AND c.conname = ANY (%(constraints)s::text[]) AND c.conindid <> 0
),
dependent AS (
    SELECT DISTINCT d.classid, d.objid
    FROM dropped AS x
    JOIN pg_depend AS d ON d.refclassid = x.classid AND d.refobjid = x.objid AND d.refobjsubid = x.objsubid
    WHERE d.deptype IN ('n', 'a')
),
named AS (
    SELECT c.oid, format('%%I.%%I', n.nspname, c.relname) AS name, c.relkind
    FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
)
SELECT DISTINCT CASE
    WHEN r.oid IS NOT NULL AND owner.relkind = 'v' THEN 'view ' || owner.name
    WHEN r.oid IS NOT NULL AND owner.relkind = 'm' THEN 'materialized view ' || owner.name
    WHEN r.oid IS NOT NULL THEN format('rule %%I on %%s', r.rulename, owner.name)
    WHEN con.oid IS NOT NULL THEN format(
        '%%s %%I on %%s',
        CASE con.contype WHEN 'f' THEN 'foreign key' WHEN 'c' THEN 'check' ELSE 'constraint' END,
        con.conname,
        (SELECT name FROM named WHERE named.oid = con.conrelid))
    WHEN rel.oid IS NOT NULL AND rel.relkind = 'i' THEN 'index ' || rel.name
    ELSE pg_describe_object(d.classid, d.objid, 0)
END AS built_on
FROM dependent AS d
LEFT JOIN pg_rewrite AS r ON d.classid = 'pg_rewrite'::regclass AND r.oid = d.objid
LEFT JOIN named AS owner ON owner.oid = r.ev_class
LEFT JOIN pg_constraint AS con ON d.classid = 'pg_constraint'::regclass AND con.oid = d.objid
LEFT JOIN named AS rel ON d.classid = 'pg_class'::regclass AND rel.oid = d.objid
WHERE d.classid <> 'pg_attrdef'::regclass
  AND coalesce(rel.relkind, '') <> 'S'
  AND NOT coalesce(con.conrelid = %(oid)s AND con.conname = ANY (%(constraints)s::text[]), false)
ORDER BY 1
