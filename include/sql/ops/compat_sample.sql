-- Reads (and every other statement) naming a standing compatibility object, from pg_stat_statements:
-- calls per role since the statistics were last reset. A total that grew since the last sample
-- moves last_at to now; the sample's time is all pg_stat_statements can say of when.
INSERT INTO ple_ops.compat_use AS u (name, operation, role_name, calls, source)
SELECT o.name, 'statements', pg_get_userbyid(s.userid), sum(s.calls)::bigint, 'pg_stat_statements'
FROM ple_ops.compat_object AS o
JOIN pg_stat_statements AS s
  ON s.query ~* (replace(o.name, '.', '"?\s*\.\s*"?') || '"?\M')
WHERE o.removed_at IS NULL
GROUP BY o.name, s.userid
ON CONFLICT (name, operation, role_name) DO UPDATE
SET calls = EXCLUDED.calls,
    last_at = CASE WHEN EXCLUDED.calls > u.calls THEN now() ELSE u.last_at END,
    source = EXCLUDED.source
