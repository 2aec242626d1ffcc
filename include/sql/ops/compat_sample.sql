-- Reads and writes (not DDL) naming a standing compatibility object in this database, from
-- pg_stat_statements: calls per role since the object was made (less what was counted then,
-- ple_ops.compat_statements_before, unless the statistics were reset since). A total that grew
-- since the last sample moves last_at to now; the sample's time is all pg_stat_statements can say
-- of when.
WITH seen AS (
    SELECT o.name, pg_get_userbyid(s.userid) AS role_name, sum(s.calls)::bigint AS calls
    FROM ple_ops.compat_object AS o
    JOIN pg_stat_statements AS s
      ON s.query ~* (replace(o.name, '.', '"?\s*\.\s*"?') || '"?\M')
     AND s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())  -- this database only
     AND s.query !~* '^\s*(CREATE|COMMENT|GRANT|REVOKE|DROP|ALTER)\M'  -- DDL (the tool making and removing) is no use
    WHERE o.removed_at IS NULL
    GROUP BY o.name, s.userid
), since AS (
    SELECT seen.name, seen.role_name,
           seen.calls - CASE WHEN b.taken_at >= (SELECT stats_reset FROM pg_stat_statements_info)
                             THEN b.calls ELSE 0 END AS calls
    FROM seen
    LEFT JOIN ple_ops.compat_statements_before AS b USING (name, role_name)
)
INSERT INTO ple_ops.compat_use AS u (name, operation, role_name, calls, source)
SELECT name, 'statements', role_name, calls, 'pg_stat_statements'
FROM since
WHERE calls > 0
ON CONFLICT (name, operation, role_name) DO UPDATE
SET calls = EXCLUDED.calls,
    last_at = CASE WHEN EXCLUDED.calls > u.calls THEN now() ELSE u.last_at END,
    source = EXCLUDED.source
