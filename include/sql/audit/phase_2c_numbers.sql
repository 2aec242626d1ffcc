-- Every number of the plan's Phase 2C audit and post-cleanup tables, in one statement.
-- Definitions: include/reference/phase_2c_audit_definitions.md. Each line is (number, value).
WITH spine AS (
    SELECT count(*) AS spine,
           count(*) FILTER (WHERE coalesce(domain, '') = '') AS null_domains,
           count(*) FILTER (WHERE sovereign_id IS NULL) AS missing_sovereign_id
    FROM outreach.outreach
),
duplicate_domains AS (
    SELECT count(*) AS n FROM (
        SELECT domain FROM outreach.outreach WHERE coalesce(domain, '') <> ''
        GROUP BY domain HAVING count(*) > 1) d
),
duplicate_emails AS (
    SELECT count(*) AS n FROM (
        SELECT email FROM people.people_master WHERE coalesce(email, '') <> ''
        GROUP BY email HAVING count(*) > 1) d
),
orphan_slots AS (
    SELECT count(*) AS n FROM people.company_slot s
    WHERE NOT EXISTS (SELECT 1 FROM outreach.outreach o WHERE o.outreach_id = s.outreach_id)
),
orphan_people AS (
    SELECT count(*) AS n FROM people.people_master p
    WHERE NOT EXISTS (SELECT 1 FROM people.company_slot s WHERE s.person_unique_id = p.unique_id)
),
cl AS (
    SELECT count(*) AS total, count(outreach_id) AS claimed FROM cl.company_identity
)
SELECT 'null_domains_on_spine', null_domains FROM spine
UNION ALL SELECT 'duplicate_domains_on_spine', n FROM duplicate_domains
UNION ALL SELECT 'orphan_slots', n FROM orphan_slots
UNION ALL SELECT 'duplicate_emails_in_people_master', n FROM duplicate_emails
UNION ALL SELECT 'orphan_people', n FROM orphan_people
UNION ALL SELECT 'missing_sovereign_id', missing_sovereign_id FROM spine
UNION ALL SELECT 'cl_company_identity', total FROM cl
UNION ALL SELECT 'cl_claimed', claimed FROM cl
UNION ALL SELECT 'cl_company_identity_excluded', count(*) FROM cl.company_identity_excluded
UNION ALL SELECT 'spine', spine FROM spine
UNION ALL SELECT 'alignment_gap', (SELECT claimed FROM cl) - spine FROM spine
UNION ALL SELECT 'outreach_company_target', count(*) FROM outreach.company_target
UNION ALL SELECT 'outreach_dol', count(*) FROM outreach.dol
UNION ALL SELECT 'outreach_blog', count(*) FROM outreach.blog
UNION ALL SELECT 'outreach_bit_scores', count(*) FROM outreach.bit_scores
UNION ALL SELECT 'people_company_slot', count(*) FROM people.company_slot
UNION ALL SELECT 'people_people_master', count(*) FROM people.people_master
