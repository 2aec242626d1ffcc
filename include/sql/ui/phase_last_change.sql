-- Per phase: its recorded status (frozen, reverted) and when it last changed (status or ledger).
SELECT coalesce(s.phase, l.phase) AS phase, s.status, greatest(s.changed_at, l.last_attempt) AS last_change
FROM (SELECT phase, max(started_at) AS last_attempt FROM ple_ops.action_ledger GROUP BY phase) l
FULL JOIN ple_ops.phase_status s ON s.phase = l.phase
