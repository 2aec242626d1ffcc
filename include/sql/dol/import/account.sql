-- The file's rows in the live table (place 1) and only in the superseded table (place 2).
SELECT count(*) FILTER (WHERE p.place = 1), count(*) FILTER (WHERE p.place = 2) FROM
(SELECT CASE WHEN {l} THEN 1 WHEN {s} THEN 2 END AS place FROM ({rows}) AS s OFFSET 0) AS p
