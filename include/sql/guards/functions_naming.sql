-- Functions whose body names one of %(tables)s (schema.table) in any form a move breaks:
--   qualified, quoted or not ("company"."company_master", company . company_master, 'company.company_master');
--   dynamic, as two literals of a format()/EXECUTE ('company', 'company_master');
--   unqualified, resolved through a search_path that holds the table's schema (the function's own
--   SET search_path, or public, which every default search_path holds).
-- live_trigger: the function serves a trigger of a table that stays where it is (its writes fail).
SELECT n.nspname || '.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')' AS function, t.name AS table_name,
       CASE WHEN p.prosrc ~* ('(^|[^a-z0-9_])"?' || split_part(t.name, '.', 1) || '"?\s*\.\s*"?' || split_part(t.name, '.', 2) || '([^a-z0-9_]|$)') THEN 'qualified'
            WHEN p.prosrc ~* ('''' || split_part(t.name, '.', 1) || '''\s*,\s*''' || split_part(t.name, '.', 2) || '''') THEN 'dynamic'
            ELSE 'search_path' END AS form,
       EXISTS (SELECT 1 FROM pg_trigger tg WHERE tg.tgfoid = p.oid AND NOT tg.tgisinternal
               AND tg.tgrelid <> ALL(ARRAY(SELECT to_regclass(m)::oid FROM unnest(%(tables)s::text[]) AS m WHERE to_regclass(m) IS NOT NULL))) AS live_trigger
FROM pg_proc p
JOIN pg_namespace n ON n.oid = p.pronamespace
CROSS JOIN unnest(%(tables)s::text[]) AS t(name)
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'ple_ops')
  AND p.prolang NOT IN (SELECT oid FROM pg_language WHERE lanname IN ('c', 'internal'))
  AND (p.prosrc ~* ('(^|[^a-z0-9_])"?' || split_part(t.name, '.', 1) || '"?\s*\.\s*"?' || split_part(t.name, '.', 2) || '([^a-z0-9_]|$)')
       OR p.prosrc ~* ('''' || split_part(t.name, '.', 1) || '''\s*,\s*''' || split_part(t.name, '.', 2) || '''')
       OR (p.prosrc ~* ('(^|[^a-z0-9_.])"?' || split_part(t.name, '.', 2) || '"?([^a-z0-9_]|$)')
           AND (split_part(t.name, '.', 1) = 'public'
                OR array_to_string(p.proconfig, ',') ~* ('search_path=(.*[^a-z0-9_])?' || split_part(t.name, '.', 1) || '([^a-z0-9_]|$)'))))
ORDER BY 1, 2
