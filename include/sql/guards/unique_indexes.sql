-- Unique indexes of a table other than its primary key and the tool's provenance index: columns
-- (NULL for an expression index) and whether the index is partial.
SELECT ic.relname AS index_name,
       (SELECT array_agg(a.attname ORDER BY k.ord) FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
        JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum) AS columns,
       i.indpred IS NOT NULL AS partial,
       0 = ANY(i.indkey::int2[]) AS has_expression
FROM pg_index i
JOIN pg_class ic ON ic.oid = i.indexrelid
WHERE i.indrelid = %(table)s::regclass AND i.indisunique AND NOT i.indisprimary
  AND ic.relname NOT LIKE '%%ctb_provenance'
ORDER BY 1
