-- The phase applied most recently that still stands: one whose steps' latest ledger attempt
-- applied them (not reverted since), ordered by that attempt. No row: nothing to revert.
WITH latest AS (
    SELECT DISTINCT ON (step_id) phase, outcome, attempt_id
    FROM ple_ops.action_ledger
    ORDER BY step_id, attempt_id DESC
)
SELECT phase
FROM latest
WHERE outcome IN ('applied', 'already_done') AND phase = ANY(%(phases)s)
GROUP BY phase
ORDER BY max(attempt_id) DESC
LIMIT 1
