-- The reorganization ledger for the console: the latest attempt of every step (or every attempt
-- of one run, %(run_id)s), with its SQL, rows before and after, the rows merged into the target,
-- checksums, duration and error.
SELECT l.attempt_id, l.run_id, l.phase, l.step_id, l.action, l.mode, l.outcome, l.target,
       l.sql_text, l.rows_before, l.rows_after,
       CASE WHEN l.action = 'MERGE' THEN (l.rows_after ->> l.target)::bigint END AS merged_rows,
       l.checksums_before, l.checksums_after, l.duration_ms, l.error, l.started_at
FROM (
    SELECT DISTINCT ON (step_id) *
    FROM ple_ops.action_ledger
    WHERE %(run_id)s::text IS NULL OR run_id = %(run_id)s
    ORDER BY step_id, CASE WHEN %(run_id)s::text IS NULL THEN attempt_id ELSE -attempt_id END DESC
) l
ORDER BY l.phase, l.attempt_id
