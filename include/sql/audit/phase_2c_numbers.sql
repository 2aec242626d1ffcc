-- Every number of the plan's Phase 2C audit and post-cleanup tables, in one statement.
-- Definitions: include/reference/phase_2c_audit_definitions.md. Each line is (number, value).
-- The braced names are identifiers resolved per database from its catalog (ple.audit.numbers):
-- the spine's sovereign id is `sovereign_id` in one database and `sovereign_company_id` in another.
WITH spine AS (
    SELECT count(*) AS spine,
           count(*) FILTER (WHERE coalesce({spine_domain}, '') = '') AS null_domains,
           count(*) FILTER (WHERE {spine_sovereign_id} IS NULL) AS missing_sovereign_id
    FROM outreach.outreach
),
duplicate_domains AS (
    SELECT count(*) AS n FROM (
        SELECT {spine_domain} FROM outreach.outreach WHERE coalesce({spine_domain}, '') <> ''
        GROUP BY {spine_domain} HAVING count(*) > 1) d
),
duplicate_emails AS (
    SELECT count(*) AS n FROM (
        SELECT {person_email} FROM people.people_master WHERE coalesce({person_email}, '') <> ''
        GROUP BY {person_email} HAVING count(*) > 1) d
),
orphan_slots AS (
    SELECT count(*) AS n FROM people.company_slot s
    WHERE NOT EXISTS (SELECT 1 FROM outreach.outreach o WHERE o.{spine_id} = s.{slot_outreach_id})
),
orphan_people AS (
    SELECT count(*) AS n FROM people.people_master p
    WHERE NOT EXISTS (SELECT 1 FROM people.company_slot s WHERE s.{slot_person_id} = p.{person_id})
),
cl AS (
    SELECT count(*) AS total, count({cl_outreach_id}) AS claimed FROM cl.company_identity
)
SELECT 'null_domains_on_spine', null_domains FROM spine
UNION ALL SELECT 'duplicate_domains_on_spine', n FROM duplicate_domains
UNION ALL SELECT 'orphan_slots', n FROM orphan_slots
UNION ALL SELECT 'duplicate_emails_in_people_master', n FROM duplicate_emails
UNION ALL SELECT 'orphan_people', n FROM orphan_people
UNION ALL SELECT 'missing_sovereign_id', missing_sovereign_id FROM spine
UNION ALL SELECT 'cl_company_identity', total FROM cl
UNION ALL SELECT 'cl_claimed', claimed FROM cl
UNION ALL SELECT 'spine', spine FROM spine
UNION ALL SELECT 'alignment_gap', (SELECT claimed FROM cl) - spine FROM spine
