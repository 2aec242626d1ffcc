-- Domains that more than one spine row claims, with the rows: the manual-merge worklist.
SELECT domain, count(*) AS spine_rows, string_agg(outreach_id::text, ' ' ORDER BY created_at, outreach_id) AS outreach_ids
FROM outreach.outreach
WHERE coalesce(domain, '') <> ''
GROUP BY domain
HAVING count(*) > 1
ORDER BY domain
