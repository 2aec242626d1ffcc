-- The staged rows whose fingerprint differs from the stored one, or has none, with their
-- fingerprint; and the rows whose key is in neither the live nor the superseded table (removed
-- since the import wrote it: written again, not proved missing).
-- OFFSET 0 keeps the fingerprint computed once per row, in the subquery: flattened, a hash join
-- evaluates it again for its equality check on every row that finds its key (twice the cost).
CREATE TEMPORARY TABLE {changed} ON COMMIT DROP AS SELECT s.* FROM (
    SELECT s.*, {fp} AS fingerprint FROM {stage} AS s OFFSET 0
) AS s
WHERE NOT EXISTS (SELECT 1 FROM {fps} AS f WHERE {match} AND f.fingerprint = s.fingerprint)
OR NOT (EXISTS (SELECT 1 FROM {live} AS t WHERE {tmatch}) OR EXISTS (SELECT 1 FROM {superseded} AS t WHERE {tmatch}))
