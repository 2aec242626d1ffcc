-- User triggers on the given tables that are disabled (tgenabled 'D').
SELECT c.oid::regclass::text, t.tgname::text
FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
WHERE c.oid = ANY (SELECT to_regclass(x) FROM unnest(%(tables)s::text[]) AS x) AND NOT t.tgisinternal AND t.tgenabled = 'D'
ORDER BY 1, 2
