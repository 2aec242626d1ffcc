-- Per phase: its status (frozen, reverted) and the outcomes of the latest attempt of its steps.
SELECT p.phase, s.status, s.changed_at,
       count(*) FILTER (WHERE p.outcome IN ('applied', 'already_done')) AS done,
       count(*) FILTER (WHERE p.outcome = 'failed') AS failed,
       max(p.started_at) AS last_attempt
FROM (
    SELECT DISTINCT ON (step_id) phase, step_id, outcome, started_at
    FROM ple_ops.action_ledger
    ORDER BY step_id, attempt_id DESC
) p
LEFT JOIN ple_ops.phase_status s ON s.phase = p.phase
GROUP BY p.phase, s.status, s.changed_at
