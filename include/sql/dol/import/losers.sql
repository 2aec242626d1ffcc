-- Filings an amendment replaced, among the plans and plan years the file touched: every filing
-- but the one received last (then the greatest ACK_ID), with the ACK_ID that replaced it.
CREATE TEMPORARY TABLE {losers} ON COMMIT DROP AS
WITH touched AS (
    SELECT DISTINCT {sidentity} FROM {stage} AS s
)
SELECT ranked.ack_id, ranked.winner FROM (
    SELECT f.ack_id, row_number() OVER w AS rank, first_value(f.ack_id) OVER w AS winner
    FROM {live} f JOIN touched t ON {ft}
    WINDOW w AS (PARTITION BY {fidentity} ORDER BY {order})
) AS ranked
WHERE ranked.rank > 1
