-- The replaced filings move, whole, to the superseded table.
WITH moved AS (
    DELETE FROM {live} f USING {losers} r WHERE f.ack_id = r.ack_id
    RETURNING f.*, r.winner
)
INSERT INTO {superseded} ({kept}, superseded_by_ack_id, superseded_at)
SELECT {kept}, winner, now() FROM moved
