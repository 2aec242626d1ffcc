-- The fresh load: the rows the validation passes, written in one statement; the count and the
-- checksum of the keys written (the proof).
WITH written AS (
    INSERT INTO {live} ({columns}) SELECT {values} FROM {rows} WHERE {problems} IS NULL
    RETURNING {keys}
)
SELECT count(*), coalesce(sum({hash}), 0) FROM written AS w
