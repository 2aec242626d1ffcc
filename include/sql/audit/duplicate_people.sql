-- Every member of a group of people sharing an email (exact match, non-empty), with the record
-- that survives (the earliest created, then the smallest unique_id) and its rank in the group:
-- rank 1 is the survivor; a group of n has n - 1 duplicates to remove, whatever n is.
WITH ranked AS (
    SELECT unique_id AS person,
           first_value(unique_id) OVER w AS survivor,
           row_number() OVER w AS rank,
           count(*) OVER (PARTITION BY email) AS group_size
    FROM people.people_master
    WHERE coalesce(email, '') <> ''
    WINDOW w AS (PARTITION BY email ORDER BY created_at NULLS LAST, unique_id)
)
SELECT person, survivor, rank FROM ranked WHERE group_size > 1
