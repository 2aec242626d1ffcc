-- User row triggers on %(table)s that fire on %(event)s (UPDATE or DELETE): reported with a step.
SELECT t.tgname || ' (' || CASE WHEN t.tgtype & 2 = 2 THEN 'BEFORE' ELSE 'AFTER' END || ', ' || p.proname || ')'
FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
WHERE t.tgrelid = %(table)s::regclass AND NOT t.tgisinternal AND t.tgenabled <> 'D' AND t.tgtype & 1 = 1
  AND t.tgtype & CASE %(event)s WHEN 'DELETE' THEN 8 WHEN 'UPDATE' THEN 16 ELSE 4 END <> 0
ORDER BY t.tgname
