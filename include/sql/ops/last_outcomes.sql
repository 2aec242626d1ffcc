-- The latest attempt of every step, in execution order, with the rows it handled and a short
-- description of its result. %(phase)s NULL: every phase.
WITH latest AS (
    SELECT DISTINCT ON (step_id) *
    FROM ple_ops.action_ledger
    WHERE %(phase)s::text IS NULL OR phase = %(phase)s
    ORDER BY step_id, attempt_id DESC
),
first_applied AS (  -- a re-run records already_done; show the rows of the attempt that did it
    SELECT DISTINCT ON (step_id) step_id, rows_before, rows_after, details
    FROM ple_ops.action_ledger
    WHERE outcome = 'applied'
    ORDER BY step_id, attempt_id DESC
)
SELECT l.phase, l.step_id, l.action, l.outcome,
       coalesce(
           (SELECT sum(v::bigint)::bigint FROM jsonb_each_text(a.rows_before) AS r(k, v) WHERE k = ANY(l.sources)),
           (SELECT s.row_count FROM ple_ops.table_snapshot s WHERE s.table_name = l.sources[1] ORDER BY s.taken_at LIMIT 1)
       ) AS rows_handled,
       CASE l.action
           WHEN 'ARCHIVE' THEN '-> archive'
           WHEN 'MOVE' THEN '-> ' || l.target
           WHEN 'MERGE' THEN '+' || coalesce(a.rows_after ->> l.target, '?') || ' into ' || l.target
                || CASE WHEN (a.details ->> 'key_conflicts_kept_in_archive')::int > 0
                        THEN ' (' || (a.details ->> 'key_conflicts_kept_in_archive') || ' dup keys kept in archive)' ELSE '' END
           WHEN 'FOLD' THEN (a.details ->> 'target_rows_updated') || ' rows of ' || l.target || ' updated'
           WHEN 'ADD_PK' THEN 'primary key (' || coalesce(a.details ->> 'path', '') || ')'
           WHEN 'KEEP_AS_MV' THEN 'class MATERIALIZED_VIEW'
           WHEN 'PREFLIGHT' THEN (SELECT count(*) FROM jsonb_object_keys(l.rows_before)) || ' tables snapshotted'
           WHEN 'VERIFY' THEN coalesce(jsonb_array_length(l.details -> 'live_changes'), 0) || ' live changes reported'
           WHEN 'FREEZE' THEN coalesce(jsonb_array_length(l.details -> 'read_only'), 0) || ' archives read-only'
       END AS result,
       l.duration_ms, l.error
FROM latest l
LEFT JOIN first_applied a ON a.step_id = l.step_id
ORDER BY l.phase,
         CASE l.action WHEN 'PREFLIGHT' THEN 0 WHEN 'VERIFY' THEN 2 WHEN 'FREEZE' THEN 3 ELSE 1 END,
         (SELECT min(attempt_id) FROM ple_ops.action_ledger x WHERE x.step_id = l.step_id)
