-- Per compatibility object: what it is, and each (operation, role) that used it, how often, when last.
SELECT o.name, o.kind, o.over_table, o.created_at, o.grace, o.removed_at, o.removed_by,
       u.operation, u.role_name, u.calls, u.last_at, u.source
FROM ple_ops.compat_object AS o
LEFT JOIN ple_ops.compat_use_all AS u ON u.name = o.name
ORDER BY o.name, u.last_at DESC NULLS LAST
