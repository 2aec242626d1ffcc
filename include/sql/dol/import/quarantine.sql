-- The refused rows leave the staging table for the errors table, with their reason and the line.
WITH bad AS (
    DELETE FROM {stage} AS t USING {bad} AS b WHERE t.record_no = b.record_no RETURNING t.*, b.reason
)
INSERT INTO ple_ops.dol_import_error (import_id, record_no, reason, raw_line)
SELECT %(import_id)s, s.record_no, s.reason, {line} FROM bad AS s
