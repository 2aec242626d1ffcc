-- Compatibility objects the contract may remove: standing, older than their own grace period, and
-- with no use recorded within it (ple_ops.compat_use_all). name, kind, over, created, grace, last use, drop DDL.
SELECT o.name, o.kind, o.over_table, o.created_at, o.grace, u.last_at, o.drop_ddl
FROM ple_ops.compat_object AS o
LEFT JOIN LATERAL (SELECT max(last_at) AS last_at FROM ple_ops.compat_use_all WHERE name = o.name) AS u ON true
WHERE o.removed_at IS NULL
  AND o.created_at + o.grace <= now()
  AND (u.last_at IS NULL OR u.last_at + o.grace <= now())
ORDER BY o.name
