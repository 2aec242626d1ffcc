-- The records whose digest is stored for a key still in the live (place 1) or only in the
-- superseded table (place 2): the same bytes, in the same context, as the record that last wrote
-- that key.
CREATE TEMPORARY TABLE {unchanged} ON COMMIT DROP AS
SELECT u.* FROM (
    SELECT d.record_no, {rkeys}, CASE WHEN {live} THEN 1 WHEN {superseded} THEN 2 END AS place
    FROM {digests} AS d JOIN {store} AS r ON r.digest = d.digest
    OFFSET 0
) AS u
WHERE u.place IS NOT NULL
