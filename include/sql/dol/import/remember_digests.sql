-- The digests of the staged good rows' records, by key, replacing the ones those keys had.
INSERT INTO {store} ({keys}, digest)
SELECT {skeys}, d.digest FROM {stage} AS s JOIN {digests} AS d ON d.record_no = s.record_no
ON CONFLICT ({keys}) DO UPDATE SET digest = EXCLUDED.digest
WHERE {store}.digest IS DISTINCT FROM EXCLUDED.digest
