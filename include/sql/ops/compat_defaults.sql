-- A table's column defaults, as a compatibility view at its old name takes them: the expression,
-- except that the next value of a sequence (an identity column's, or a nextval() default's) names
-- the sequence by OID, so the view keeps drawing from it after the step moved the table and the
-- sequences it owns to another schema.
SELECT a.attname,
       CASE
           WHEN a.attidentity <> '' THEN format('nextval(%%L::regclass)',
               pg_get_serial_sequence(format('%%I.%%I', n.nspname, c.relname), a.attname)::regclass::oid::text)
           WHEN seq.oid IS NOT NULL AND pg_get_expr(d.adbin, d.adrelid) ~ '^nextval\(' THEN format('nextval(%%L::regclass)', seq.oid::text)
           ELSE pg_get_expr(d.adbin, d.adrelid)
       END
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
LEFT JOIN LATERAL (
    SELECT dep.refobjid AS oid FROM pg_depend dep
    WHERE dep.classid = 'pg_attrdef'::regclass AND dep.objid = d.oid AND dep.refclassid = 'pg_class'::regclass
      AND dep.deptype = 'n'
    LIMIT 1
) AS seq ON true
WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
  AND (a.attidentity <> '' OR d.adbin IS NOT NULL)
ORDER BY a.attnum
