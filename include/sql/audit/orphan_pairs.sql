-- Orphan people (no slot points at them) paired with a free slot of the spine company that their
-- email domain names. Only domains that exactly one spine row has count (a duplicated domain is
-- ambiguous); orphans are matched to free slots in order, one slot each.
WITH spine AS (
    SELECT lower(domain) AS domain, min(outreach_id::text)::uuid AS outreach_id
    FROM outreach.outreach
    WHERE coalesce(domain, '') <> ''
    GROUP BY lower(domain)
    HAVING count(*) = 1
),
orphans AS (
    SELECT p.unique_id, s.outreach_id,
           row_number() OVER (PARTITION BY s.outreach_id ORDER BY p.created_at, p.unique_id) AS n
    FROM people.people_master p
    JOIN spine s ON s.domain = lower(split_part(p.email, '@', 2))
    WHERE NOT EXISTS (SELECT 1 FROM people.company_slot c WHERE c.person_unique_id = p.unique_id)
),
free AS (
    SELECT c.slot_id, c.outreach_id, c.company_unique_id,
           row_number() OVER (PARTITION BY c.outreach_id ORDER BY c.slot_type, c.slot_id) AS n
    FROM people.company_slot c
    WHERE c.person_unique_id IS NULL AND c.outreach_id IN (SELECT outreach_id FROM orphans)
)
SELECT o.unique_id, f.slot_id, f.company_unique_id
FROM orphans o JOIN free f USING (outreach_id, n)
