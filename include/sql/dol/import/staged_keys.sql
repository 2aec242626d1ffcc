-- One aggregate over the staged keys: how many rows, their keys' checksum, whether a key repeats.
SELECT coalesce(sum(g.n), 0), coalesce(sum(g.h), 0), coalesce(bool_or(g.n > 1), false)
FROM (SELECT count(*) AS n, sum({hash}) AS h FROM {stage} AS s GROUP BY {keys}) AS g
