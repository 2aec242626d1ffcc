-- Steps whose latest attempt failed (a later applied or reverted attempt clears it).
SELECT step_id
FROM (
    SELECT DISTINCT ON (step_id) step_id, outcome
    FROM ple_ops.action_ledger
    ORDER BY step_id, attempt_id DESC
) l
WHERE outcome = 'failed'
