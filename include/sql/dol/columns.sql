-- The columns of a DOL table: name, declared type (for messages), NOT NULL, default, and whether
-- the table fills the column itself (stored generated column or GENERATED ALWAYS identity).
SELECT a.attname::text,
       format_type(a.atttypid, a.atttypmod),
       a.attnotnull,
       a.atthasdef OR a.attidentity <> '',
       a.attgenerated <> '' OR a.attidentity = 'a'
FROM pg_attribute a
WHERE a.attrelid = %(table)s::regclass AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
