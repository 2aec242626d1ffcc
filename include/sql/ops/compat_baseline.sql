-- When a compatibility object is made: what pg_stat_statements has counted so far of statements
-- naming %(name)s in this database, per role (the tool's own reads of the table before it moved
-- are not use of the old name). compat_sample.sql counts only what comes after. usage.baseline
-- deletes the name's earlier rows first (an object made again after a revert).
INSERT INTO ple_ops.compat_statements_before (name, role_name, calls)
SELECT %(name)s, pg_get_userbyid(s.userid), sum(s.calls)::bigint
FROM pg_stat_statements AS s
WHERE s.query ~* (replace(%(name)s, '.', '"?\s*\.\s*"?') || '"?\M')
  AND s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND s.query !~* '^\s*(CREATE|COMMENT|GRANT|REVOKE|DROP|ALTER)\M'
GROUP BY s.userid
