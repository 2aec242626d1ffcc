-- Steps of phase %(phase)s still reverted (no later apply), with what their revert recorded: the
-- console lists what it kept (changed copies, columns) until the step is applied again.
SELECT step_id, details
FROM (
    SELECT DISTINCT ON (step_id) step_id, outcome, details
    FROM ple_ops.action_ledger
    WHERE phase = %(phase)s AND outcome IN ('applied', 'adopted', 'reverted')
    ORDER BY step_id, attempt_id DESC
) l
WHERE outcome = 'reverted'
ORDER BY step_id
