"""Build the PLE fixture at a scale (default 1.0) into a scratch database of the embedded server
and report the build time and the counts the documents give, checked against the build.

    make bench-fixture            # scale 1.0, about 3 minutes and 5 GB
    .venv/bin/python bench/fixture_build.py --scale 0.1
"""

from __future__ import annotations

import argparse
import time

import psycopg

from ple import config
from ple.audit.numbers import compute
from ple_dev import embedded_pg
from ple_dev.fixture.builder import build, target_counts

DOCUMENT_NUMBERS = {
    "company.company_master": 74_641,
    "marketing.failed_email_verification": 310,
    "company.company_source_urls": 104_012,
    "people.people_master": 182_661,
    "people.company_slot": 285_012,
    "dol.form_5500": 230_009,
    "dol.form_5500_sf": 759_569,
    "dol.schedule_a": 336_817,
    "dol.form_5500_sf_staging": 759_569,
    "dol.schedule_a_staging": 336_817,
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--database", default="ple_bench_fixture")
    args = parser.parse_args()

    server = embedded_pg.start(config.EMBEDDED_PG_DIR, config.EMBEDDED_PG_PORT)
    dsn = embedded_pg.create_database(server, args.database)
    with psycopg.connect(dsn, autocommit=True) as conn:
        started = time.monotonic()
        report = build(conn, scale=args.scale, log=lambda _: None)
        seconds = time.monotonic() - started
        audit = compute(conn)
        size = conn.execute("SELECT pg_size_pretty(pg_database_size(current_database()))").fetchone()[0]
    targets = target_counts(args.scale)
    print(
        f"scale {args.scale}: {len(report.rows)} tables, {sum(report.rows.values()):,} rows, {size}, built in {seconds:.1f}s"
    )
    print(f"{'table':<40}{'document':>12}{'target':>12}{'built':>12}")
    for table, number in DOCUMENT_NUMBERS.items():
        print(f"{table:<40}{number:>12,}{targets[table]:>12,}{report.rows[table]:>12,}")
    print(f"{'audit: duplicate domains on spine':<40}{488:>12,}{'':>12}{audit['duplicate_domains_on_spine']:>12,}")
    print(
        f"{'audit: duplicate emails in people_master':<40}{42_928:>12,}{'':>12}{audit['duplicate_emails_in_people_master']:>12,}"
    )
    print(f"{'audit: CL claimed':<40}{95_004:>12,}{'':>12}{audit['cl_claimed']:>12,}")
    print(f"{'audit: spine':<40}{95_004:>12,}{'':>12}{audit['spine']:>12,}")
    mismatched = [t for t in targets if report.rows[t] != targets[t]]
    print("all counts match their targets" if not mismatched else f"MISMATCH: {mismatched}")
    embedded_pg.drop_database(server, args.database)


if __name__ == "__main__":
    main()
