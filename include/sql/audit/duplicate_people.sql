-- Every person whose email another, earlier record already has (exact match, non-empty), with
-- the record that survives: the earliest created, then the smallest unique_id.
WITH ranked AS (
    SELECT unique_id, email,
           first_value(unique_id) OVER (PARTITION BY email ORDER BY created_at NULLS LAST, unique_id) AS survivor
    FROM people.people_master
    WHERE coalesce(email, '') <> ''
)
SELECT unique_id AS loser, survivor FROM ranked WHERE unique_id <> survivor
