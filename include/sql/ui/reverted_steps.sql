-- Steps applied (or adopted) once and reverted since: their latest such ledger row is `reverted`.
SELECT step_id
FROM (
    SELECT DISTINCT ON (step_id) step_id, outcome
    FROM ple_ops.action_ledger
    WHERE outcome IN ('applied', 'adopted', 'reverted')
    ORDER BY step_id, attempt_id DESC
) l
WHERE outcome = 'reverted'
