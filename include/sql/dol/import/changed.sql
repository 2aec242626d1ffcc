-- The staged rows whose fingerprint differs from the stored one, or has none, with their fingerprint.
CREATE TEMPORARY TABLE {changed} ON COMMIT DROP AS SELECT s.*, c.fingerprint FROM {stage} AS s
CROSS JOIN LATERAL (SELECT {fp} AS fingerprint) AS c
WHERE NOT EXISTS (SELECT 1 FROM {fps} AS f WHERE {match} AND f.fingerprint = c.fingerprint)
