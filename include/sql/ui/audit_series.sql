-- Every audit number of every run, oldest first (the last %(runs)s runs).
SELECT h.number, r.taken_at, h.value, r.status, r.run_id
FROM ple_ops.audit_history h
JOIN ple_ops.audit_run r USING (run_id)
WHERE r.run_id IN (SELECT run_id FROM ple_ops.audit_run ORDER BY taken_at DESC LIMIT %(runs)s)
ORDER BY h.number, r.taken_at
