-- Schedule A rows of this file's filings point at their filing.
UPDATE {schedule} a SET filing_id = f.filing_id FROM {filings} f
WHERE f.ack_id = a.ack_id AND a.filing_id IS DISTINCT FROM f.filing_id
AND a.ack_id IN (SELECT s.ack_id FROM {stage} s)
