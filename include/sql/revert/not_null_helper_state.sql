-- Revert's NOT NULL helper constraint %(helper)s on table %(oid)s: whether it is validated, and
-- whether it is the tool's (its comment, and a CHECK that exactly one column IS NOT NULL, that
-- column found by number so that a rename keeps it recognised). No row: no constraint of that name.
SELECT c.convalidated,
       coalesce(obj_description(c.oid, 'pg_constraint') = %(comment)s
                AND pg_get_constraintdef(c.oid) IN (format('CHECK ((%%I IS NOT NULL))', a.attname),
                                                    format('CHECK ((%%I IS NOT NULL)) NOT VALID', a.attname)),
                false) AS ours
FROM pg_constraint c
LEFT JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1] AND cardinality(c.conkey) = 1
WHERE c.conrelid = %(oid)s AND c.conname = %(helper)s
