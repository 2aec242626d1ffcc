-- The fingerprints of the rows just written or found equal, replacing the ones they had.
INSERT INTO {fps} ({keys}, fingerprint) SELECT {skeys}, {fp} FROM {rows} AS s
ON CONFLICT ({keys}) DO UPDATE SET fingerprint = EXCLUDED.fingerprint
WHERE {fps}.fingerprint IS DISTINCT FROM EXCLUDED.fingerprint
