"""Command line for everything that is not a DAG run: `python -m ple.cli --help`.

The Makefile wraps these commands; each acts on the database of the connection `ctb_postgres`.
"""

from __future__ import annotations

import argparse
import sys

from ple import config


def _cmd_db(args) -> int:
    from ple import embedded_pg

    if args.action == "start":
        server = embedded_pg.start(config.EMBEDDED_PG_DIR, config.EMBEDDED_PG_PORT)
        print(embedded_pg.ensure_database(server, config.EMBEDDED_PG_DATABASE))
    elif args.action == "stop":
        embedded_pg.stop(config.EMBEDDED_PG_DIR)
    return 0


def _cmd_fixture(args) -> int:
    from ple.db import connect
    from ple.fixture.builder import build

    with connect() as conn:
        print(
            f"building the PLE fixture at scale {args.scale} into {conn.info.dbname}@{conn.info.host}:{conn.info.port}"
        )
        report = build(
            conn, scale=args.scale, seed=args.seed, replace=args.replace, log=print if args.verbose else lambda _: None
        )
    print(f"built {len(report.rows)} tables, {sum(report.rows.values()):,} rows in {report.seconds:.1f}s")
    _print_schema_summary(report.per_schema())
    return 0


def _print_schema_summary(summary: dict[str, tuple[int, int]]) -> None:
    print(f"  {'schema':<14}{'tables':>8}{'rows':>14}")
    for schema, (tables, rows) in summary.items():
        print(f"  {schema:<14}{tables:>8}{rows:>14,}")
    print(f"  {'total':<14}{sum(t for t, _ in summary.values()):>8}{sum(r for _, r in summary.values()):>14,}")


def _cmd_summary(_args) -> int:
    from ple.catalog import schema_summary
    from ple.db import connect

    with connect() as conn:
        _print_schema_summary(schema_summary(conn))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ple", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    db = sub.add_parser("db", help="the embedded PostgreSQL (demo and tests)")
    db.add_argument("action", choices=["start", "stop"])
    db.set_defaults(func=_cmd_db)

    fixture = sub.add_parser("fixture", help="build the pre-reorganization PLE database")
    fixture.add_argument("--scale", type=float, default=0.01)
    fixture.add_argument("--seed", type=int, default=None)
    fixture.add_argument("--replace", action="store_true", help="rebuild a fixture this builder made before")
    fixture.add_argument("--verbose", action="store_true", help="print every table as it is built")
    fixture.set_defaults(func=_cmd_fixture)

    summary = sub.add_parser("summary", help="tables and rows per schema of the target database")
    summary.set_defaults(func=_cmd_summary)

    demo = sub.add_parser("demo", help="the whole product on the embedded database (make demo)")
    demo.set_defaults(func=lambda _args: __import__("ple.demo", fromlist=["main"]).main())

    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
