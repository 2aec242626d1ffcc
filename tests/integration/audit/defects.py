"""The defects the 2C cleanup exists for, put into a fixture database, and what it should remove."""

from __future__ import annotations


def inject_defects(conn):
    """Defects the fixtures have none of: NULL spine domains, orphan slots."""
    conn.execute(
        "UPDATE outreach.outreach SET domain = NULL WHERE outreach_id IN (SELECT outreach_id FROM outreach.outreach ORDER BY outreach_id LIMIT 4)"
    )
    for (fk,) in conn.execute(
        "SELECT conname FROM pg_constraint WHERE conrelid = 'people.company_slot'::regclass AND contype = 'f' "
        "AND confrelid = 'outreach.outreach'::regclass"
    ).fetchall():
        conn.execute(f'ALTER TABLE people.company_slot DROP CONSTRAINT "{fk}"')
    conn.execute(
        "UPDATE people.company_slot SET outreach_id = gen_random_uuid() WHERE slot_id IN (SELECT slot_id FROM people.company_slot ORDER BY slot_id DESC LIMIT 7)"
    )


def duplicates_to_remove(conn) -> int:
    """Group size - 1, summed over every group of people sharing an email."""
    return conn.execute(
        "SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n FROM people.people_master "
        "WHERE coalesce(email, '') <> '' GROUP BY email HAVING count(*) > 1) g"
    ).fetchone()[0]


def duplicate_domains(conn, groups: int) -> None:
    """`groups` new pairs of spine rows sharing a domain (a number with no absolute threshold, so
    only the accepted baseline judges it)."""
    rows = conn.execute(
        "SELECT outreach_id FROM outreach.outreach WHERE domain IN "
        "(SELECT domain FROM outreach.outreach WHERE domain <> '' GROUP BY domain HAVING count(*) = 1) "
        "ORDER BY outreach_id LIMIT %s",
        (2 * groups,),
    ).fetchall()
    for i, (outreach_id,) in enumerate(rows):
        conn.execute(
            "UPDATE outreach.outreach SET domain = %s WHERE outreach_id = %s",
            (f"ple-duplicate-{i // 2}.example", outreach_id),
        )
